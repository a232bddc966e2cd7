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
        return Client(scheduler, timeout="20s"), True
    except OSError as exc:
        raise UserError(f"--dask-scheduler {scheduler!r}: cannot connect ({exc})") from None


def run_tasks(
    fn: Callable[[Any], Any],
    payloads: Sequence[Any],
    *,
    workers: int = 1,
    dask_scheduler: Any = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, fn(payloads[index]))`` as tasks finish (any order).

    ``dask_scheduler``: a scheduler address or a ``distributed.Client``; otherwise
    ``workers`` > 1 runs a local process pool, and 1 runs here, in order."""
    if not payloads:
        return
    if dask_scheduler is not None:
        yield from _run_dask(fn, payloads, dask_scheduler)
    elif workers > 1 and len(payloads) > 1:
        yield from _run_processes(fn, payloads, workers)
    else:
        for i, payload in enumerate(payloads):
            yield i, fn(payload)


def _run_processes(fn, payloads, workers) -> Iterator[tuple[int, Any]]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    workers = min(workers, len(payloads), os.cpu_count() or workers)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(fn, p): i for i, p in enumerate(payloads)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _run_dask(fn, payloads, scheduler) -> Iterator[tuple[int, Any]]:
    from distributed import as_completed

    client, owned = _dask_client(scheduler)
    try:
        futures = client.map(fn, list(payloads), pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            yield index[future.key], future.result()
    finally:
        if owned:
            client.close()
