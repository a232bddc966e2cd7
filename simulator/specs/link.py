"""Links between GPUs, nodes and the host."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LinkSpec:
    """A point-to-point or switched link: bandwidth per direction and one-way latency."""

    name: str
    kind: str  # "pcie" | "nvlink" | "infiniband" | "ethernet" | "xgmi" | ...
    bandwidth_bytes_per_s: float  # per direction, after encoding overhead
    latency_s: float
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    #: Most GPUs the link joins (a bridge joins a pair of cards); 0: no limit.
    max_gpus: int = 0

    def transfer_s(self, num_bytes: float) -> float:
        """Time to move ``num_bytes`` one way: latency + bytes / bandwidth (seconds)."""
        return self.latency_s + num_bytes / self.bandwidth_bytes_per_s
