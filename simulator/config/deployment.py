"""How the replicas of a scenario are grouped and reached: a heterogeneous ``fleet`` of
groups, a ``disaggregated`` deployment of a prefill and a decode pool, and the ``routing``
of arrivals. ``replica_groups`` resolves every group's own hardware and engine settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from simulator.config.base import Parallel, Replicas, StrictModel, Tokens
from simulator.config.engine import EngineConfig
from simulator.config.hardware import HardwareConfig
from simulator.errors import UnknownNameError
from simulator.policies import known_policies
from simulator.specs.catalog import gpu_catalog_spelling
from simulator.specs.strict import validation_messages


class GroupConfig(StrictModel):
    """One group of identical replicas (a fleet member, or a pool of a disaggregated
    deployment): its settings replace those of the ``hardware`` and ``engine`` sections."""

    name: str | None = None
    #: GPU of this group's replicas; default: the ``hardware`` section's.
    gpu: str | None = None
    #: Tensor-parallel GPUs of this group's replicas; default: the ``hardware`` section's.
    tensor_parallel: Parallel | None = None
    replicas: Replicas = 1
    interconnect: str | None = None
    calibration: str | None = None
    #: Engine settings that differ from the scenario's ``engine`` section.
    engine: dict[str, Any] = Field(default_factory=dict)

    @field_validator("gpu")
    @classmethod
    def _catalog_spelling(cls, value: str | None) -> str | None:
        return None if value is None else gpu_catalog_spelling(value)

    @model_validator(mode="before")
    @classmethod
    def _batching_into_engine(cls, data: Any) -> Any:
        """A pool's ``batching``/``batching_options`` (the older form) are engine settings."""
        if isinstance(data, dict) and ("batching" in data or "batching_options" in data):
            data = dict(data)
            moved = {k: data.pop(k) for k in ("batching", "batching_options") if k in data}
            engine = data.get("engine")
            data["engine"] = {**moved, **(engine if isinstance(engine, dict) else {})}
        return data


class DisaggregatedConfig(StrictModel):
    """Prefill and decode on separate pools of replicas: arrivals are prefilled by the
    prefill pool, whose replicas ship each sequence's KV cache to the decode pool."""

    prefill: GroupConfig
    decode: GroupConfig
    #: Link carrying KV caches from prefill to decode replicas (per prefill GPU); default:
    #: the prefill GPU's interconnect, else InfiniBand NDR.
    kv_link: str | None = None

    @model_validator(mode="after")
    def _drafts_decode(self) -> DisaggregatedConfig:
        """Speculative decoding drafts decode tokens; a prefill pool makes only the first."""
        if self.prefill.engine.get("speculative") is not None:
            raise ValueError(
                "prefill.engine.speculative: speculative decoding drafts decode tokens, and a "
                "prefill pool produces only each request's first token; set it on "
                "decode.engine (or the engine section, which both pools take)"
            )
        return self


#: Batching policies a decode pool cannot run, and why: its requests arrive prefilled.
NOT_FOR_DECODE = {
    "static": "a static batch starts by prefilling its prompts together, and a decode "
    "pool's requests arrive already prefilled",
}


def decode_pool_problems(member: GroupConfig, engine: EngineConfig, where: str) -> list[str]:
    """What a decode pool cannot run with ``engine``, its resolved settings: a batching
    policy of ``NOT_FOR_DECODE``, named where it is set (the pool's own engine settings,
    else the scenario's ``engine`` section it takes them from)."""
    policy = engine.batching.policy
    if policy not in NOT_FOR_DECODE:
        return []
    allowed = ", ".join(p for p in known_policies() if p not in NOT_FOR_DECODE)
    own = f"{where}.engine.batching"
    if "batching" in member.engine:
        field, fix = own, f"set {own} to one of them"
    else:
        field = "engine.batching"
        fix = f"set {own} to one of them (it overrides engine.batching for this pool)"
    return [
        f"{field}: {policy} batching does not apply to the decode pool ({where}): "
        f"{NOT_FOR_DECODE[policy]}; a decode pool takes one of: {allowed}; {fix}"
    ]


