"""Qualitative effects of batching policies, KV-cache management and speculative decoding,
measured on the simulator. Prints one table per effect. Run: ``python benchmarks/policies.py``.
"""

from __future__ import annotations

import copy

from simulator.api import run, scenario_from_dict

BASE = {
    "name": "policies",
    "model": "llama-3.1-8b",
    "hardware": {"gpu": "h100-sxm", "replicas": 1},
    "engine": {"max_num_seqs": 128, "max_num_batched_tokens": 32768},
    "workload": {
        "arrival": {"process": "poisson", "rate_per_s": 3.0},
        "prompt_tokens": {"distribution": "lognormal", "mean": 3000, "sigma": 1.0, "max": 20000},
        "output_tokens": {"distribution": "uniform", "min": 100, "max": 300},
        "num_requests": 1500,
        "seed": 0,
    },
}


def simulate(**changes) -> dict:
    data = copy.deepcopy(BASE)
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    return run(scenario_from_dict(data))


def row(label: str, s: dict) -> str:
    return (
        f"  {label:34s} {s['throughput_rps']:7.2f} {s['ttft_ms']['p50']:9.0f} "
        f"{s['ttft_ms']['p99']:9.0f} {s['tpot_ms']['mean']:8.1f} {s['itl_ms']['p99']:8.1f}"
        f"{'  SATURATED' if s['saturated'] else ''}"
    )


HEADER = (
    f"  {'':34s} {'req/s':>7s} {'TTFT p50':>9s} {'TTFT p99':>9s} {'TPOT':>8s} "
    f"{'ITL p99':>8s}   (ms)"
)


def chunked_vs_continuous() -> None:
    print(
        "1. Chunked prefill vs prefill-first continuous batching "
        "(8B on H100, lognormal prompts mean 3000, 3 req/s)"
    )
    print(HEADER)
    print(row("continuous", simulate().summary))
    for chunk in (256, 512, 2048):
        s = simulate(engine={"batching": {"policy": "chunked", "chunk_size": chunk}})
        print(row(f"chunked, {chunk}-token budget", s.summary))
    s = simulate(engine={"batching": {"policy": "decode_priority", "chunk_size": 512}})
    print(row("decode_priority, 512-token chunks", s.summary))


def max_rate(slo_e2e_p99_ms: float, engine: dict, workload: dict) -> tuple[float, dict]:
    best = (0.0, None)
    for rate in (0.5, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20):
        s = simulate(
            engine=engine,
            workload={**workload, "arrival": {"process": "poisson", "rate_per_s": rate}},
        ).summary
        if s["saturated"] or s["e2e_ms"]["p99"] > slo_e2e_p99_ms:
            break
        best = (rate, s)
    return best


def static_vs_continuous() -> None:
    slo = 20_000.0
    workload = {
        "prompt_tokens": {"distribution": "uniform", "min": 100, "max": 3000},
        "num_requests": 800,
    }
    print(
        f"\n2. Static vs continuous batching: highest Poisson rate with E2E p99 ≤ "
        f"{slo / 1000:.0f} s (uniform prompts 100–3000)"
    )
    for label, engine in (
        ("continuous", {}),
        ("static, batch 32", {"batching": {"policy": "static", "batch_size": 32}}),
        ("static, batch 8", {"batching": {"policy": "static", "batch_size": 8}}),
    ):
        rate, s = max_rate(slo, engine, workload)
        got = f"{s['throughput_rps']:.2f} req/s served" if s else "none"
        print(f"  {label:20s} max rate {rate:5.1f} req/s  ({got})")


def prefix_caching() -> None:
    workload = {
        "arrival": {"process": "poisson", "rate_per_s": 3.0},
        "num_requests": 1500,
        "prompt_tokens": {"distribution": "uniform", "min": 200, "max": 1500},
        "output_tokens": {"distribution": "uniform", "min": 50, "max": 300},
        "sessions": {"turns": {"distribution": "uniform", "min": 2, "max": 8}, "think_time_s": 5.0},
    }
    print("\n3. Prefix caching on multi-turn chat (sessions of 2–8 turns)")
    print(
        f"  {'':18s} {'hit rate':>9s} {'prompt tok':>11s} {'prefilled':>10s} "
        f"{'TTFT mean':>10s} {'TTFT p99':>9s}"
    )
    for on in (False, True):
        r = simulate(engine={"prefix_caching": on}, workload=workload)
        req = r.records.requests
        s = r.summary
        print(
            f"  {'on' if on else 'off':18s} {s['prefix_cache_hit_fraction'] or 0:9.1%} "
            f"{int(req.prompt_tokens.sum()):11,d} "
            f"{r.records.prefill_tokens_computed:10,d} "
            f"{s['ttft_ms']['mean']:10.0f} {s['ttft_ms']['p99']:9.0f}"
        )


