"""The report's figures (matplotlib, Agg backend), each returned as PNG bytes.

Every function takes already-computed data and draws one figure; none simulates.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display needed; must precede pyplot

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

#: Resolution of the embedded images (dots per inch): sharp on screen and on paper.
FIGURE_DPI = 110
#: Colours by option kind, so one kind keeps its colour across figures.
KIND_COLOURS = {"cloud": "#1f77b4", "owned": "#2ca02c", "api": "#d62728"}
_LINESTYLES = ("-", "--", ":", "-.")
#: Time bins of the utilisation plot (the run's length divided evenly).
UTILISATION_BINS = 80


def to_png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _slo_threshold_ms(slo: dict[str, Any] | None, metric: str) -> tuple[str, float] | None:
    """(percentile, threshold ms) of the scenario's SLO on ``metric``, if any."""
    targets = (slo or {}).get(metric) or {}
    for percentile in ("p99", "p95", "p90", "p50", "mean"):
        if targets.get(percentile) is not None:
            return percentile, float(targets[percentile])
    return None


def latency_against_load(
    curve: pd.DataFrame,
    slo: dict[str, Any] | None,
    knee_per_s: float | None,
    knee_ci95: tuple[float, float] | None,
    max_rate_per_s: float | None,
) -> bytes:
    """TTFT and TPOT (p50, p99) against the request rate, SLO lines and the knee."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, label in ((axes[0], "ttft_ms", "TTFT"), (axes[1], "tpot_ms", "TPOT")):
        rate = curve["rate_per_s"]
        ax.plot(rate, curve[f"{metric}_p50"], "o-", label=f"{label} p50", color="#1f77b4")
        ax.plot(rate, curve[f"{metric}_p99"], "s-", label=f"{label} p99", color="#ff7f0e")
        saturated = curve["saturated"] | ~curve["meets_slo"]
        if saturated.any():
            ax.plot(
                rate[saturated],
                curve.loc[saturated, f"{metric}_p99"],
                "x",
                color="black",
                markersize=9,
                label="misses SLO / saturated",
            )
        found = _slo_threshold_ms(slo, metric)
        if found:
            ax.axhline(found[1], color="#d62728", ls="--", lw=1.2, label=f"SLO {found[0]}")
        if knee_ci95 and knee_ci95[1] is not None:
            ax.axvspan(*knee_ci95, color="grey", alpha=0.15, label="knee between certified rates")
        if knee_per_s:
            ax.axvline(knee_per_s, color="grey", ls=":", lw=1.2, label="knee")
        if max_rate_per_s:
            ax.axvline(max_rate_per_s, color="#2ca02c", lw=1.2, label="max rate in SLO")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("request rate (requests/s)")
        ax.set_ylabel(f"{label} (ms, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Latency against load (one deployment)")
    return to_png(fig)


def latency_distributions(latencies_ms: dict[str, np.ndarray], slo: dict[str, Any] | None) -> bytes:
    """Histograms of per-request TTFT and TPOT with the SLO thresholds."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, metric, label in ((axes[0], "ttft_ms", "TTFT"), (axes[1], "tpot_ms", "TPOT")):
        values = latencies_ms[metric]
        values = values[np.isfinite(values)]
        if len(values):
            ax.hist(values, bins=50, color="#1f77b4", alpha=0.8)
            for q, style in ((50, "-"), (99, "--")):
                ax.axvline(np.percentile(values, q), color="black", ls=style, lw=1, label=f"p{q}")
        else:
            ax.text(0.5, 0.5, "no requests observed", ha="center", transform=ax.transAxes)
        found = _slo_threshold_ms(slo, metric)
        if found:
            ax.axvline(found[1], color="#d62728", ls="--", lw=1.5, label=f"SLO {found[0]}")
        ax.set_xlabel(f"{label} (ms)")
        ax.set_ylabel("requests")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Per-request latency at the target rate (recommended fleet)")
    return to_png(fig)


def cost_per_million(options: pd.DataFrame) -> bytes:
    """Cost per million output tokens and per million tokens (in + out) of every option."""
    names = list(options["name"])
    y = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(names) + 1.6))
    colours = [KIND_COLOURS.get(k, "grey") for k in options["kind"]]
    ax.barh(y - 0.2, options["usd_per_million_output_tokens"], 0.4, color=colours, label="output")
    ax.barh(
        y + 0.2,
        options["usd_per_million_tokens"],
        0.4,
        color=colours,
        alpha=0.45,
        label="all tokens (in + out)",
    )
    for yi, value in zip(y, options["usd_per_million_output_tokens"], strict=True):
        ax.text(value, yi - 0.2, f" ${value:.3g}", va="center", fontsize=8)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("USD per million tokens at the target rate")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Cost per million tokens by option")
    return to_png(fig)


