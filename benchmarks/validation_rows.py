"""What every section of the validation suite shares: rows, paths and parameter sets."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator.costmodel import CostParams  # noqa: E402
from simulator.costmodel.profiles import EngineProfile  # noqa: E402
from simulator.specs.model import ModelSpec  # noqa: E402

CALIBRATION = ROOT / "hardware_specs" / "calibration"
FIT, HELD_OUT = "fit", "held out"


@dataclass(frozen=True)
class Row:
    """One comparison of a prediction with a measurement."""

    section: str
    config: str
    metric: str
    unit: str
    measured: float
    predicted: float
    status: str  # FIT or HELD_OUT
    note: str = ""

    @property
    def error_pct(self) -> float:
        return (self.predicted / self.measured - 1.0) * 100.0


@dataclass(frozen=True)
class Missing:
    """A published measurement the simulator cannot express yet, and why."""

    section: str
    config: str
    reason: str


# --- models not in the catalog (published configs of the checkpoints measured) ----------------
#: meta-llama/Llama-2-7b-hf config.json: hidden 4096, 32 layers, 32 heads (no GQA),
#: intermediate 11008, vocabulary 32000.
LLAMA2_7B = ModelSpec(
    "llama-2-7b", 4096, 32, 32, 32, 128, 11008, 32000, max_position_embeddings=4096
)


def pricing_label(gpu: str, profile: str | None, version: str | None = None) -> str:
    """Which kernels price ``gpu`` under ``profile``: the engine calibration (engine,
    version) or the reference calibration it falls back to."""
    from simulator.costmodel.pricing import resolve_pricing

    pricing = resolve_pricing(gpu, profile=profile, version=version)
    if pricing.kernels is not None:
        return f"{profile} {pricing.engine_version} kernels"
    base = f"{gpu}.yaml" if pricing.parameters != "datasheet defaults" else "defaults"
    return f"{base} + {profile}" if profile else base


def params_for(gpu: str, profile: EngineProfile | None) -> tuple[CostParams, str]:
    """The shipped calibration of ``gpu`` (or the defaults) under ``profile``, and a label
    saying which."""
    path = CALIBRATION / f"{gpu}.yaml"
    base = CostParams.from_file(path) if path.is_file() else CostParams.defaults()
    where = f"{gpu}.yaml" if path.is_file() else "defaults"
    if profile is None:
        return base, where
    return profile.apply(base), f"{where} + {profile.name}"
