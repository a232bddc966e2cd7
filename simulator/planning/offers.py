"""Cloud offers a deployment can actually rent.

A replica is rented as it runs: a replica of N GPUs that talk over NVLink (tensor parallel on
an NVLink GPU) needs an instance with at least N GPUs of that type connected by NVLink
(``nvlink: true`` in ``prices.yaml``); a replica of N GPUs over PCIe needs N GPUs in one
instance; a one-GPU replica fits any instance. An instance holds
``gpus_per_instance // gpus_per_replica`` replicas, instances are rented whole and the GPUs a
fleet leaves idle in its last instance are paid for. A replica larger than an 8-GPU NVLink
instance spans whole instances (``instances_per_replica``).

Every row of ``prices.yaml`` is labelled by its market (``cloud``: hyperscalers;
``neocloud``: GPU clouds selling their own capacity; ``marketplace``: community hosts rented
through a broker, without a service agreement) and priced by its kind (on-demand, reserved,
spot).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from simulator.specs.prices import cloud_prices_per_gpu_hour

#: Markets of ``prices.yaml`` in the order they are offered.
MARKETS = ("cloud", "neocloud", "marketplace")
MARKET_LABELS = {"cloud": "hyperscaler", "neocloud": "GPU cloud", "marketplace": "marketplace"}
#: What each market is, for the assumptions.
MARKET_MEANINGS = {
    "cloud": "hyperscaler cloud (AWS, GCP, Azure)",
    "neocloud": "GPU cloud selling its own capacity",
    "marketplace": "community hosts rented through a broker, without a service agreement",
}
KIND_LABELS = {"on_demand": "on-demand", "reserved": "reserved", "spot": "spot"}


@dataclass(frozen=True)
class ReplicaShape:
    """What one replica needs from the machine it runs on."""

    gpu: str
    gpus_per_replica: int
    #: The replica's GPUs exchange tensor-parallel traffic over NVLink.
    needs_nvlink: bool


@dataclass(frozen=True)
class CloudOffer:
    """A ``prices.yaml`` row priced for a replica shape."""

    provider: str
    instance: str
    gpus_per_instance: int
    market: str
    nvlink: bool
    price_kind: str
    price_per_gpu_hour: float
    date: str
    source: str
    #: Replicas one instance holds (0 when a replica spans several instances).
    replicas_per_instance: int
    #: Instances one replica spans (1 unless the replica is larger than an instance).
    instances_per_replica: int
    reserved_terms: str = ""

    @property
    def label(self) -> str:
        """``provider instance, kind, market`` (the market left out where the instance's
        name already says it)."""
        market = MARKET_LABELS.get(self.market, self.market)
        shown = "" if market in self.instance else f", {market}"
        return f"{self.provider} {self.instance}, {KIND_LABELS[self.price_kind]}{shown}"

    def instances(self, replicas: int) -> int:
        """Whole instances renting ``replicas`` replicas."""
        if self.replicas_per_instance:
            return math.ceil(replicas / self.replicas_per_instance)
        return replicas * self.instances_per_replica

    def monthly_usd(self, replicas: int, hours: float, price_factor: float = 1.0) -> float:
        """Rent of the instances for ``hours`` (USD)."""
        gpus = self.instances(replicas) * self.gpus_per_instance
        return gpus * self.price_per_gpu_hour * price_factor * hours


def replica_shape(scenario) -> ReplicaShape:
    """The replica shape of a scenario: its GPU, GPUs per replica, and whether tensor
    parallelism runs over NVLink (the scenario's interconnect, else the GPU's own link)."""
    from simulator.planning.bounds import gpus_per_replica
    from simulator.specs.catalog import load_gpu

    hw = scenario.hardware
    link = getattr(hw, "interconnect", None) or load_gpu(hw.gpu).interconnect or ""
    count = gpus_per_replica(scenario)
    return ReplicaShape(hw.gpu, count, count > 1 and str(link).startswith("nvlink"))


def _fits(row: dict[str, Any], shape: ReplicaShape) -> tuple[int, int] | None:
    """(replicas per instance, instances per replica) of ``row`` for ``shape``, or None."""
    n, per = shape.gpus_per_replica, int(row["gpus_per_instance"])
    nvlink = bool(row.get("nvlink"))
    if shape.needs_nvlink and not nvlink:
        return None
    if n <= per:
        return per // n, 1
    # a replica spanning instances: only whole NVLink nodes joined by their network
    if nvlink and n % per == 0:
        return 0, n // per
    return None


def fitting_offers(shape: ReplicaShape, kind: str = "on_demand") -> tuple[list[CloudOffer], str]:
    """Every ``kind`` offer of ``prices.yaml`` a replica of ``shape`` fits, cheapest per
    replica-hour first, and why none fits when the list is empty."""
    rows = cloud_prices_per_gpu_hour(shape.gpu, kind)
    offers = []
    for row in rows:
        fit = _fits(row, shape)
        if fit is None:
            continue
        offers.append(
            CloudOffer(
                provider=row["provider"],
                instance=row["instance"],
                gpus_per_instance=int(row["gpus_per_instance"]),
                market=row.get("market", "cloud"),
                nvlink=bool(row.get("nvlink")),
                price_kind=kind,
                price_per_gpu_hour=float(row["price_per_gpu_hour"]),
                date=str(row.get("date", "")),
                source=str(row.get("source", "")),
                replicas_per_instance=fit[0],
                instances_per_replica=fit[1],
                reserved_terms=str(row.get("reserved_terms", "")) if kind == "reserved" else "",
            )
        )
    # cheapest per replica-hour; at equal price the smaller instance (less idle remainder)
    offers.sort(
        key=lambda o: (o.monthly_usd(1, 1.0) / max(o.replicas_per_instance, 1), o.gpus_per_instance)
    )
    if offers:
        return offers, ""
    need = (
        f"{shape.gpus_per_replica} NVLink-connected {shape.gpu} GPUs"
        if shape.needs_nvlink
        else f"{shape.gpus_per_replica} {shape.gpu} GPU(s)"
    )
    if not rows:
        return [], f"prices.yaml has no {KIND_LABELS[kind]} price for {shape.gpu}"
    return [], f"no {KIND_LABELS[kind]} instance in prices.yaml holds {need} (one replica)"


def offers_to_price(
    shape: ReplicaShape, kind: str = "on_demand", replicas: int = 1
) -> tuple[list[CloudOffer], str]:
    """The offers a plan prices: of each market, the fitting one that rents ``replicas``
    replicas for least (whole instances: a small fleet may cost less in small instances)."""
    offers, why = fitting_offers(shape, kind)
    chosen: dict[str, CloudOffer] = {}
    for offer in sorted(offers, key=lambda o: (o.monthly_usd(replicas, 1.0), o.gpus_per_instance)):
        chosen.setdefault(offer.market, offer)
    ordered = [chosen[m] for m in MARKETS if m in chosen]
    ordered += [o for m, o in chosen.items() if m not in MARKETS]
    return ordered, why


def cheapest_gpu_hour(gpu: str, kind: str = "on_demand") -> float | None:
    """$/GPU-hour of the cheapest ``kind`` offer of one ``gpu`` on its own (any market)."""
    offers, _ = fitting_offers(ReplicaShape(gpu, 1, False), kind)
    return offers[0].price_per_gpu_hour if offers else None
