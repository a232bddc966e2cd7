"""Errors that describe a user's mistake (bad input), shown as one line each, never a traceback,
and the one error of a run stopped from outside (``WorkerStopped``).

This module imports nothing of ours, so every layer may raise these.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave us: the message names the field, the value and
    what is allowed. ``messages`` holds one line per problem when several were found."""

    def __init__(self, message: str | list[str]):
        self.messages = [message] if isinstance(message, str) else list(message)
        super().__init__("\n".join(self.messages))


class UnknownNameError(UserError, KeyError):
    """A catalog name (GPU, model, link, policy, ...) that does not exist."""

    def __init__(self, kind: str, name: str, known: list[str]):
        import difflib

        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; known: {', '.join(sorted(known))}")
        self.kind, self.name, self.known = kind, name, known

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.messages[0]


class WorkerStopped(Exception):
    """A local worker process ended before finishing its task (a signal sent to it, out
    of memory): not a mistake in the input, but the run cannot go on."""