def disaggregated() -> None:
    print(
        "\n4. Disaggregated prefill/decode (1 prefill + 1 decode H100, KV over InfiniBand "
        "NDR) vs 2 colocated H100 replicas; TPOT SLO p99 ≤ 15 ms"
    )
    print(
        f"  {'rate':>5s} {'':12s} {'req/s':>7s} {'TTFT p50':>9s} {'TTFT p99':>9s} "
        f"{'TPOT p99':>9s}  SLO"
    )
    workload = {
        "prompt_tokens": {"distribution": "lognormal", "mean": 2000, "sigma": 0.8},
        "num_requests": 1500,
    }
    for rate in (4, 8, 10, 12):
        wl = {**workload, "arrival": {"process": "poisson", "rate_per_s": rate}}
        colo = simulate(hardware={"gpu": "h100-sxm", "replicas": 2}, workload=wl).summary
        dis = simulate(
            disaggregated={
                "prefill": {"gpu": "h100-sxm", "engine": {"batching": "chunked"}},
                "decode": {"gpu": "h100-sxm"},
                "kv_link": "infiniband-ndr",
            },
            workload=wl,
        )
        for label, s in (("colocated", colo), ("disaggregated", dis.summary)):
            ok = "met" if s["tpot_ms"]["p99"] <= 15 and not s["saturated"] else "BROKEN"
            print(
                f"  {rate:5.0f} {label:12s} {s['throughput_rps']:7.2f} "
                f"{s['ttft_ms']['p50']:9.0f} {s['ttft_ms']['p99']:9.0f} "
                f"{s['tpot_ms']['p99']:9.1f}  {ok}"
            )
        gb = dis.records.kv_transfer_bytes / 1e9
        print(f"  {'':5s} {'':12s} KV shipped: {gb:.0f} GB")


def preemption() -> None:
    print("\n5. KV demand above capacity (1B model, 5% of an H100: ~8k KV tokens; long outputs)")
    for mode in ("recompute", "swap"):
        r = run(
            scenario_from_dict(
                {
                    "model": "llama-3.2-1b",
                    "hardware": {"gpu": "h100-sxm"},
                    "engine": {
                        "gpu_memory_utilization": 0.05,
                        "max_num_batched_tokens": 2048,
                        "preemption": mode,
                    },
                    "workload": {
                        "arrival": {"process": "poisson", "rate_per_s": 50},
                        "prompt_tokens": {"distribution": "uniform", "min": 32, "max": 512},
                        "output_tokens": {"distribution": "uniform", "min": 200, "max": 600},
                        "num_requests": 400,
                        "seed": 0,
                    },
                }
            )
        )
        s = r.summary
        print(
            f"  {mode:10s} completed {s['requests_completed']}/400, preemptions "
            f"{s['preemptions']}, swapped {r.records.swapped_bytes / 1e9:.1f} GB, "
            f"E2E mean {s['e2e_ms']['mean']:.0f} ms"
        )


def speculative() -> None:
    print(
        "\n6. Speculative decoding (draft Llama-3.2-1B, k = 4) on Llama-3.1-8B: "
        "speed-up of mean TPOT"
    )
    print(f"  {'acceptance':>10s}" + "".join(f"  {f'{r} req/s':>12s}" for r in (1, 10, 30)))
    workload = {
        "prompt_tokens": {"distribution": "uniform", "min": 100, "max": 1000},
        "num_requests": 600,
    }
    plain = {}
    for rate in (1, 10, 30):
        wl = {**workload, "arrival": {"process": "poisson", "rate_per_s": rate}}
        plain[rate] = simulate(workload=wl).summary
    for a in (0.0, 0.3, 0.6, 0.8, 0.9):
        cells = []
        for rate in (1, 10, 30):
            wl = {**workload, "arrival": {"process": "poisson", "rate_per_s": rate}}
            s = simulate(
                engine={
                    "speculative": {
                        "draft_model": "llama-3.2-1b",
                        "num_speculative_tokens": 4,
                        "acceptance_rate": a,
                    }
                },
                workload=wl,
            ).summary
            cells.append(f"{plain[rate]['tpot_ms']['mean'] / s['tpot_ms']['mean']:12.2f}×")
        print(f"  {a:10.1f}" + "".join(f"  {c}" for c in cells))
    print(
        "  mean batch (plain): "
        + ", ".join(f"{r} req/s: {plain[r]['mean_batch_size']:.0f}" for r in (1, 10, 30))
    )


if __name__ == "__main__":
    chunked_vs_continuous()
    static_vs_continuous()
    prefix_caching()
    disaggregated()
    preemption()
    speculative()