class RoutingConfig(StrictModel):
    """How arriving requests are spread over replicas."""

    policy: str = "round_robin"
    #: length_aware: prompts of at least this many tokens go to the long-request replicas.
    long_prompt_tokens: Tokens = 2048
    #: length_aware: share of replicas reserved for long requests.
    long_replica_fraction: float = Field(0.5, gt=0.0, lt=1.0)

    @field_validator("policy")
    @classmethod
    def _known_router(cls, value: str) -> str:
        from simulator.policies.routing import known_routers

        if value not in known_routers():
            raise ValueError(str(UnknownNameError("routing policy", value, known_routers())))
        return value

    @model_validator(mode="after")
    def _options_of_the_policy(self) -> RoutingConfig:
        """The length_aware options do nothing under another policy."""
        options = ("long_prompt_tokens", "long_replica_fraction")
        # a value equal to its default changes nothing (servesim show writes them all)
        fields = type(self).model_fields
        given = [k for k in options if getattr(self, k) != fields[k].default]
        if given and self.policy != "length_aware":
            raise ValueError(
                f"{', '.join(given)}: options of the length_aware policy, not of "
                f"{self.policy!r}; set policy: length_aware or remove them"
            )
        return self


@dataclass(frozen=True)
class GroupSettings:
    """One group of identical replicas with every setting resolved."""

    name: str
    #: "serve" (whole requests), "prefill" or "decode" (disaggregated pools).
    role: str
    #: Where the group is described, for messages ("hardware", "fleet.0", ...).
    where: str
    #: Replicas built (with autoscaling: the most it may run).
    count: int
    hardware: HardwareConfig
    engine: EngineConfig


def member_settings(
    hardware: HardwareConfig, engine: EngineConfig, group: GroupConfig, where: str
) -> tuple[HardwareConfig, EngineConfig]:
    """A group's hardware and engine: the scenario's sections with the group's settings
    (a ``ValueError`` names each bad setting under ``where``)."""
    try:
        hw = hardware.replace(
            gpu=group.gpu or hardware.gpu,
            tensor_parallel=group.tensor_parallel or hardware.tensor_parallel,
            replicas=group.replicas,
            interconnect=group.interconnect,
            calibration=group.calibration,
        )
        eng = engine.replace(**group.engine) if group.engine else engine
    except ValidationError as exc:
        section = where if exc.title == HardwareConfig.__name__ else f"{where}.engine"
        raise ValueError("; ".join(_messages(exc, section))) from None
    return hw, eng


def _messages(exc: ValidationError, section: str) -> list[str]:
    return validation_messages(exc, None, section)


def replica_groups(
    hardware: HardwareConfig,
    engine: EngineConfig,
    fleet: list[GroupConfig] | None,
    disaggregated: DisaggregatedConfig | None,
) -> tuple[list[GroupSettings], list[str]]:
    """Every group of replicas of a deployment with its settings resolved, and what is
    wrong with the others, each under its path (``fleet.1.engine.max_num_seqs: ...``)."""
    if disaggregated is not None:
        members = [
            (role, role, f"disaggregated.{role}", getattr(disaggregated, role))
            for role in ("prefill", "decode")
        ]
    elif fleet:
        members = [(m.name, "serve", f"fleet.{i}", m) for i, m in enumerate(fleet)]
    else:
        count = hardware.autoscale.max_replicas if hardware.autoscale else hardware.replicas
        return [GroupSettings("replicas", "serve", "hardware", count, hardware, engine)], []
    groups, problems = [], []
    for name, role, where, member in members:
        try:
            hw, eng = member_settings(hardware, engine, member, where)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if role == "decode":
            problems += decode_pool_problems(member, eng, where)
        name = name or f"{hw.gpu}-tp{hw.tensor_parallel}"
        groups.append(GroupSettings(name, role, where, hw.replicas, hw, eng))
    return groups, problems
