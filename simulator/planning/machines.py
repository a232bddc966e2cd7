"""The machine an owned deployment would be, and what it costs to own and run.

Which machine follows from ``prices.yaml`` ``hardware_purchase``:

- **machine** (a whole computer whose chip is the GPU, e.g. a Mac Studio): one replica per
  machine, its price as listed, its power measured at the wall (idle and maximum);
- **server** (data-centre GPUs): the cheapest server row holding the GPU, or, for a GPU priced
  only as a card, ``gpus_per_server`` cards (8) plus the chassis (``server_chassis_fraction``
  of the cards, derived from a DGX H100's price against its cards);
- **workstation** (consumer and workstation cards): a workstation without GPUs
  (``workstation_base``, with its slots) plus the cards the replicas need.

``plan.tco.server_price_usd`` replaces the price of one machine for any GPU, and makes an owned
option for a GPU prices.yaml does not price (a machine of ``gpus_per_server`` GPUs, default
one replica's worth). Where it runs: servers in a data centre (colocation per kW of
provisioned power, PUE, industrial electricity), workstations and Macs in an office
(``office``: no hosting fee, PUE 1, commercial electricity), unless ``plan.tco.hosting`` says
otherwise. Machines are written off linearly over ``life_years``. Power: GPUs draw
``tdp × (idle + busy × (busy_power − idle))``, the rest of a server or workstation
``server_overhead_fraction × tdp`` per GPU all the time; a machine with measured wall power
draws ``idle + busy × (max − idle)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import UserError
from simulator.specs.prices import datacenter_defaults, load_prices

#: GPU draw when idle, as a fraction of TDP. nvidia-smi shows an idle H100 SXM at roughly
#: 60-90 W of its 700 W (about 10%); rule of thumb, unverified (no primary source found).
DEFAULT_IDLE_POWER_FRACTION = 0.10
#: GPU draw when busy, as a fraction of TDP. 1.0 (draw the TDP) is the conservative default;
#: LLM inference is reported at 400-550 W sustained per 700 W H100 (0.57-0.79), see
#: https://theneuralbase.com/ai-infrastructure/learn/advanced/h100-tdp-700w/ (secondary).
DEFAULT_BUSY_POWER_FRACTION = 1.0
#: GPUs in a server built from cards when ``plan.tco.gpus_per_server`` is not given.
DEFAULT_GPUS_PER_SERVER = 8


@dataclass(frozen=True)
class OwnedMachine:
    """One kind of owned machine and what running it costs (see the module docstring)."""

    kind: str  # "server", "workstation" or "machine"
    description: str
    #: GPUs one machine holds.
    gpus_per_machine: int
    #: Price of one machine with all its GPUs (workstation: base + a full set of cards).
    price_usd: float
    #: Workstations: the base price and the price per card (cards bought as needed).
    base_price_usd: float | None = None
    card_price_usd: float | None = None
    hosting: str = "datacenter"  # or "office"
    life_years: float = 5.0
    electricity_usd_per_kwh: float = 0.09
    pue: float = 1.42
    hosting_usd_per_kw_month: float = 184.06
    server_overhead_fraction: float = 0.35
    idle_power_fraction: float = DEFAULT_IDLE_POWER_FRACTION
    busy_power_fraction: float = DEFAULT_BUSY_POWER_FRACTION
    gpu_tdp_w: float = 700.0
    #: Whole-machine wall power (W) where measured (Macs): idle and maximum.
    machine_idle_w: float | None = None
    machine_max_w: float | None = None
    staff_usd_per_month: float = 0.0
    #: What was assumed, one line each, for the terminal and the report.
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def machines(self, gpus: int) -> int:
        """Machines holding ``gpus`` GPUs."""
        return max(1, math.ceil(gpus / self.gpus_per_machine))

    def purchase_usd(self, gpus: int, price_factor: float = 1.0) -> float:
        """Price of the machines holding ``gpus`` GPUs (workstations get only the cards
        they need)."""
        machines = self.machines(gpus)
        if self.base_price_usd is not None and self.card_price_usd is not None:
            return (machines * self.base_price_usd + gpus * self.card_price_usd) * price_factor
        return machines * self.price_usd * price_factor

    def power_w(self, gpus: int, busy_fraction: float) -> float:
        """Average draw (W) of the machines holding ``gpus`` GPUs, busy ``busy_fraction``
        of the time (the GPUs of a partly filled server idle)."""
        machines = self.machines(gpus)
        if self.machine_max_w is not None:
            idle = self.machine_idle_w or 0.0
            return machines * (idle + busy_fraction * (self.machine_max_w - idle))
        installed = gpus if self.kind == "workstation" else machines * self.gpus_per_machine
        share = busy_fraction * gpus / installed if installed else 0.0
        gpu_w = self.gpu_tdp_w * (
            self.idle_power_fraction + share * (self.busy_power_fraction - self.idle_power_fraction)
        )
        return installed * (gpu_w + self.server_overhead_fraction * self.gpu_tdp_w)

    def provisioned_kw(self, gpus: int) -> float:
        """Power the hosting provisions for the machines (kW): their maximum draw."""
        machines = self.machines(gpus)
        if self.machine_max_w is not None:
            return machines * self.machine_max_w / 1e3
        installed = gpus if self.kind == "workstation" else machines * self.gpus_per_machine
        return installed * self.gpu_tdp_w * (1 + self.server_overhead_fraction) / 1e3


def monthly_owned_usd(
    machine: OwnedMachine, gpus: int, busy_fraction: float, hours: float, price_factor=1.0
) -> dict[str, float]:
    """Monthly cost parts (USD) of owning the machines that hold ``gpus`` GPUs."""
    amortisation = machine.purchase_usd(gpus, price_factor) / (machine.life_years * 12)
    energy_kwh = machine.power_w(gpus, busy_fraction) / 1e3 * machine.pue * hours
    hosting = machine.provisioned_kw(gpus) * machine.hosting_usd_per_kw_month
    return {
        "machines": machine.machines(gpus),
        "amortisation_usd": amortisation,
        "electricity_usd": energy_kwh * machine.electricity_usd_per_kwh,
        "energy_kwh": energy_kwh,
        "hosting_usd": hosting,
        "staff_usd": machine.staff_usd_per_month,
        "total_usd": amortisation
        + energy_kwh * machine.electricity_usd_per_kwh
        + hosting
        + machine.staff_usd_per_month,
    }


def _rows(gpu: str, table: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    rows = [r for r in table["hardware_purchase"] if r.get("gpu") == gpu]
    by_kind: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: r["price_usd"]):
        by_kind.setdefault(row["kind"], []).append(row)
    by_kind["workstation_base"] = sorted(
        (r for r in table["hardware_purchase"] if r["kind"] == "workstation_base"),
        key=lambda r: r["price_usd"],
    )
    return by_kind


def _listed_machine(gpu: str, table: dict[str, Any], dc: dict[str, float]) -> dict[str, Any]:
    """Settings of the machine prices.yaml lists for ``gpu`` (empty when it lists none)."""
    rows = _rows(gpu, table)
    if rows.get("machine"):
        r = rows["machine"][0]
        return dict(
            kind="machine",
            description=r["item"],
            gpus_per_machine=int(r["gpus"]),
            price_usd=float(r["price_usd"]),
            machine_idle_w=r.get("power_idle_w"),
            machine_max_w=r.get("power_max_w"),
            assumptions=(f"machine: {r['item']}, ${r['price_usd']:,.0f} ({r['source']})",),
        )
    if rows.get("server"):
        r = rows["server"][0]
        return dict(
            kind="server",
            description=r["item"],
            gpus_per_machine=int(r["gpus"]),
            price_usd=float(r["price_usd"]),
            assumptions=(f"server: {r['item']}, ${r['price_usd']:,.0f} ({r['source']})",),
        )
    cards = rows.get("card") or []
    if not cards:
        return {}
    card = cards[0]
    if card.get("machine") == "workstation" and rows["workstation_base"]:
        base = rows["workstation_base"][0]
        slots = int(base["gpus"])
        return dict(
            kind="workstation",
            description=f"workstation with up to {slots} × {gpu}",
            gpus_per_machine=slots,
            price_usd=float(base["price_usd"]) + slots * float(card["price_usd"]),
            base_price_usd=float(base["price_usd"]),
            card_price_usd=float(card["price_usd"]),
            assumptions=(
                f"workstation: {base['item']}, ${base['price_usd']:,.0f} ({base['source']})",
                f"card: {card['item']}, ${card['price_usd']:,.0f} ({card['source']})",
            ),
        )
    chassis = dc.get("server_chassis_fraction", 0.0)
    n = DEFAULT_GPUS_PER_SERVER
    return dict(
        kind="server",
        description=f"{n}-GPU server of {gpu} cards",
        gpus_per_machine=n,
        price_usd=n * float(card["price_usd"]) * (1 + chassis),
        assumptions=(
            f"server: {n} cards at ${card['price_usd']:,.0f} ({card['source']}) plus "
            f"{chassis:.1%} for the chassis (server_chassis_fraction)",
        ),
    )


def owned_machine(gpu: str, tco: Any, gpus_per_replica: int = 1) -> tuple[OwnedMachine | None, str]:
    """The owned machine for ``gpu`` with a plan's ``tco`` settings applied, or None and why
    (see the module docstring)."""
    from simulator.specs.catalog import load_gpu

    table = load_prices()
    dc = datacenter_defaults(table)
    settings = _listed_machine(gpu, table, dc)
    given_price = getattr(tco, "server_price_usd", None)
    given_gpus = getattr(tco, "gpus_per_server", None)
    if not settings and given_price is None:
        return None, (
            f"prices.yaml lists no machine, server or card price for {gpu}; give "
            "plan.tco.server_price_usd (and plan.tco.gpus_per_server) to price owning it"
        )
    if not settings:
        settings = dict(
            kind="server" if load_gpu(gpu).tdp_w else "machine",
            description=f"machine of {given_gpus or gpus_per_replica} × {gpu}",
            gpus_per_machine=given_gpus or gpus_per_replica,
            price_usd=given_price,
            assumptions=(),
        )
    notes = list(settings.pop("assumptions"))
    if given_price is not None:
        settings.update(price_usd=float(given_price), base_price_usd=None, card_price_usd=None)
        notes = [f"machine price ${given_price:,.0f} from plan.tco.server_price_usd"]
    if given_gpus is not None:
        settings["gpus_per_machine"] = int(given_gpus)
    hosting = getattr(tco, "hosting", None) or (
        "datacenter" if settings["kind"] == "server" else "office"
    )
    machine = OwnedMachine(
        **settings,
        hosting=hosting,
        life_years=_given(tco, "life_years", dc["server_life_years"]),
        electricity_usd_per_kwh=_given(
            tco,
            "electricity_usd_per_kwh",
            dc["electricity_usd_per_kwh"]
            if hosting == "datacenter"
            else dc.get("office_electricity_usd_per_kwh", dc["electricity_usd_per_kwh"]),
        ),
        pue=_given(tco, "pue", dc["pue"] if hosting == "datacenter" else 1.0),
        hosting_usd_per_kw_month=_given(
            tco,
            "hosting_usd_per_kw_month",
            dc["colocation_usd_per_kw_month"] if hosting == "datacenter" else 0.0,
        ),
        server_overhead_fraction=dc.get("server_overhead_fraction", 0.35),
        idle_power_fraction=_given(tco, "idle_power_fraction", DEFAULT_IDLE_POWER_FRACTION),
        busy_power_fraction=_given(tco, "busy_power_fraction", DEFAULT_BUSY_POWER_FRACTION),
        gpu_tdp_w=load_gpu(gpu).tdp_w,
        staff_usd_per_month=float(getattr(tco, "staff_usd_per_month", 0.0) or 0.0),
    )
    if machine.machine_max_w is None and not machine.gpu_tdp_w:
        notes.append(f"no power figure for {gpu}: electricity not counted")
    where = (
        "a data centre (colocation, PUE, industrial electricity)"
        if hosting == "datacenter"
        else "an office (no hosting fee, PUE 1, commercial electricity)"
    )
    notes.append(f"hosted in {where}; written off over {machine.life_years:g} years")
    return _with_notes(machine, notes), ""


def _given(tco: Any, key: str, default: float) -> float:
    value = getattr(tco, key, None)
    return float(default if value is None else value)


def _with_notes(machine: OwnedMachine, notes: list[str]) -> OwnedMachine:
    from dataclasses import replace

    return replace(machine, assumptions=tuple(notes))


def require_machine(gpu: str, tco: Any, gpus_per_replica: int = 1) -> OwnedMachine:
    """``owned_machine`` or a UserError saying why there is none."""
    machine, why = owned_machine(gpu, tco, gpus_per_replica)
    if machine is None:
        raise UserError(why)
    return machine
