"""What each request looks like: its class, prompt and output lengths, and its session.

``ShapeStream`` draws (class, prompt tokens, output tokens) triples in vectorised chunks;
``SessionTracker`` turns a finished turn of a multi-turn conversation into the next one,
whose prompt resends the conversation so far as a shared, tagged prefix.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulator.workload.distributions import LengthSampler, build_sampler, correlated_uniforms
from simulator.workload.request import Request
from simulator.workload.streams import ChunkBuffer, named_rng, shared_chunk

DEFAULT_CLASS_NAME = "default"


@dataclass
class ClassProfile:
    """One request class: its share of arrivals and how its requests are shaped."""

    name: str
    weight: float
    priority: int
    prompt: LengthSampler
    output: LengthSampler
    correlation: float
    followup: LengthSampler  # new user tokens of each later turn of a session
    #: Tokens of the class's shared system prompt, and the prefix id tagging it (-1: none).
    system_prompt_tokens: int = 0
    system_prefix_id: int = -1

    def tag(self, request: Request) -> None:
        """Put the class's system prompt before ``request``'s prompt, tagged as a prefix."""
        if self.system_prompt_tokens:
            request.prompt_tokens += self.system_prompt_tokens
            request.prefix_id = self.system_prefix_id
            request.prefix_tokens = self.system_prompt_tokens


#: System-prompt prefix ids start here, far above any session id.
SYSTEM_PREFIX_ID_BASE = 1 << 40


def build_profiles(spec: Mapping[str, Any], base_dir: Path | None) -> list[ClassProfile]:
    """Class profiles of a dumped ``WorkloadConfig`` (one ``default`` class without ``classes``).

    A class without its own lengths uses the workload's; without a session
    ``followup_tokens``, later turns add tokens drawn like the class's prompts.
    """
    correlation = float(spec.get("length_correlation") or 0.0)
    sessions = spec.get("sessions") or {}
    classes = spec.get("classes") or [{"name": DEFAULT_CLASS_NAME, "weight": 1.0, "priority": 0}]
    profiles = []
    for entry in classes:
        prompt_spec = entry.get("prompt_tokens") or spec["prompt_tokens"]
        followup_spec = sessions.get("followup_tokens") or prompt_spec
        system = entry.get("system_prompt_tokens")
        if system is None:
            system = spec.get("system_prompt_tokens") or 0
        class_correlation = entry.get("length_correlation")
        profiles.append(
            ClassProfile(
                name=str(entry["name"]),
                weight=float(entry.get("weight", 1.0)),
                priority=int(entry.get("priority") or 0),
                prompt=build_sampler(prompt_spec, base_dir=base_dir),
                output=build_sampler(
                    entry.get("output_tokens") or spec["output_tokens"], base_dir=base_dir
                ),
                correlation=correlation if class_correlation is None else float(class_correlation),
                followup=build_sampler(followup_spec, base_dir=base_dir),
                system_prompt_tokens=int(system),
                system_prefix_id=SYSTEM_PREFIX_ID_BASE + len(profiles) if system else -1,
            )
        )
    return profiles


class ShapeStream:
    """(class index, prompt tokens, output tokens) of successive requests."""

    def __init__(self, profiles: list[ClassProfile], seed: int, key: Hashable | None = None):
        """``key``: what determines the stream besides ``seed`` (the workload's classes and
        lengths), to share its chunks within ``streams.shared_draws``; None: not shared."""
        self._profiles = profiles
        weights = np.array([p.weight for p in profiles], dtype=np.float64)
        self._class_cdf = np.cumsum(weights) / weights.sum()
        self._class_rng = named_rng(seed, "class")
        self._length_rngs = [named_rng(seed, "lengths", p.name) for p in profiles]
        self._key = None if key is None else (key, seed)
        self._chunks = 0  # chunks handed out
        self._drawn = 0  # chunks drawn from this stream's generators
        self._buffer = ChunkBuffer(self._next_chunk)

    def _next_chunk(self, count: int) -> list[tuple[int, int, int]]:
        number = self._chunks
        self._chunks += 1
        return shared_chunk(self._key, number, lambda: self._draw_chunk(number, count))

    def _draw_chunk(self, number: int, count: int) -> list[tuple[int, int, int]]:
        while self._drawn < number:  # chunks shared before: draw them to reach this one
            self._refill(count)
        return self._refill(count)

    def _refill(self, count: int) -> list[tuple[int, int, int]]:
        self._drawn += 1
        if len(self._profiles) == 1:
            classes = np.zeros(count, dtype=np.int64)
        else:
            u = self._class_rng.random(count)
            classes = np.minimum(
                np.searchsorted(self._class_cdf, u, side="right"), len(self._profiles) - 1
            )
        prompts = np.empty(count, dtype=np.int64)
        outputs = np.empty(count, dtype=np.int64)
        for index, profile in enumerate(self._profiles):
            mask = classes == index
            drawn = int(mask.sum())
            if not drawn:
                continue
            u_prompt, u_output = correlated_uniforms(
                self._length_rngs[index], drawn, profile.correlation
            )
            prompts[mask] = profile.prompt.from_uniform(u_prompt)
            outputs[mask] = profile.output.from_uniform(u_output)
        return list(zip(classes.tolist(), prompts.tolist(), outputs.tolist(), strict=True))

    def next(self) -> tuple[int, int, int]:
        """The next request's (class index, prompt tokens, output tokens)."""
        return self._buffer.next()


