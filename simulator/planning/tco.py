"""What serving a token volume costs: renting GPUs, owning them, or paying an API.

All three options price the same monthly traffic (``TokenVolume``). A month is
``HOURS_PER_MONTH`` hours (365 × 24 / 12).

- **Cloud**: the deployment's GPUs rented for the whole month at a price of ``prices.yaml``.
  Instances are rented whole: 9 GPUs of an 8-GPU instance type cost two instances.
- **Owned**: servers bought and written off linearly over ``life_years``; electricity for
  the IT load × PUE at $/kWh; hosting (colocation: space, cooling and power infrastructure)
  per kW of the servers' provisioned power per month; optional staff cost per month.
  GPU power follows utilisation: ``tdp × (idle_fraction + busy × (busy_fraction −
  idle_fraction))``; the rest of the server (CPUs, NICs, fans, drives) draws
  ``server_overhead_fraction × tdp`` per GPU all the time.
- **API**: input tokens (cache hits at the cached-input price where the API has one) and
  output tokens at an API's list prices.

Self-hosted cost per token splits the monthly cost between input and output tokens by
``input_time_share``: the share of GPU time spent on prompts (prefill), which the planner
estimates from the cost model; energy per token is the facility energy (× PUE) per token.

Break-even volumes (output tokens per month, input tokens arriving in the same ratio):

- **owning vs renting**: renting by the GPU-hour scales with the work while an owned server
  costs the same every month, so owning wins above
  ``owned monthly cost per server / cloud cost per output token``;
- **renting vs API**: the smallest rented unit is one whole instance for the month, so
  renting wins above ``instance monthly cost / API cost per output token`` (when that
  volume fits in the instance's capacity; otherwise the API is cheaper at this operating
  point).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from simulator.errors import UserError
from simulator.specs.prices import cloud_prices_per_gpu_hour, datacenter_defaults, load_prices

HOURS_PER_MONTH = 365 * 24 / 12
#: GPU draw when idle, as a fraction of TDP. nvidia-smi shows an idle H100 SXM at roughly
#: 60-90 W of its 700 W (about 10%); rule of thumb, unverified (no primary source found).
DEFAULT_IDLE_POWER_FRACTION = 0.10
#: GPU draw when busy, as a fraction of TDP. 1.0 (draw the TDP) is the conservative default;
#: LLM inference is reported at 400-550 W sustained per 700 W H100 (0.57-0.79), see
#: https://theneuralbase.com/ai-infrastructure/learn/advanced/h100-tdp-700w/ (secondary).
DEFAULT_BUSY_POWER_FRACTION = 1.0


@dataclass(frozen=True)
class TokenVolume:
    """Monthly traffic: tokens in and out, and the share of input tokens served from a
    prompt cache (billed at the API's cached-input price)."""

    input_tokens_per_month: float
    output_tokens_per_month: float
    cached_input_fraction: float = 0.0

    @staticmethod
    def from_rate(
        rate_per_s: float,
        mean_input_tokens: float,
        mean_output_tokens: float,
        cached_input_fraction: float = 0.0,
    ) -> TokenVolume:
        """Volume of ``rate_per_s`` requests/s held for a month."""
        seconds = HOURS_PER_MONTH * 3600
        return TokenVolume(
            rate_per_s * mean_input_tokens * seconds,
            rate_per_s * mean_output_tokens * seconds,
            cached_input_fraction,
        )

    @property
    def input_per_output(self) -> float:
        return self.input_tokens_per_month / self.output_tokens_per_month


@dataclass(frozen=True)
class Deployment:
    """The GPUs serving the volume, how busy they are, and their capacity."""

    gpu: str
    gpus: int
    #: Fraction of time the GPUs execute steps (the simulation's gpu_busy_fraction).
    gpu_busy_fraction: float
    #: Output tokens per second the whole deployment serves at full planned load (for
    #: break-even volumes; the planned operating point).
    capacity_output_tokens_per_s: float
    #: Share of GPU time spent on prompts (prefill), for the input/output cost split.
    input_time_share: float = 0.5


@dataclass(frozen=True)
class OwnedParams:
    """Owning servers; defaults from prices.yaml ``datacenter`` and ``hardware_purchase``."""

    server_price_usd: float
    gpus_per_server: int = 8
    life_years: float = 5.0
    electricity_usd_per_kwh: float = 0.09
    pue: float = 1.42
    hosting_usd_per_kw_month: float = 184.06
    server_overhead_fraction: float = 0.35
    idle_power_fraction: float = DEFAULT_IDLE_POWER_FRACTION
    busy_power_fraction: float = DEFAULT_BUSY_POWER_FRACTION
    staff_usd_per_month: float = 0.0
    tdp_w: float = 700.0


@dataclass
class CostOption:
    """One way to serve the volume: its monthly cost and what that means per token."""

    name: str
    kind: str  # "cloud", "owned" or "api"
    monthly_usd: float
    usd_per_million_input_tokens: float
    usd_per_million_output_tokens: float
    #: Facility energy (Wh) per output token and per token in or out; None for an API.
    energy_wh_per_output_token: float | None
    energy_wh_per_token: float | None
    breakdown: dict[str, float] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_million(monthly: float, share: float, tokens: float) -> float:
    return monthly * share / tokens * 1e6 if tokens > 0 else math.nan


def gpu_power_w(
    tdp_w: float, busy_fraction: float, idle_fraction: float, busy_power_fraction: float = 1.0
) -> float:
    """Average draw (W) of one GPU busy ``busy_fraction`` of the time."""
    return tdp_w * (idle_fraction + busy_fraction * (busy_power_fraction - idle_fraction))


def facility_energy_kwh_per_month(deployment: Deployment, params: OwnedParams) -> float:
    """Energy the deployment takes from the grid in a month (IT load × PUE), kWh."""
    gpu_w = gpu_power_w(
        params.tdp_w,
        deployment.gpu_busy_fraction,
        params.idle_power_fraction,
        params.busy_power_fraction,
    )
    rest_w = params.server_overhead_fraction * params.tdp_w
    it_kw = deployment.gpus * (gpu_w + rest_w) / 1e3
    return it_kw * params.pue * HOURS_PER_MONTH


def _energy_fields(
    deployment: Deployment, volume: TokenVolume, params: OwnedParams
) -> tuple[float, float]:
    wh = facility_energy_kwh_per_month(deployment, params) * 1e3
    total = volume.input_tokens_per_month + volume.output_tokens_per_month
    return wh / volume.output_tokens_per_month, wh / total


def cloud_option(
    deployment: Deployment,
    volume: TokenVolume,
    *,
    price_per_gpu_hour: float,
    gpus_per_instance: int = 1,
    name: str = "cloud",
    energy_params: OwnedParams | None = None,
) -> CostOption:
    """GPUs rented for the month, whole instances of ``gpus_per_instance`` GPUs."""
    instances = math.ceil(deployment.gpus / gpus_per_instance)
    rented_gpus = instances * gpus_per_instance
    monthly = rented_gpus * price_per_gpu_hour * HOURS_PER_MONTH
    share = deployment.input_time_share
    energy = _energy_fields(deployment, volume, energy_params) if energy_params else (None, None)
    return CostOption(
        name=name,
        kind="cloud",
        monthly_usd=monthly,
        usd_per_million_input_tokens=_per_million(monthly, share, volume.input_tokens_per_month),
        usd_per_million_output_tokens=_per_million(
            monthly, 1 - share, volume.output_tokens_per_month
        ),
        energy_wh_per_output_token=energy[0],
        energy_wh_per_token=energy[1],
        breakdown={
            "instances": instances,
            "rented_gpus": rented_gpus,
            "price_per_gpu_hour": price_per_gpu_hour,
        },
        notes=f"{instances} × {gpus_per_instance}-GPU instance(s) for {HOURS_PER_MONTH:g} h",
    )


def owned_monthly_breakdown(deployment: Deployment, params: OwnedParams) -> dict[str, float]:
    """Monthly cost parts (USD) of owning the servers that hold the deployment's GPUs."""
    servers = math.ceil(deployment.gpus / params.gpus_per_server)
    amortisation = servers * params.server_price_usd / (params.life_years * 12)
    installed = servers * params.gpus_per_server
    # Idle GPUs of a partly used server still draw idle power; they are counted here.
    held = Deployment(
        deployment.gpu,
        installed,
        deployment.gpu_busy_fraction * deployment.gpus / installed,
        deployment.capacity_output_tokens_per_s,
        deployment.input_time_share,
    )
    energy_kwh = facility_energy_kwh_per_month(held, params)
    provisioned_kw = installed * params.tdp_w * (1 + params.server_overhead_fraction) / 1e3
    return {
        "servers": servers,
        "amortisation_usd": amortisation,
        "electricity_usd": energy_kwh * params.electricity_usd_per_kwh,
        "energy_kwh": energy_kwh,
        "hosting_usd": provisioned_kw * params.hosting_usd_per_kw_month,
        "provisioned_kw": provisioned_kw,
        "staff_usd": params.staff_usd_per_month,
    }


def owned_option(
    deployment: Deployment, volume: TokenVolume, params: OwnedParams, name: str = "owned"
) -> CostOption:
    """Servers bought, powered and hosted for the month."""
    parts = owned_monthly_breakdown(deployment, params)
    monthly = (
        parts["amortisation_usd"]
        + parts["electricity_usd"]
        + parts["hosting_usd"]
        + parts["staff_usd"]
    )
    wh = parts["energy_kwh"] * 1e3
    share = deployment.input_time_share
    return CostOption(
        name=name,
        kind="owned",
        monthly_usd=monthly,
        usd_per_million_input_tokens=_per_million(monthly, share, volume.input_tokens_per_month),
        usd_per_million_output_tokens=_per_million(
            monthly, 1 - share, volume.output_tokens_per_month
        ),
        energy_wh_per_output_token=wh / volume.output_tokens_per_month,
        energy_wh_per_token=wh / (volume.input_tokens_per_month + volume.output_tokens_per_month),
        breakdown=parts,
        notes=f"{parts['servers']:g} server(s) over {params.life_years:g} years",
    )


def api_monthly_usd(volume: TokenVolume, api: dict[str, Any]) -> dict[str, float]:
    """Monthly API bill (USD) split into uncached input, cached input and output."""
    cached_price = api.get("cached_input_per_mtok")
    if cached_price is None:
        cached_price = api["input_per_mtok"]
    cached = volume.input_tokens_per_month * volume.cached_input_fraction
    fresh = volume.input_tokens_per_month - cached
    return {
        "input_usd": fresh / 1e6 * api["input_per_mtok"],
        "cached_input_usd": cached / 1e6 * cached_price,
        "output_usd": volume.output_tokens_per_month / 1e6 * api["output_per_mtok"],
    }


def api_option(volume: TokenVolume, api: dict[str, Any]) -> CostOption:
    """The same tokens at an API's prices (a row of prices.yaml ``api``)."""
    parts = api_monthly_usd(volume, api)
    monthly = sum(parts.values())
    return CostOption(
        name=f"api {api['provider']} {api['model']}",
        kind="api",
        monthly_usd=monthly,
        usd_per_million_input_tokens=_per_million(
            parts["input_usd"] + parts["cached_input_usd"], 1.0, volume.input_tokens_per_month
        ),
        usd_per_million_output_tokens=api["output_per_mtok"],
        energy_wh_per_output_token=None,
        energy_wh_per_token=None,
        breakdown=parts,
        notes=f"prices of {api.get('date', '?')}",
    )


@dataclass
class BreakEven:
    """A volume (output tokens/month) above which ``cheaper_above`` costs less."""

    comparison: str
    output_tokens_per_month: float | None
    #: The same volume as a fraction of the unit's capacity (None if unknown).
    utilisation: float | None
    cheaper_above: str
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def break_even_owned_vs_cloud(
    deployment: Deployment, params: OwnedParams, price_per_gpu_hour: float
) -> BreakEven:
    """Volume above which one owned server beats renting GPU-hours for the same work."""
    per_server = Deployment(
        deployment.gpu,
        params.gpus_per_server,
        1.0,
        deployment.capacity_output_tokens_per_s * params.gpus_per_server / deployment.gpus,
        deployment.input_time_share,
    )
    parts = owned_monthly_breakdown(per_server, params)
    owned_monthly = (
        parts["amortisation_usd"]
        + parts["electricity_usd"]
        + parts["hosting_usd"]
        + parts["staff_usd"]
    )
    capacity = per_server.capacity_output_tokens_per_s * HOURS_PER_MONTH * 3600
    cloud_per_token = params.gpus_per_server * price_per_gpu_hour * HOURS_PER_MONTH / capacity
    volume = owned_monthly / cloud_per_token
    utilisation = volume / capacity
    notes = (
        ""
        if utilisation <= 1
        else "above one server's capacity: renting stays cheaper for one server's worth of work"
    )
    return BreakEven("owned vs cloud", volume, utilisation, "owned", notes)


def break_even_cloud_vs_api(
    deployment: Deployment,
    volume_mix: TokenVolume,
    api: dict[str, Any],
    price_per_gpu_hour: float,
    gpus_per_instance: int,
) -> BreakEven:
    """Volume above which renting this deployment's GPUs (in whole instances) for a month
    beats the API. A smaller fleet breaks even earlier: the report's cost-against-traffic
    curve scales the fleet by whole replicas."""
    instances = math.ceil(deployment.gpus / gpus_per_instance)
    monthly = instances * gpus_per_instance * price_per_gpu_hour * HOURS_PER_MONTH
    per_million_out = api_monthly_usd(
        TokenVolume(volume_mix.input_per_output * 1e6, 1e6, volume_mix.cached_input_fraction), api
    )
    api_per_token = sum(per_million_out.values()) / 1e6
    if api_per_token <= 0:
        return BreakEven("cloud vs api", None, None, "api", "the API is free at these prices")
    volume = monthly / api_per_token
    rented_share = instances * gpus_per_instance / deployment.gpus
    capacity = deployment.capacity_output_tokens_per_s * rented_share * HOURS_PER_MONTH * 3600
    utilisation = volume / capacity if capacity > 0 else None
    notes = ""
    if utilisation is not None and utilisation > 1:
        notes = "above the rented capacity: the API is cheaper at this operating point"
    return BreakEven("cloud vs api", volume, utilisation, "cloud", notes)


def default_owned_params(gpu: str, prices: dict[str, Any] | None = None) -> OwnedParams:
    """Owned-server parameters for ``gpu`` from prices.yaml: the cheapest server row (or 8
    cards + 35% for the rest of the server where only card prices exist), the data-center
    defaults, and the GPU's TDP."""
    from simulator.specs.catalog import load_gpu

    table = prices if prices is not None else load_prices()
    dc = datacenter_defaults(table)
    rows = [r for r in table["hardware_purchase"] if r["gpu"] == gpu]
    servers = sorted((r for r in rows if r["kind"] == "server"), key=lambda r: r["price_usd"])
    cards = sorted((r for r in rows if r["kind"] == "card"), key=lambda r: r["price_usd"])
    overhead = dc.get("server_overhead_fraction", 0.35)
    if servers:
        price, per_server = servers[0]["price_usd"], servers[0]["gpus"]
    elif cards:
        per_server = 8
        price = cards[0]["price_usd"] * per_server * (1 + overhead)
    else:
        raise UserError(f"prices.yaml hardware_purchase: no price for {gpu!r}; give one")
    return OwnedParams(
        server_price_usd=float(price),
        gpus_per_server=int(per_server),
        life_years=dc["server_life_years"],
        electricity_usd_per_kwh=dc["electricity_usd_per_kwh"],
        pue=dc["pue"],
        hosting_usd_per_kw_month=dc["colocation_usd_per_kw_month"],
        server_overhead_fraction=overhead,
        tdp_w=load_gpu(gpu).tdp_w,
    )


def cheapest_cloud_offer(
    gpu: str, kind: str = "on_demand", prices: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """Cheapest ``kind`` row of prices.yaml for ``gpu`` (None when there is none)."""
    rows = cloud_prices_per_gpu_hour(gpu, kind, prices)
    return rows[0] if rows else None


#: Settings of a plan's ``tco`` section that replace the owned-server defaults of prices.yaml.
OWNED_OVERRIDE_KEYS = (
    "server_price_usd",
    "gpus_per_server",
    "life_years",
    "electricity_usd_per_kwh",
    "pue",
    "hosting_usd_per_kw_month",
    "idle_power_fraction",
    "busy_power_fraction",
)


def owned_params_with(gpu: str, tco: Any) -> OwnedParams | None:
    """Owned-server parameters of ``gpu`` with the settings a plan's ``tco`` section gives
    (its staff cost and any of ``OWNED_OVERRIDE_KEYS``); None when prices.yaml has no
    purchase price for the GPU."""
    try:
        owned = default_owned_params(gpu)
    except UserError:
        return None
    changes = {k: getattr(tco, k) for k in OWNED_OVERRIDE_KEYS if getattr(tco, k) is not None}
    return replace(owned, staff_usd_per_month=tco.staff_usd_per_month, **changes)


def cloud_offers_to_price(gpu: str, kind: str) -> list[dict[str, Any]]:
    """The cloud offers a plan prices: the cheapest per GPU-hour, and the cheapest whole
    8-GPU instance when that is another one."""
    offers = cloud_prices_per_gpu_hour(gpu, kind)
    whole = [o for o in offers if o["gpus_per_instance"] >= 8]
    chosen = [offers[0]] if offers else []
    if whole and whole[0] is not chosen[0]:
        chosen.append(whole[0])
    return chosen