def cost_against_traffic(
    curve: pd.DataFrame, changes: list[dict[str, Any]], target_rate_per_s: float
) -> bytes:
    """Monthly cost of every option against traffic, with the points where the cheapest
    option changes (break-even) and the target rate."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    for i, (name, group) in enumerate(curve.groupby("option", sort=False)):
        kind = group["kind"].iloc[0]
        ax.plot(
            group["rate_per_s"],
            group["monthly_usd"],
            ls=_LINESTYLES[i % len(_LINESTYLES)],
            color=KIND_COLOURS.get(kind, "grey"),
            drawstyle="steps-post" if kind != "api" else "default",
            label=name,
        )
    for change in changes:
        ax.plot(change["rate_per_s"], change["monthly_usd"], "ko", ms=6)
        ax.annotate(
            f"{change['rate_per_s']:.3g}/s: {change['to'].split(' (')[0]}",
            (change["rate_per_s"], change["monthly_usd"]),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=7,
        )
    ax.axvline(target_rate_per_s, color="black", ls=":", lw=1, label="target rate")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("traffic (requests/s, log scale)")
    ax.set_ylabel("USD per month (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Monthly cost against traffic; dots: the cheapest option changes")
    return to_png(fig)


def utilisation_over_time(timeseries: pd.DataFrame, max_num_seqs: int) -> bytes:
    """Batch occupancy, KV-cache use and queue length over the target-rate run (mean over
    replicas, in ``UTILISATION_BINS`` bins of equal time)."""
    fig, (ax, ax_queue) = plt.subplots(2, 1, figsize=(10, 4.6), sharex=True)
    if len(timeseries):
        span_s = float(timeseries["time_s"].max() - timeseries["time_s"].min()) or 1.0
        bin_s = span_s / UTILISATION_BINS
        frame = timeseries.assign(second=np.floor(timeseries["time_s"] / bin_s) * bin_s)
        per_replica = frame.groupby(["second", "replica"]).mean(numeric_only=True)
        binned = per_replica.groupby("second").agg(
            running=("running", "mean"),
            kv=("kv_used_fraction", "mean"),
            waiting=("waiting", "sum"),
        )
        ax.plot(binned.index, binned["running"] / max_num_seqs, label="batch slots in use")
        ax.plot(binned.index, binned["kv"], label="KV cache in use")
        ax_queue.plot(binned.index, binned["waiting"], color="#7f7f7f", label="waiting requests")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    ax_queue.set_ylabel("queued")
    ax_queue.set_xlabel("simulated time (s)")
    ax_queue.grid(True, alpha=0.3)
    ax_queue.legend(fontsize=8, loc="upper right")
    fig.suptitle("Utilisation and KV-cache use over time (mean over replicas)")
    ax.set_xlim(left=0)
    return to_png(fig)


def sensitivity(frame: pd.DataFrame) -> bytes:
    """Monthly cost of each option at ±30% traffic and at ±30% GPU price."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, axis, label in (
        (axes[0], "traffic", "traffic × factor"),
        (axes[1], "price", "GPU-hour and server price × factor"),
    ):
        part = frame[frame["axis"] == axis]
        options = list(dict.fromkeys(part["option"]))
        factors = sorted(part["factor"].unique())
        width = 0.8 / max(1, len(options))
        for i, name in enumerate(options):
            rows = part[part["option"] == name].set_index("factor").loc[factors]
            x = np.arange(len(factors)) + (i - (len(options) - 1) / 2) * width
            bars = ax.bar(
                x,
                rows["monthly_usd"],
                width,
                color=KIND_COLOURS.get(rows["kind"].iloc[0], "grey"),
                alpha=0.35 + 0.65 * (i % 2 == 0),
                label=name,
            )
            for bar, cheapest in zip(bars, rows["cheapest"], strict=True):
                if cheapest:
                    bar.set_edgecolor("black")
                    bar.set_linewidth(2)
        ax.set_xticks(np.arange(len(factors)), [f"×{f:g}" for f in factors])
        ax.set_xlabel(label)
        ax.set_yscale("log")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("USD per month (log scale)")
    axes[1].legend(fontsize=6, loc="upper left")
    fig.suptitle("Sensitivity: cheapest option outlined in black")
    return to_png(fig)
