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


class Terminated(BaseException):
    """SIGTERM arrived: unwind (closing files, stopping workers) and exit."""


#: Whether SIGTERM has arrived (``request_termination``).
_termination_requested = False


def request_termination() -> None:
    """Record that SIGTERM arrived and unwind (the signal handler of the command line). A
    handler's exception can be swallowed where it lands (an at-fork callback ignores it),
    so the record stays for code that waits to check (``check_termination``)."""
    global _termination_requested
    _termination_requested = True
    raise Terminated


def check_termination() -> None:
    """Unwind if SIGTERM arrived earlier (its exception may have been swallowed)."""
    if _termination_requested:
        raise Terminated


def clear_termination() -> None:
    """Forget an earlier SIGTERM (a command starting afresh in the same process)."""
    global _termination_requested
    _termination_requested = False
