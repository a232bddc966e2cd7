"""Where independent simulations run: in this process, in local worker processes, or on a
Dask distributed cluster. Every task is a pure function of its payload (a scenario as plain
data, seeds included), so the numbers do not depend on where it ran.

Local workers end with their parent: a worker that receives SIGINT or SIGTERM exits at
once (quietly: it holds nothing to save), a worker whose parent dies is sent SIGTERM
(Linux), and when the parent stops early (an error, Ctrl-C, SIGTERM) it terminates its
workers instead of waiting for their tasks. A worker that stopped makes the parent stop
with :class:`WorkerStopped`.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from simulator.errors import UserError, WorkerStopped, check_termination
from simulator.specs.files import shown

#: Longest a wait for workers blocks before looking whether SIGTERM arrived meanwhile (s):
#: a signal handler's exception can be lost where it lands.
WAIT_SLICE_S = 0.5
#: Signals that stop a command and its workers.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
#: The form of a Dask scheduler address, for messages.
SCHEDULER_EXAMPLE = "tcp://host:8786"
#: Why a command stops when one of its workers did.
WORKER_STOPPED = (
    "a worker process stopped before finishing its task (a signal, or out of memory); the "
    "tasks left were not run"
)


def _exit_at_once(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def _worker_setup() -> None:
    """In each worker: SIGINT and SIGTERM end it at once; its parent's death sends SIGTERM."""
    try:
        signal.signal(signal.SIGINT, _exit_at_once)
        signal.signal(signal.SIGTERM, _exit_at_once)
        if hasattr(signal, "pthread_sigmask"):
            # forked with the stop signals held (``_stop_signals_held``): now they end it
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except BaseException:
        # a stop signal reached the fresh worker under its parent's handlers, which raise
        # to unwind the parent: it ends as quietly as under its own
        os._exit(128 + signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the line above took effect
        os._exit(128 + signal.SIGTERM)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait while the pool forks workers: one landing in the parent's
    at-fork callbacks would have its exception swallowed there, and a fresh worker gets
    them only once its own handlers are set (``_worker_setup`` releases them)."""
    held = hasattr(signal, "pthread_sigmask")
    if held:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_workers(pool) -> None:
    """Terminate a process pool's workers now (running tasks are abandoned)."""
    processes = list(getattr(pool, "_processes", {}).values())
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


def _dask_client(scheduler: Any):
    """A ``distributed.Client`` for an address (or the client itself when given one)."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError(
            "--dask-scheduler needs Dask distributed: pip install 'dask[distributed]'"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, False
    given = shown(scheduler) if isinstance(scheduler, str) else type(scheduler).__name__
    if isinstance(scheduler, str) and not scheduler.strip():
        raise UserError(
            f"--dask-scheduler {given}: empty; give a scheduler address such as {SCHEDULER_EXAMPLE}"
        )
    try:
        return Client(scheduler, timeout="10s"), True
    except (ValueError, TypeError) as exc:
        # distributed reads the address only when connecting: a malformed one (no port,
        # an unknown scheme, not a string) surfaces here
        reason = str(exc) if len(str(exc)) <= 200 else "malformed"  # it may quote the address
        raise UserError(
            f"--dask-scheduler {given}: not a scheduler address ({reason}); give one such as "
            f"{SCHEDULER_EXAMPLE}"
        ) from None
    except OSError as exc:
        raise UserError(f"--dask-scheduler {given}: cannot connect ({exc})") from None


class TaskRunner:
    """Runs batches of tasks on one executor kept open between batches (a context manager).

    ``dask_scheduler``: a scheduler address or a ``distributed.Client``; otherwise
    ``workers`` > 1 runs a local process pool, and 1 runs here, in order."""

    def __init__(self, workers: int = 1, dask_scheduler: Any = None):
        self.workers = max(1, workers)
        self.dask_scheduler = dask_scheduler
        self._pool = None
        self._pool_size = 0
        self._client = None
        self._owns_client = False

    def __enter__(self) -> TaskRunner:
        if self.dask_scheduler is not None:
            self._client, self._owns_client = _dask_client(self.dask_scheduler)
        elif self.workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            self._pool_size = min(self.workers, os.cpu_count() or 1)
            self._pool = ProcessPoolExecutor(max_workers=self._pool_size, initializer=_worker_setup)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._pool is not None:
            if exc_type is not None:  # stopping early: do not wait for running tasks
                # Workers first: the pool then fails every pending task itself (cancelling
                # them here as well would make its manager thread trip over them).
                _stop_workers(self._pool)
                self._pool.shutdown(wait=True)
            else:
                self._pool.shutdown(cancel_futures=True)
        if self._client is not None and self._owns_client:
            self._client.close()

    def run(self, fn: Callable[[Any], Any], payloads: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(payloads[index]))`` as tasks finish (any order)."""
        if not payloads:
            return
        if self._client is not None:
            yield from _run_dask(self._client, fn, payloads)
        elif self._pool is not None and len(payloads) > 1:
            yield from _run_pool(self._pool, fn, payloads)
        else:
            for i, payload in enumerate(payloads):
                yield i, fn(payload)

    @property
    def local_workers(self) -> int:
        """Worker processes of a local pool (0: tasks run here, or on Dask)."""
        return self._pool_size if self._pool is not None else 0

    def submit(self, fn: Callable[[Any], Any], payload: Any):
        """Start ``fn(payload)`` on a local worker now; a ``concurrent.futures.Future``
        (``first_done`` waits for some of them). Local pools only."""
        if self._pool is None:
            raise RuntimeError("submit needs a local process pool (workers > 1)")
        with _stop_signals_held():
            return self._pool.submit(fn, payload)


def first_done(futures) -> set:
    """Wait until at least one of ``futures`` is done; the done ones. A worker that stopped
    makes the caller stop (``WorkerStopped``)."""
    from concurrent.futures.process import BrokenProcessPool

    done = _wait_first(futures)
    for future in done:
        if isinstance(future.exception(), BrokenProcessPool):
            raise WorkerStopped(WORKER_STOPPED)
    return done


def run_tasks(
    fn: Callable[[Any], Any],
    payloads: Sequence[Any],
    *,
    workers: int = 1,
    dask_scheduler: Any = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(payloads[index]))`` as tasks finish, on a ``TaskRunner``."""
    with TaskRunner(workers, dask_scheduler) as runner:
        yield from runner.run(fn, payloads)


def _wait_first(futures) -> set:
    """The done ones of ``futures`` once at least one is, looking every ``WAIT_SLICE_S``
    whether SIGTERM arrived (``errors.check_termination``)."""
    from concurrent.futures import FIRST_COMPLETED, wait

    while True:
        check_termination()
        done, _ = wait(futures, timeout=WAIT_SLICE_S, return_when=FIRST_COMPLETED)
        if done:
            return done


def _run_pool(pool, fn, payloads) -> Iterator[tuple[int, Any]]:
    from concurrent.futures.process import BrokenProcessPool

    with _stop_signals_held():
        futures = {pool.submit(fn, p): i for i, p in enumerate(payloads)}
    pending = set(futures)
    while pending:
        done = _wait_first(pending)
        pending -= done
        for future in done:
            try:
                result = future.result()
            except BrokenProcessPool:
                raise WorkerStopped(WORKER_STOPPED) from None
            yield futures[future], result


def _run_dask(client, fn, payloads) -> Iterator[tuple[int, Any]]:
    from distributed import as_completed

    futures = client.map(fn, list(payloads), pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    for future in as_completed(futures):
        yield index[future.key], future.result()
