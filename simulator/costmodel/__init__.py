"""Roofline cost model of LLM forward steps: FLOPs and bytes per op, time per step, memory.

Pure functions and small classes, no SimPy. Public entry points:
``CostModel`` (price a ``StepShape`` for a ``CostConfig``), ``CostParams`` (efficiencies,
defaults or calibrated), ``KernelTables`` (an engine's measured kernels), ``memory_plan``
(weights, workspace and KV capacity per GPU).
"""

from simulator.costmodel.config import CostConfig, Parallelism, Precision
from simulator.costmodel.costs import OpCost, StepCost
from simulator.costmodel.kernels import KernelTables
from simulator.costmodel.memory import MemoryPlan, memory_plan
from simulator.costmodel.model import CostModel
from simulator.costmodel.params import CostParams
from simulator.costmodel.shape import StepShape

__all__ = [
    "CostConfig",
    "CostModel",
    "CostParams",
    "KernelTables",
    "MemoryPlan",
    "OpCost",
    "Parallelism",
    "Precision",
    "StepCost",
    "StepShape",
    "memory_plan",
]
