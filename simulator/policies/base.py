"""The planner interface: a policy looks at a read-only view of a replica and plans one step.

Policies are pure: no SimPy, no clock of their own. The engine asks ``plan(view, now_s)``
whenever the batch may change (an arrival, a completion, the end of a prefill) and then
executes the plan, advancing pure-decode stretches in one event when the plan allows.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol, Union

from pydantic import BeforeValidator, ConfigDict, Field, ValidationError

from simulator.errors import UnknownNameError, UserError
from simulator.specs.strict import StrictModel, validation_messages

#: A prefill budget without limit: every admitted prompt is prefilled whole in this step.
ALL_TOKENS = 1 << 62


@dataclass(frozen=True, slots=True)
class WaitingItem:
    """A request waiting for admission, as a policy sees it."""

    index: int  # position in the replica's waiting queue
    prompt_tokens: int  # tokens to prefill on admission (after any prefix-cache hit)
    blocks_needed: int  # KV blocks its admission takes
    arrival_s: float
    priority: int = 0  # larger values are more urgent


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """Read-only snapshot of one replica's scheduler state."""

    waiting: Sequence[WaitingItem]
    #: Prompt tokens each admitted, partly prefilled sequence can prefill in the next step
    #: (in order): what it still has to, at most its attention-data-parallel rank's budget.
    prefilling: Sequence[int]
    running_seqs: int  # sequences decoding (holding KV blocks)
    free_blocks: int  # free KV blocks, counting cached prefixes that may be evicted
    total_blocks: int
    watermark_blocks: int
    max_num_seqs: int
    max_num_batched_tokens: int
    #: Attention-data-parallel ranks: each schedules its own sequences under an equal share
    #: of ``max_num_batched_tokens`` (1: the replica schedules as one).
    ranks: int = 1

    @property
    def seqs(self) -> int:
        """Sequences holding a slot: decoding plus partly prefilled."""
        return self.running_seqs + len(self.prefilling)


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What the next step does.

    ``admit``: waiting-queue positions admitted now (their KV blocks are taken); they join
    the partly prefilled sequences, after those. ``prefill_budget``: prompt tokens this step
    prefills, handed to the partly prefilled sequences in order (the last may get a chunk).
    ``decode``: the running sequences take a decode step (fused with any prefill).
    ``max_steps``: how many identical pure-decode steps the engine may run back to back
    before asking again. ``pad``: static batching: prompts are padded to the longest and
    finished sequences keep computing until the whole batch finishes. An idle plan waits for
    an arrival, or until ``wake_at_s``.
    """

    admit: tuple[int, ...] = ()
    prefill_budget: int = 0
    decode: bool = False
    max_steps: int = ALL_TOKENS
    pad: bool = False
    wake_at_s: float = math.inf

    @property
    def idle(self) -> bool:
        return not self.admit and not self.decode and self.prefill_budget == 0


IDLE = BatchPlan()


class BatchingPolicy(Protocol):
    """One method: plan the next step."""

    name: str

    def plan(self, view: ReplicaView, now_s: float) -> BatchPlan: ...


def admit_in_order(
    view: ReplicaView, order: Sequence[WaitingItem], token_budget: int, chunking: bool
) -> tuple[list[int], int]:
    """Admit waiting items in ``order`` while slots, free blocks (above the watermark) and the
    token budget allow; a blocked item stops admission (no overtaking).

    Without ``chunking`` a prompt must fit the budget whole (except the first one of an empty
    step); with it, the last admitted prompt may be cut. Returns the positions admitted and the
    prompt tokens they bring into this step."""
    admitted: list[int] = []
    seqs = view.seqs
    free = view.free_blocks
    tokens = 0
    for item in order:
        if seqs >= view.max_num_seqs or tokens >= token_budget:
            break
        if not chunking and tokens + item.prompt_tokens > token_budget and admitted:
            break
        if free - item.blocks_needed < view.watermark_blocks:
            break
        admitted.append(item.index)
        seqs += 1
        free -= item.blocks_needed
        tokens += item.prompt_tokens
    return admitted, tokens


def rank_share(budget: int, ranks: int) -> int:
    """Tokens one of ``ranks`` attention-data-parallel ranks schedules in a step of
    ``budget`` tokens."""
    return max(budget // ranks, 1)


def rank_rooms(budget: int, ranks: int, running_seqs: int) -> list[int]:
    """Prompt tokens each of ``ranks`` ranks can still take in a step of ``budget`` tokens
    (split evenly) once its decodes are in: the running sequences spread evenly over the
    ranks, one token each."""
    share = rank_share(budget, ranks)
    base, extra = divmod(running_seqs, ranks)
    return [share - base - (r < extra) for r in range(ranks)]


def pack_whole_prompts(
    view: ReplicaView, order: Sequence[WaitingItem], rooms: list[int], share: int
) -> tuple[list[int], int]:
    """Place the partly prefilled sequences, then admit waiting items in ``order``, each
    prompt whole on the first rank with room for it (``rooms``: each rank's prompt tokens
    left, updated in place), while slots and free blocks (above the watermark) allow; an
    item that fits nowhere stops admission (no overtaking).

    A prompt longer than a rank's whole ``share`` of the budget can never join a step whole:
    it goes alone to a rank with no prompt yet and is prefilled in chunks of that rank's
    room, as is a partly prefilled one. Returns the positions admitted and the prompt tokens
    placed."""
    has_prompt = [False] * len(rooms)
    placed = 0
    for todo in view.prefilling:
        r = max(range(len(rooms)), key=rooms.__getitem__)
        take = min(todo, rooms[r])
        if take <= 0:
            break
        rooms[r] -= take
        has_prompt[r] = True
        placed += take
    admitted: list[int] = []
    seqs = view.seqs
    free = view.free_blocks
    for item in order:
        if seqs >= view.max_num_seqs or free - item.blocks_needed < view.watermark_blocks:
            break
        tokens = item.prompt_tokens
        r = next((r for r, room in enumerate(rooms) if room >= tokens), None)
        if r is None and tokens > share:
            r = next((r for r, room in enumerate(rooms) if room > 0 and not has_prompt[r]), None)
        if r is None:
            break
        take = min(tokens, rooms[r])
        rooms[r] -= take
        has_prompt[r] = True
        placed += take
        admitted.append(item.index)
        seqs += 1
        free -= item.blocks_needed
    return admitted, placed


#: A policy's token budget per step, and a count of requests or steps: positive, bounded.
StepTokens = Annotated[int, Field(gt=0, le=1 << 24)]
PolicyCount = Annotated[int, Field(gt=0, le=1 << 20)]


class PolicyParams(StrictModel):
    """Parameters of one batching policy; ``policy`` names it. Each policy declares its own
    subclass with ``policy: Literal["name"]`` and its parameters (unknown keys, wrong types
    and infinite numbers are errors)."""

    model_config = ConfigDict(frozen=True)

    policy: str

    def __str__(self) -> str:
        return self.policy


@dataclass(frozen=True)
class _Registered:
    params: type[PolicyParams]
    build: Callable[[PolicyParams], BatchingPolicy]


_REGISTRY: dict[str, _Registered] = {}


def register_policy(params: type[PolicyParams]) -> Callable:
    """Class decorator registering a batching policy, built from its ``params`` model (whose
    ``policy`` literal is the name it is registered under)."""
    name = params.model_fields["policy"].default

    def wrap(cls: Callable[[PolicyParams], BatchingPolicy]) -> Callable:
        _REGISTRY[name] = _Registered(params, cls)
        return cls

    return wrap


def known_policies() -> list[str]:
    return sorted(_REGISTRY)


def params_model(name: str) -> type[PolicyParams]:
    """The parameter model of the policy registered as ``name`` (unknown: the known ones)."""
    if name not in _REGISTRY:
        raise UnknownNameError("batching policy", name, known_policies())
    return _REGISTRY[name].params


def policy_description(name: str) -> str:
    """What the policy registered as ``name`` does: its class's docstring, else its module's."""
    build = _REGISTRY[name].build
    return build.__doc__ or sys.modules[build.__module__].__doc__ or ""


def policy_params(value: object) -> PolicyParams:
    """Validated parameters from a policy name, a mapping ``{policy: name, param: value}`` or
    parameters already validated. A ``ValueError`` names what is wrong: an unknown policy or
    parameter (with the closest known one), or a value out of range."""
    if isinstance(value, PolicyParams):
        return value
    if isinstance(value, str):
        value = {"policy": value}
    if not isinstance(value, dict):
        raise ValueError(f"expected a policy name or a mapping, got {type(value).__name__}")
    name = value.get("policy")
    if not isinstance(name, str):
        given = ", ".join(f"{k}: {v}" for k, v in value.items() if k != "policy")
        example = "{policy: NAME" + (f", {given}" if given else "") + "}"
        raise ValueError(
            f"name the policy with its parameters, as {example} (policies: "
            f"{', '.join(known_policies())}); --set engine.batching.PARAM=... on a policy "
            "given by name (or by the engine profile) starts a mapping without it, so set the "
            f"whole setting: --set 'engine.batching={example}'"
        )
    try:
        model = params_model(name)
    except UnknownNameError as exc:
        raise ValueError(str(exc)) from None
    allowed = [key for key in model.model_fields if key != "policy"]
    for key in value:
        if key != "policy" and key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"batching policy {name!r} has no parameter {key!r}{hint} "
                f"(its parameters: {', '.join(allowed) or 'none'})"
            )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise ValueError("; ".join(validation_messages(exc, value))) from None


def make_policy(params: PolicyParams | str, **options: object) -> BatchingPolicy:
    """A fresh policy (policies keep per-replica state) from its parameters, or from a name
    and keyword parameters; unknown names and parameters are ``UserError``s listing the
    known ones."""
    if isinstance(params, str):
        if params not in _REGISTRY:
            raise UnknownNameError("batching policy", params, known_policies())
        try:
            params = policy_params({"policy": params, **options})
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return _REGISTRY[params.policy].build(params)


def batching_params_type() -> object:
    """The type of a batching setting: the union of every registered policy's parameters,
    chosen by ``policy`` (a bare name is read as ``{policy: name}``)."""
    members = tuple(entry.params for _, entry in sorted(_REGISTRY.items()))
    return Annotated[
        Union[members],  # noqa: UP007 (a union built from the registry)
        Field(discriminator="policy"),
        BeforeValidator(policy_params),
    ]
