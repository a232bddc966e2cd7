"""Measured fused-MoE layers: one engine's MoE kernel time by tokens, per model shape and layout.

An engine runs a mixture-of-experts layer as one fused kernel (routing, the grouped gate/up
GEMM, the activation and the grouped down GEMM); how long it takes depends on the tokens
of the step and, at equal tokens, on the expert shape, on how the experts are split over
the GPUs (tensor-parallel slices of every expert, or whole experts per rank) and on how
unevenly the router spreads the tokens (the busiest rank sets the time). Measured kernel
tables (NVIDIA AIConfigurator's ``moe_perf``) time exactly that for the expert shapes of
common models under several layouts, so a model whose shape and layout were measured is
priced from its own curve, as AIConfigurator itself does; others fall back to the
efficiency grid over (tokens per expert, expert size, local experts).

Section format (``moe_measured`` of an engine calibration)::

    moe_measured:
      source: "what was measured"
      fp8:                                   # the experts' stored format (servesim dtype)
        power_law_1.2:                       # routing of the measured tokens
          tokens: [1, 2, 4, ...]             # tokens entering the layer (all ranks')
          curves_us:
            "4096x1536 top8/128 tp1 ep8": [31.2, null, ...]   # microseconds per layer

A curve's ``null`` entries were held out of the file (the split that reports its error).
Between points the time is interpolated linearly in log-log; before the first it is held.
Past the last point it grows in proportion to the tokens (the kernel's efficiency is held)
from the level of the log-log least-squares line through the last ``TAIL_POINTS`` measured
points at the last token count (never below the last measured time): one noisy measurement
at the end of a table would otherwise set every larger step (attention-data-parallel steps
reach 4 to 16 times the largest measured count). On the shipped tables, curves cut before
their last two points and extrapolated to them, this rule misses by a median 7.3 % against
11.7 % for the last point alone, and 4.0 % against 4.9 % where the kept curve ends at 512 or
more tokens per expert (``benchmarks/moe_extrapolation.py``).

Routing: AIConfigurator's serving estimates draw expert loads from a power law whose
exponent is a property of the model family: 1.01 for the DeepSeek family (multi-head latent
attention, group-limited routing; ``sdk/models/deepseek.py`` ``_power_law_alpha = 1.01``) and
1.2 for the other MoE models (Mixtral, Qwen3-MoE, gpt-oss, Llama 4; ``sdk/models/moe.py``
``_power_law_alpha = 1.2``); ``routing_for`` applies the same rule.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from simulator.specs.model import ModelSpec

#: Routing distributions of the measured rows, as AIConfigurator names them.
ROUTING_MLA = "power_law_1.01"
ROUTING_DEFAULT = "power_law_1.2"
#: Measured points whose log-log least-squares line sets the level past the last one.
TAIL_POINTS = 5


@dataclass(frozen=True)
class MoeLayout:
    """A model's expert shape and how its experts are split over the GPUs of a layer."""

    hidden: int
    #: Intermediate width of one whole expert (before any tensor-parallel split).
    inter: int
    topk: int
    experts: int
    #: Tensor-parallel slices of every expert, and expert-parallel ranks.
    tp: int
    ep: int

    @property
    def key(self) -> str:
        """The curve name in a ``moe_measured`` section."""
        return f"{self.hidden}x{self.inter} top{self.topk}/{self.experts} tp{self.tp} ep{self.ep}"


def moe_layout(model: ModelSpec, tensor_parallel: int, expert_parallel: int) -> MoeLayout:
    """The layout of ``model``'s routed experts under ``tensor_parallel`` × ``expert_parallel``."""
    inter = model.moe_intermediate_size or model.intermediate_size
    return MoeLayout(
        model.hidden_size,
        inter,
        model.experts_per_token,
        model.num_experts,
        tensor_parallel,
        expert_parallel,
    )


def routing_for(model: ModelSpec) -> str:
    """The routing distribution a model's measured MoE time is read under (module docstring)."""
    return ROUTING_MLA if model.uses_mla else ROUTING_DEFAULT


@dataclass(frozen=True)
class FusedMoeCurve:
    """Seconds of one fused-MoE layer by tokens (log-log interpolated, see the module)."""

    log_tokens: tuple[float, ...]
    log_seconds: tuple[float, ...]
    #: log seconds at the last token count that extrapolation grows from (module docstring).
    log_tail_level: float

    @classmethod
    def from_points(cls, tokens: list[float], seconds: list[float]) -> FusedMoeCurve:
        pairs = sorted((t, s) for t, s in zip(tokens, seconds, strict=True) if s is not None)
        if not pairs or any(t <= 0 or s <= 0 for t, s in pairs):
            raise ValueError("a curve needs positive tokens and seconds")
        xs = tuple(math.log(t) for t, _ in pairs)
        ys = tuple(math.log(s) for _, s in pairs)
        return cls(xs, ys, tail_level(xs[-TAIL_POINTS:], ys[-TAIL_POINTS:]))

    def seconds(self, tokens: float) -> float:
        """Time (s) of one layer over ``tokens`` tokens."""
        xs, ys = self.log_tokens, self.log_seconds
        lx = math.log(tokens) if tokens > 0 else xs[0]
        if lx <= xs[0] or len(xs) == 1:
            return math.exp(ys[0] + max(lx - xs[-1], 0.0))
        if lx > xs[-1]:  # never below the last measured time: the time grows with tokens
            return math.exp(max(ys[-1], self.log_tail_level + lx - xs[-1]))
        if lx == xs[-1]:
            return math.exp(ys[-1])
        i = bisect_right(xs, lx) - 1
        w = (lx - xs[i]) / (xs[i + 1] - xs[i])
        return math.exp(ys[i] + w * (ys[i + 1] - ys[i]))


def tail_level(xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """Value at ``xs[-1]`` of the least-squares line through ``(xs, ys)`` (log-log points)."""
    if len(xs) < 2:
        return ys[-1]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread
    return my + slope * (xs[-1] - mx)


def parse_section(section: Any) -> dict[tuple[str, str], dict[str, FusedMoeCurve]]:
    """``{(dtype, routing): {layout key: curve}}`` of a ``moe_measured`` mapping."""
    out: dict[tuple[str, str], dict[str, FusedMoeCurve]] = {}
    for dtype, by_routing in (section or {}).items():
        if dtype == "source" or not isinstance(by_routing, dict):
            continue
        for routing, body in by_routing.items():
            tokens = [float(t) for t in body["tokens"]]
            out[(str(dtype), str(routing))] = {
                str(key): FusedMoeCurve.from_points(
                    tokens, [v * 1e-6 if v is not None else None for v in values]
                )
                for key, values in body["curves_us"].items()
            }
    return out
