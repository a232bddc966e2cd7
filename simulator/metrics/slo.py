"""Service-level objectives: parsing the scenario's ``slo:`` section and checking it.

An SLO is a plain dict of latency metric -> {percentile: threshold in ms}, e.g.
``{"ttft_ms": {"p99": 1000}, "tpot_ms": {"p99": 50}, "e2e_ms": {"p90": 20000}}``.
Statistic keys are ``p50``, ``p90``, ``p95``, ``p99``, ``p99.9`` (any ``pX`` with
0 < X ≤ 100), ``max`` or ``mean``. A metric whose targets are ``None`` is unconstrained.

Besides TTFT, TPOT, ITL and E2E, two metrics are relative to the request, as in
DeepSpeed-FastGen's effective throughput (its SLA: TTFT at most prompt tokens / 512 s, and a
generation rate whose moving average stays at or above 2, 4 or 6 tokens/s):

- ``ttft_per_prompt_token_ms``: TTFT / prompt tokens (ms per token); ``{max: 1.953}`` is
  "TTFT ≤ prompt tokens / 512 s" for every request (1000 / 512 ms per token);
- ``gap_ema_ms``: the largest exponential moving average (span 16) of the request's gaps
  between tokens (ms); ``{max: 250}`` is "the moving average of tokens/s never below 4".

Goodput under them (requests meeting every threshold, per second) is the effective
throughput.

Two questions are asked of an SLO:

- **per constraint**: is the observed statistic of the run's distribution at or below the
  threshold? (``ttft_ms: {p99: 1000}`` holds when the run's p99 TTFT is ≤ 1000 ms.)
- **per request**: a request *meets the SLO* when each of its own values is at or below
  every threshold on that metric, whatever the percentile (a request with a 1200 ms TTFT
  misses ``ttft_ms: {p99: 1000}``). Goodput counts such requests. ITL is not tracked per
  request, so ``itl_ms`` constraints are checked on the run's ITL distribution only;
  TPOT is undefined for single-token outputs, which therefore meet any TPOT threshold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.errors import UserError

#: Latency metrics an SLO may constrain (values in milliseconds).
SLO_METRICS = (
    "ttft_ms",
    "tpot_ms",
    "itl_ms",
    "e2e_ms",
    "ttft_per_prompt_token_ms",
    "gap_ema_ms",
)
#: Metrics known for each request individually (``itl_ms`` is only a run distribution).
PER_REQUEST_METRICS = ("ttft_ms", "tpot_ms", "e2e_ms", "ttft_per_prompt_token_ms", "gap_ema_ms")
#: Metrics relative to the request (DeepSpeed-FastGen's SLA), computed only when asked.
RELATIVE_METRICS = ("ttft_per_prompt_token_ms", "gap_ema_ms")

_PERCENTILE_KEY = re.compile(r"^p(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class SloConstraint:
    """One threshold: ``metric``'s statistic ≤ ``threshold_ms``; the statistic is the
    ``percentile`` (0-100, 100 for ``max``), or the mean when ``percentile`` is None."""

    metric: str
    key: str  # as the user wrote it: "p99", "p99.9", "max", "mean"
    percentile: float | None
    threshold_ms: float


def parse_percentile_key(key: str, path: str) -> float | None:
    """``"p99.9"`` -> 99.9, ``"max"`` -> 100, ``"mean"`` -> None; UserError naming ``path``
    otherwise."""
    if key == "max":
        return 100.0
    if key == "mean":
        return None
    match = _PERCENTILE_KEY.match(str(key))
    if match:
        value = float(match.group(1))
        if 0 < value <= 100:
            return value
    raise UserError(
        f"{path}: {key!r} is not a percentile; use p50, p90, p95, p99, p99.9 (any pX with "
        "0 < X <= 100), max or mean"
    )


def parse_slo(slo: dict[str, Any] | None, path: str = "slo") -> list[SloConstraint]:
    """Validate an ``slo:`` dict and return its constraints; every mistake is reported at once."""
    if not slo:
        return []
    if not isinstance(slo, dict):
        raise UserError(f"{path}: expected a mapping of metric to {{percentile: ms}}, got {slo!r}")
    errors: list[str] = []
    constraints: list[SloConstraint] = []
    for metric, targets in slo.items():
        if metric not in SLO_METRICS:
            errors.append(f"{path}.{metric}: unknown SLO metric; known: {', '.join(SLO_METRICS)}")
            continue
        if targets is None:
            continue
        if not isinstance(targets, dict) or not targets:
            errors.append(
                f"{path}.{metric}: expected a mapping of percentile to milliseconds, "
                f"e.g. {{p99: 1000}}, got {targets!r}"
            )
            continue
        for key, threshold in targets.items():
            where = f"{path}.{metric}.{key}"
            try:
                percentile = parse_percentile_key(key, where)
            except UserError as exc:
                errors.extend(exc.messages)
                continue
            if (
                isinstance(threshold, bool)
                or not isinstance(threshold, int | float)
                or not math.isfinite(threshold)
                or threshold <= 0
            ):
                errors.append(f"{where}: {threshold!r} must be a positive number of milliseconds")
                continue
            constraints.append(SloConstraint(metric, str(key), percentile, float(threshold)))
    if errors:
        raise UserError(errors)
    return constraints


def requests_meeting(
    constraints: list[SloConstraint], per_request_ms: dict[str, np.ndarray], n: int
) -> np.ndarray:
    """Boolean mask of the ``n`` requests whose every per-request value meets every threshold.

    ``per_request_ms`` maps ``ttft_ms``/``tpot_ms``/``e2e_ms`` to arrays of length ``n``; a NaN
    value (TPOT of a one-token output) does not constrain the request.
    """
    meets = np.ones(n, dtype=bool)
    for constraint in constraints:
        if constraint.metric not in PER_REQUEST_METRICS:
            continue
        values = per_request_ms[constraint.metric]
        meets &= ~(values > constraint.threshold_ms)  # NaN > x is False: no constraint
    return meets


def constraint_report(
    constraint: SloConstraint, observed_ms: float, interval_ms: list | None = None
) -> dict[str, Any]:
    """One line of the SLO report: observed statistic vs threshold, whether the point
    estimate holds (``met``), its 95% interval and the verdict that interval supports:
    ``met`` (all of it at or below the threshold), ``missed`` (all above), ``uncertain``
    (it straddles the threshold) or ``not observed``."""
    met = bool(observed_ms <= constraint.threshold_ms) if math.isfinite(observed_ms) else None
    low, high = interval_ms if interval_ms is not None else (observed_ms, observed_ms)
    return {
        "metric": constraint.metric,
        "percentile": constraint.key,
        "observed_ms": observed_ms,
        "threshold_ms": constraint.threshold_ms,
        "met": met,
        "ci95_ms": [low, high],
        "verdict": interval_verdict(low, high, constraint.threshold_ms, met),
    }


def interval_verdict(low: Any, high: Any, threshold: float, met: bool | None) -> str:
    """``met``/``missed``/``uncertain`` of an interval against a threshold (None ends are
    unbounded); ``not observed`` without a point estimate."""
    if met is None:
        return "not observed"
    if high is not None and math.isfinite(high) and high <= threshold:
        return "met"
    if low is not None and math.isfinite(low) and low > threshold:
        return "missed"
    return "uncertain"


def overall_verdict(verdicts: list[str]) -> str:
    """``missed`` if any constraint is, else ``uncertain`` if any is not certain, else
    ``met`` (``met`` too when there are no constraints)."""
    if "missed" in verdicts:
        return "missed"
    if any(v != "met" for v in verdicts):
        return "uncertain"
    return "met"