@dataclass(slots=True)
class OpenSession:
    session_id: int
    class_index: int
    turns: int  # total turns of the conversation


class SessionTracker:
    """Multi-turn conversations: turn k+1 arrives ``think_time`` after turn k finished.

    Its prompt is turn k's prompt + turn k's output + new user tokens; the first
    ``prefix_tokens`` (everything but the new tokens) are tagged with ``prefix_id`` = the
    session id, so a prefix cache can reuse the KV blocks of the earlier turn. A
    conversation ends after its drawn number of turns, or early when the next prompt
    would exceed ``max_context_tokens``.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        profiles: list[ClassProfile],
        seed: int,
        base_dir: Path | None,
    ):
        self._profiles = profiles
        turns_spec = spec.get("turns", 1)
        turns_sampler = build_sampler(turns_spec, base_dir=base_dir)
        turns_rng = named_rng(seed, "session-turns")
        self._turns = ChunkBuffer(lambda n: turns_sampler.draw(turns_rng, n))
        think_sampler = build_sampler(
            spec.get("think_time_s", 0.0), integer=False, base_dir=base_dir
        )
        think_rng = named_rng(seed, "session-think")
        self._think = ChunkBuffer(lambda n: think_sampler.draw(think_rng, n))
        self._followups = [self._followup_buffer(p, seed) for p in profiles]
        limit = spec.get("max_context_tokens")
        self._max_context = math.inf if limit is None else int(limit)
        self._next_session_id = 0
        self._awaiting: dict[int, OpenSession] = {}

    @staticmethod
    def _followup_buffer(profile: ClassProfile, seed: int) -> ChunkBuffer:
        rng = named_rng(seed, "session-followup", profile.name)

        def refill(count: int) -> list[tuple[int, int]]:
            new_tokens = profile.followup.draw(rng, count)
            outputs = profile.output.draw(rng, count)
            return list(zip(new_tokens.tolist(), outputs.tolist(), strict=True))

        return ChunkBuffer(refill)

    @property
    def awaiting(self) -> int:
        """Issued requests whose conversation continues once they finish."""
        return len(self._awaiting)

    def start(self, request: Request, class_index: int) -> None:
        """Make ``request`` (already numbered) the first turn of a new conversation."""
        session_id = self._next_session_id
        self._next_session_id += 1
        request.session_id = session_id
        if request.prefix_id < 0:  # a first turn keeps its system-prompt tag, if any
            request.prefix_id = session_id
        request.turn = 0
        turns = int(self._turns.next())
        if turns > 1:
            self._awaiting[request.request_id] = OpenSession(session_id, class_index, turns)

    def issued(self, request: Request, session: OpenSession) -> None:
        """Note that a later turn was issued (numbered), so its completion is awaited."""
        if request.turn + 1 < session.turns:
            self._awaiting[request.request_id] = session

    def follow_up(self, request: Request, finish_s: float) -> tuple[Request, OpenSession] | None:
        """The next turn after ``request`` finished at ``finish_s`` (unnumbered: id -1) and
        its conversation, or None when the conversation is over."""
        session = self._awaiting.pop(request.request_id, None)
        if session is None:
            return None
        new_tokens, output_tokens = self._followups[session.class_index].next()
        think_s = self._think.next()
        history_tokens = request.prompt_tokens + request.output_tokens
        prompt_tokens = history_tokens + new_tokens
        if prompt_tokens > self._max_context:
            return None
        profile = self._profiles[session.class_index]
        turn = Request(
            request_id=-1,
            arrival_s=finish_s + think_s,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            class_name=profile.name,
            priority=profile.priority,
            session_id=session.session_id,
            turn=request.turn + 1,
            prefix_id=session.session_id,
            prefix_tokens=history_tokens,
        )
        return turn, session
