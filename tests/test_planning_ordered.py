"""Decisions in order with tasks run ahead: the decisions of a serial run, whatever the
workers; cost models built once per replica layout within a search."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

from simulator.config.compile import cost_model, reused_builds
from simulator.planning.ordered import decide_in_order
from tests.conftest import make_scenario


class _Threads:
    """A stand-in for a local pool: ``local_workers`` threads."""

    def __init__(self, workers: int):
        self.local_workers = workers
        self._pool = ThreadPoolExecutor(workers)

    def submit(self, fn, payload):
        return self._pool.submit(fn, payload)


def _slow_square(x: int) -> int:
    time.sleep(random.random() / 500)
    return x * x


def _decisions(runner, values: list[int]) -> list[tuple[int, str]]:
    """Prune an item when an earlier settled result is a multiple of it plus one (an
    arbitrary rule that depends on earlier results)."""
    settled: list[int] = []
    log: list[tuple[int, str]] = []

    def pruned(i: int) -> bool:
        return any((r - 1) % values[i] == 0 for r in settled)

    def settle(i: int, result: int) -> None:
        settled.append(result)
        log.append((i, f"settled {result}"))

    decide_in_order(
        runner, _slow_square, len(values), lambda i: values[i], pruned, settle,
        lambda i: log.append((i, "pruned")),
    )  # fmt: skip
    return log


def test_running_ahead_decides_as_a_serial_run():
    rng = random.Random(7)
    values = [rng.randint(2, 40) for _ in range(60)]
    serial = _decisions(_Threads(1), values)
    assert any(d == "pruned" for _, d in serial) and any(d != "pruned" for _, d in serial)
    for workers in (2, 4):
        assert _decisions(_Threads(workers), values) == serial


def test_cost_models_are_built_once_per_layout_within_a_search():
    scenario = make_scenario()
    args = (scenario.model, scenario.hardware, scenario.engine, scenario.base_dir)
    assert cost_model(*args) is not cost_model(*args)
    with reused_builds():
        first = cost_model(*args)
        assert cost_model(*args) is first
        other = make_scenario(engine={"kv_dtype": "fp8"})
        assert cost_model(other.model, other.hardware, other.engine, other.base_dir) is not first
    assert cost_model(*args) is not first


def test_shared_draws_give_every_source_the_same_shapes():
    from simulator.workload import build_source
    from simulator.workload.streams import CHUNK_SIZE, shared_draws

    workload = make_scenario(
        workload={
            "length_correlation": 0.5,
            "classes": [{"name": "a", "weight": 2}, {"name": "b", "weight": 1}],
            "num_requests": 3 * CHUNK_SIZE,
        }
    ).workload

    def shapes(count: int) -> list[tuple[int, int, str]]:
        source = build_source(workload)
        return [
            (r.prompt_tokens, r.output_tokens, r.class_name)
            for r in (source.pop() for _ in range(count))
        ]

    alone = shapes(3 * CHUNK_SIZE)
    with shared_draws():
        assert shapes(CHUNK_SIZE + 5) == alone[: CHUNK_SIZE + 5]  # draws chunks 0 and 1
        assert shapes(3 * CHUNK_SIZE) == alone  # shares 0 and 1, draws 2
        assert shapes(3 * CHUNK_SIZE) == alone
