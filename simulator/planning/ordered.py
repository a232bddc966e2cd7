"""Decisions taken one item after the other, with the items' tasks run ahead on workers.

A search decides its points in order: whether a point is simulated at all depends on the
points decided before it (a point that an earlier one already beats is pruned). Taken
strictly in turn, only one simulation runs at a time. Here the next points' simulations
start on idle workers before their turn (speculatively); the decisions are still taken in
order, each on exactly what the points before it produced, so the answer is the one of a
serial search, and a speculative result is dropped when its point turns out pruned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simulator.planning.executors import TaskRunner, first_done


def decide_in_order(
    runner: TaskRunner,
    fn: Callable[[Any], Any],
    count: int,
    payload: Callable[[int], Any],
    pruned: Callable[[int], bool],
    settle: Callable[[int, Any], None],
    skip: Callable[[int], None],
) -> None:
    """For each item ``i`` in ``0..count-1`` in order: if ``pruned(i)`` (asked when every
    item before it is settled or skipped), ``skip(i)``; else ``settle(i, fn(payload(i)))``.

    ``pruned`` must only grow more likely as items settle (a point pruned by what is known
    stays pruned): an item already pruned by what is known is not run ahead. With a local
    pool of workers, up to as many tasks as workers run at once."""
    if runner.local_workers <= 1:
        for i in range(count):
            if pruned(i):
                skip(i)
            else:
                settle(i, fn(payload(i)))
        return
    running: dict[Any, int] = {}  # future -> item
    started: dict[int, Any] = {}  # item -> future
    results: dict[int, Any] = {}
    ahead = 0  # next item considered for running ahead
    for i in range(count):
        while True:
            ahead = max(ahead, i)
            while len(running) < runner.local_workers and ahead < count:
                if ahead not in started and ahead not in results and not pruned(ahead):
                    future = runner.submit(fn, payload(ahead))
                    running[future], started[ahead] = ahead, future
                ahead += 1
            if pruned(i):
                future = started.pop(i, None)
                if future is not None and running.pop(future, None) is not None:
                    future.cancel()  # a task already running finishes; its result is dropped
                results.pop(i, None)
                skip(i)
                break
            if i in results:
                started.pop(i, None)
                settle(i, results.pop(i))
                break
            if i not in started:
                future = runner.submit(fn, payload(i))
                running[future], started[i] = i, future
            for future in first_done(list(running)):
                item = running.pop(future)
                if started.get(item) is future:
                    results[item] = future.result()
