"""The Vidur reference point for the ``vllm`` profile, simulated by servesim.

``benchmarks/data/vidur_reference.yaml``: Llama-3.1-8B on one A100-80GB SXM, 512 prompt and
128 output tokens, Poisson arrivals at 21 req/s (above what one GPU sustains), batch cap
128, token budget 4,096; Vidur (MLSys'24) gives this configuration 16.5 req/s. The
throughput of an overloaded replica is its capacity: requests completed per second over
the measured window.

Two servesim runs: the ``vllm`` profile as it runs by default (the V1 engine's chunked
prefill), and the same profile with the scheduler Vidur simulates (vLLM's V0 scheduler:
whole prompts first, apart from decodes: ``engine.batching: continuous``). The A100 is
priced with vLLM's kernel calibration for it. Held out: nothing is fitted to 16.5 req/s.

Run: ``python benchmarks/vidur_reference.py [--requests 4000]`` (a few seconds).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.api import run, scenario_from_dict  # noqa: E402

REFERENCE = Path(__file__).resolve().parent / "data" / "vidur_reference.yaml"
#: servesim's schedulers: the profile's default, and the one Vidur simulates.
SCHEDULERS = {
    "vllm profile default (chunked prefill)": None,
    "Vidur's vLLM V0 scheduler": "continuous",
}


def scenario(ref: dict, requests: int, batching: str | None):
    """The reference configuration as a servesim scenario."""
    engine = {
        "profile": "vllm",
        "max_num_seqs": ref["max_num_seqs"],
        "max_num_batched_tokens": ref["max_num_batched_tokens"],
    }
    if batching is not None:
        engine["batching"] = batching
    return scenario_from_dict(
        {
            "name": "vidur_reference",
            "model": ref["model"],
            "hardware": {"gpu": ref["gpu"], "tensor_parallel": ref["tensor_parallel"]},
            "engine": engine,
            "workload": {
                "arrival": ref["arrival"],
                "prompt_tokens": {"distribution": "fixed", "value": ref["prompt_tokens"]},
                "output_tokens": {"distribution": "fixed", "value": ref["output_tokens"]},
                "num_requests": requests,
                "seed": 0,
            },
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args(argv)
    ref = yaml.safe_load(REFERENCE.read_text())["reference"]
    print(f"Vidur: {ref['throughput_rps']} req/s ({REFERENCE.name})")
    for label, batching in SCHEDULERS.items():
        summary = run(scenario(ref, args.requests, batching)).summary
        rps = summary["throughput_rps"]
        low, high = summary.get("throughput_ci95_rps") or (None, None)
        error = (rps / ref["throughput_rps"] - 1) * 100
        interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
        print(f"  servesim, {label:<40} {rps:6.2f} req/s{interval}  {error:+.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
