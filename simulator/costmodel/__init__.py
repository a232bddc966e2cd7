"""Roofline cost model of LLM forward steps: FLOPs and bytes per op, time per step, memory.

Pure functions and small classes, no SimPy. Public entry points:
``CostModel`` (price a ``StepShape``), ``CostParams`` (efficiencies, defaults or calibrated),
``memory_plan`` (weights, workspace and KV capacity per GPU).
"""

from simulator.costmodel.memory import MemoryPlan, memory_plan
from simulator.costmodel.model import CostModel, OpCost, StepCost
from simulator.costmodel.params import CostParams
from simulator.costmodel.shape import StepShape

__all__ = [
    "CostModel",
    "CostParams",
    "MemoryPlan",
    "OpCost",
    "StepCost",
    "StepShape",
    "memory_plan",
]
