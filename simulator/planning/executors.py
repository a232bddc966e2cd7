"""Where independent simulations run: in this process, in local worker processes, or on a
Dask distributed cluster. Every task is a pure function of its payload (a scenario as plain
data, seeds included), so the numbers do not depend on where it ran.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from simulator.errors import UserError


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
    try:
        return Client(scheduler, timeout="10s"), True
    except OSError as exc:
        raise UserError(f"--dask-scheduler {scheduler!r}: cannot connect ({exc})") from None


class TaskRunner:
    """Runs batches of tasks on one executor kept open between batches (a context manager).

    ``dask_scheduler``: a scheduler address or a ``distributed.Client``; otherwise
    ``workers`` > 1 runs a local process pool, and 1 runs here, in order."""

    def __init__(self, workers: int = 1, dask_scheduler: Any = None):
        self.workers = max(1, workers)
        self.dask_scheduler = dask_scheduler
        self._pool = None
        self._client = None
        self._owns_client = False

    def __enter__(self) -> TaskRunner:
        if self.dask_scheduler is not None:
            self._client, self._owns_client = _dask_client(self.dask_scheduler)
        elif self.workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=min(self.workers, os.cpu_count() or 1))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
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


def _run_pool(pool, fn, payloads) -> Iterator[tuple[int, Any]]:
    from concurrent.futures import as_completed

    futures = {pool.submit(fn, p): i for i, p in enumerate(payloads)}
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _run_dask(client, fn, payloads) -> Iterator[tuple[int, Any]]:
    from distributed import as_completed

    futures = client.map(fn, list(payloads), pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    for future in as_completed(futures):
        yield index[future.key], future.result()
