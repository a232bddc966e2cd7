"""The unit of work: one request as the workload produces it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Request:
    """A request arriving at the serving system (plain data; the engine tracks its progress).

    ``prefix_tokens`` leading prompt tokens are shared with an earlier request carrying the
    same ``prefix_id`` (an earlier turn of the session, or a declared system prompt), so a
    prefix cache may hold their KV blocks.
    """

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    class_name: str = "default"
    priority: int = 0
    session_id: int = -1
    turn: int = 0
    prefix_id: int = -1
    prefix_tokens: int = 0
