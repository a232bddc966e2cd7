"""What serving a traffic rate costs: renting GPUs, owning machines, or paying an API.

All options price the same monthly traffic: ``rate_per_s`` requests/s held for a month of
``HOURS_PER_MONTH`` hours (365 × 24 / 12), each request with the workload's mean prompt and
output tokens.

- **Rent** (``planning.offers``): the fleet's replicas in whole instances of an offer their
  shape fits, for the whole month.
- **Own** (``planning.machines``): the machines holding the fleet's GPUs, written off,
  powered and hosted for the month.
- **API**: input tokens (cache hits at the cached-input price where the API has one) and
  output tokens at an API's list prices.

Every option reports one cost per token: ``usd_per_million_output_tokens`` = the whole
monthly cost / output tokens per month × 10⁶, the number ``servesim simulate`` reports as
``cost_per_million_output_tokens_usd`` for the same fleet, rate and GPU-hour price, and what a
buyer compares with an API's blended bill; ``usd_per_million_tokens`` divides by input and
output tokens. A split into input and output prices, to compare with an API's price sheet, is
named as such: ``price_sheet_usd_per_million_input_tokens`` / ``…_output_tokens`` divide a
self-hosted cost by the share of GPU time spent on prompts (``input_time_share``), and are an
API's list prices.

The fleet grows with traffic in whole replicas of ``per_replica_rate_per_s`` (what one replica
sustains within the SLO), except where a fleet was simulated (``replicas_at``).
**Utilisation** = rate / (replicas × per-replica rate): the share of the fleet's sustainable
capacity the traffic uses. **Break-even** rates are where the cheapest option changes along
the traffic axis (``break_evens``); the planner, the report and the notebooks all use these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from simulator.planning.machines import (  # noqa: F401  (re-exported)
    DEFAULT_BUSY_POWER_FRACTION,
    DEFAULT_IDLE_POWER_FRACTION,
    OwnedMachine,
    monthly_owned_usd,
    owned_machine,
)
from simulator.planning.offers import CloudOffer, ReplicaShape, offers_to_price

HOURS_PER_MONTH = 365 * 24 / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class Traffic:
    """Per-request token means of the workload and the shares the planner measured."""

    mean_prompt_tokens: float
    mean_output_tokens: float
    #: Share of input tokens billed as API cache hits.
    cached_input_fraction: float = 0.0
    #: Share of GPU time spent on prompts (prefill), for the price-sheet split.
    input_time_share: float = 0.5

    def tokens_per_month(self, rate_per_s: float) -> tuple[float, float]:
        """(input, output) tokens per month at ``rate_per_s`` requests/s."""
        return (
            rate_per_s * self.mean_prompt_tokens * SECONDS_PER_MONTH,
            rate_per_s * self.mean_output_tokens * SECONDS_PER_MONTH,
        )


@dataclass(frozen=True)
class Fleet:
    """How the deployment grows with traffic."""

    shape: ReplicaShape
    #: Requests/s one replica sustains within the SLO.
    per_replica_rate_per_s: float
    #: GPU busy fraction observed at ``busy_at_rate_per_s`` on ``busy_at_replicas`` replicas;
    #: elsewhere it scales with the load per GPU.
    busy_fraction: float = 1.0
    busy_at_rate_per_s: float = 1.0
    busy_at_replicas: int = 1
    #: Fleets simulated at given rates (rate -> replicas), used where they apply.
    simulated: tuple[tuple[float, int], ...] = ()
    #: Peak window rate / mean rate of changing traffic: the fleet serves the peak.
    peak_factor: float = 1.0

    def replicas_at(self, rate_per_s: float) -> int:
        """Replicas serving ``rate_per_s`` (its peak window): simulated where known, else
        whole replicas."""
        for rate, replicas in self.simulated:
            if math.isclose(rate, rate_per_s, rel_tol=1e-9):
                return replicas
        peak = rate_per_s * self.peak_factor
        return max(1, math.ceil(peak / self.per_replica_rate_per_s - 1e-9))

    def busy_at(self, rate_per_s: float, replicas: int) -> float:
        """GPU busy fraction at ``rate_per_s`` on ``replicas`` replicas."""
        seen = self.busy_at_rate_per_s / self.busy_at_replicas
        return min(1.0, self.busy_fraction * (rate_per_s / replicas) / seen)

    def utilisation(self, rate_per_s: float, replicas: int | None = None) -> float:
        """Share of the fleet's sustainable capacity ``rate_per_s`` uses on average (0-1;
        × ``peak_factor`` in the peak window)."""
        replicas = replicas or self.replicas_at(rate_per_s)
        return rate_per_s / (replicas * self.per_replica_rate_per_s)


@dataclass(frozen=True)
class PriceOption:
    """One way to pay: a cloud offer, owned machines, or an API row of prices.yaml."""

    name: str
    kind: str  # "cloud", "owned" or "api"
    offer: CloudOffer | None = None
    machine: OwnedMachine | None = None
    api: dict[str, Any] | None = None

    @property
    def market(self) -> str:
        if self.offer is not None:
            return self.offer.market
        return "owned" if self.kind == "owned" else "api"


@dataclass
class CostOption:
    """One option at one rate: its monthly cost and what that means per token."""

    name: str
    kind: str
    market: str
    rate_per_s: float
    replicas: int | None
    gpus: int | None
    monthly_usd: float
    #: Whole monthly cost / output tokens (× 10⁶): the one cost per token.
    usd_per_million_output_tokens: float
    #: Whole monthly cost / (input + output tokens) (× 10⁶).
    usd_per_million_tokens: float
    #: The price-sheet split (self-hosted: by prefill time share; API: list prices).
    price_sheet_usd_per_million_input_tokens: float
    price_sheet_usd_per_million_output_tokens: float
    output_tokens_per_month: float
    input_tokens_per_month: float
    #: Share of the fleet's sustainable capacity used (None for an API).
    utilisation: float | None
    #: Facility energy (Wh) per output token (None for an API).
    energy_wh_per_output_token: float | None
    breakdown: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_million(usd: float, tokens: float) -> float:
    return usd / tokens * 1e6 if tokens > 0 else math.nan


def api_monthly_usd(
    input_tokens: float, output_tokens: float, cached_fraction: float, api: dict[str, Any]
) -> dict[str, float]:
    """Monthly API bill (USD) split into uncached input, cached input and output."""
    cached_price = api.get("cached_input_per_mtok")
    if cached_price is None:
        cached_price = api["input_per_mtok"]
    cached = input_tokens * cached_fraction
    return {
        "input_usd": (input_tokens - cached) / 1e6 * api["input_per_mtok"],
        "cached_input_usd": cached / 1e6 * cached_price,
        "output_usd": output_tokens / 1e6 * api["output_per_mtok"],
    }


def _self_hosted(
    option: PriceOption, fleet: Fleet, rate: float, replicas: int, factor: float
) -> tuple[dict[str, float], float, str]:
    """(breakdown with ``total_usd``, facility energy kWh per month, notes)."""
    gpus = replicas * fleet.shape.gpus_per_replica
    busy = fleet.busy_at(rate, replicas)
    if option.kind == "cloud":
        offer = option.offer
        instances = offer.instances(replicas)
        monthly = offer.monthly_usd(replicas, HOURS_PER_MONTH, factor)
        parts = {
            "instances": instances,
            "rented_gpus": instances * offer.gpus_per_instance,
            "price_per_gpu_hour": offer.price_per_gpu_hour * factor,
            "total_usd": monthly,
        }
        energy = 0.0
        if option.machine is not None:  # the same GPUs' energy, for Wh per token
            energy = monthly_owned_usd(option.machine, gpus, busy, HOURS_PER_MONTH)["energy_kwh"]
        notes = f"{instances} × {offer.gpus_per_instance}-GPU instance(s) for {HOURS_PER_MONTH:g} h"
        return parts, energy, notes
    parts = monthly_owned_usd(option.machine, gpus, busy, HOURS_PER_MONTH, factor)
    machine = option.machine
    notes = f"{parts['machines']:g} {machine.kind}(s): {machine.description}"
    return parts, parts["energy_kwh"], notes


def cost_at(
    option: PriceOption,
    rate_per_s: float,
    traffic: Traffic,
    fleet: Fleet,
    *,
    replicas: int | None = None,
    price_factor: float = 1.0,
) -> CostOption:
    """``option`` serving ``rate_per_s`` requests/s for a month; ``price_factor`` scales
    GPU-hour and machine prices (not API prices)."""
    tokens_in, tokens_out = traffic.tokens_per_month(rate_per_s)
    if option.kind == "api":
        parts = api_monthly_usd(tokens_in, tokens_out, traffic.cached_input_fraction, option.api)
        monthly = sum(parts.values())
        sheet_in = _per_million(parts["input_usd"] + parts["cached_input_usd"], tokens_in)
        sheet_out = float(option.api["output_per_mtok"])
        return CostOption(
            option.name, "api", "api", rate_per_s, None, None, monthly,
            _per_million(monthly, tokens_out), _per_million(monthly, tokens_in + tokens_out),
            sheet_in, sheet_out, tokens_out, tokens_in, None, None, parts,
            f"prices of {option.api.get('date', '?')}",
        )  # fmt: skip
    replicas = replicas or fleet.replicas_at(rate_per_s)
    parts, energy_kwh, notes = _self_hosted(option, fleet, rate_per_s, replicas, price_factor)
    monthly = parts["total_usd"]
    share = traffic.input_time_share
    return CostOption(
        option.name, option.kind, option.market, rate_per_s, replicas,
        replicas * fleet.shape.gpus_per_replica, monthly,
        _per_million(monthly, tokens_out), _per_million(monthly, tokens_in + tokens_out),
        _per_million(monthly * share, tokens_in), _per_million(monthly * (1 - share), tokens_out),
        tokens_out, tokens_in, fleet.utilisation(rate_per_s, replicas),
        energy_kwh * 1e3 / tokens_out if energy_kwh and tokens_out else None, parts, notes,
    )  # fmt: skip


def price_options(scenario, tco: Any, replicas: int = 1) -> tuple[list[PriceOption], list[str]]:
    """The options priced for a scenario's deployment of ``replicas`` replicas: the fitting
    cloud offer of each market that rents them for least (``tco.price_kind``), the owned
    machine, and every API serving the model; plus notes on what could not be priced."""
    from simulator.planning.offers import replica_shape
    from simulator.specs.prices import load_prices

    shape = replica_shape(scenario)
    offers, no_offer = offers_to_price(shape, tco.price_kind, replicas)
    machine, no_machine = owned_machine(shape.gpu, tco, shape.gpus_per_replica)
    options = [PriceOption(f"rent {o.label}", "cloud", offer=o, machine=machine) for o in offers]
    if machine is not None:
        options.append(PriceOption(f"own {machine.description}", "owned", machine=machine))
    for api in load_prices()["api"]:
        if api.get("catalog_model") == scenario.model:
            options.append(PriceOption(f"api {api['provider']} {api['model']}", "api", api=api))
    notes = [n for n in (no_offer, no_machine) if n]
    if not any(o.kind == "api" for o in options):
        notes.append(f"no API in prices.yaml serves {scenario.model}")
    return options, notes


def cost_curve(
    options: list[PriceOption],
    rates: np.ndarray,
    traffic: Traffic,
    fleet: Fleet,
    price_factor: float = 1.0,
) -> list[CostOption]:
    """Every option at every rate (requests/s), fleets grown in whole replicas."""
    return [
        cost_at(o, float(r), traffic, fleet, price_factor=price_factor)
        for r in rates
        for o in options
    ]


def _cheapest(costs: list[CostOption]) -> CostOption:
    return min(costs, key=lambda c: c.monthly_usd)


def _refine(
    rate_lo: float, rate_hi: float, name_lo: str, cheapest_at: Callable[[float], str]
) -> float:
    """The rate in (lo, hi] where the cheapest option stops being ``name_lo``."""
    for _ in range(40):
        mid = math.sqrt(rate_lo * rate_hi)
        if cheapest_at(mid) == name_lo:
            rate_lo = mid
        else:
            rate_hi = mid
        if rate_hi / rate_lo - 1 < 1e-4:
            break
    return rate_hi


def break_evens(
    options: list[PriceOption],
    traffic: Traffic,
    fleet: Fleet,
    low_rate_per_s: float,
    high_rate_per_s: float,
    points: int = 400,
) -> list[dict[str, Any]]:
    """Rates between ``low`` and ``high`` where the cheapest option changes: each with the
    options it changes between, the output tokens per month there and the fleet's
    utilisation (rent/own) just above it."""
    if len(options) < 2 or high_rate_per_s <= low_rate_per_s:
        return []

    def cheapest_at(rate: float) -> str:
        return _cheapest([cost_at(o, rate, traffic, fleet) for o in options]).name

    grid = np.geomspace(low_rate_per_s, high_rate_per_s, points)
    names = [cheapest_at(float(r)) for r in grid]
    found = []
    for i in range(1, len(grid)):
        if names[i] == names[i - 1]:
            continue
        rate = _refine(float(grid[i - 1]), float(grid[i]), names[i - 1], cheapest_at)
        above = next(cost_at(o, rate, traffic, fleet) for o in options if o.name == names[i])
        found.append(
            {
                "rate_per_s": rate,
                "output_tokens_per_month": traffic.tokens_per_month(rate)[1],
                "from": names[i - 1],
                "to": names[i],
                "monthly_usd": above.monthly_usd,
                "replicas": fleet.replicas_at(rate),
                "utilisation": fleet.utilisation(rate),
            }
        )
    return found
