"""``agent.yaml``: which devices this agent reads, where results go, and how analytics run.

A device profile describes a device *model*; ``devices`` here lists *instances*: the endpoint,
the plant tags (site, workshop, line, machine), the OEE roles of its signals and the options of
its protocol (a Modbus ``unit_id``, OPC UA ``params``, ...). Which options a device entry takes,
which ``type:`` a sink may have and which detectors ``anomaly:`` configures come from the
registries (:mod:`collectors.plugin`, :mod:`edge_agent.sinks.base`, :mod:`analytics.detectors`):
:func:`agent_config_model` builds the model from what is registered.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, Discriminator, Field, Tag, create_model, field_validator, model_validator

from edge_agent.collectors.plugin import CollectorPlugin, plugins
from edge_agent.config.anomaly import AnomalyBase, anomaly_section_model
from edge_agent.config.kpi import KpiSection
from edge_agent.config.oee import OeeSection, ShiftSchedule
from edge_agent.config.types import (
    DEVICE_NAME_PATTERN,
    ENDPOINT_PATTERN,
    RESERVED_TAGS,
    TAG_KEY_PATTERN,
    Duration,
    Strict,
    TagValue,
)
from edge_agent.sinks.base import plugins as sink_plugins


class BufferSection(Strict):
    path: str = Field("var/edge-buffer.sqlite3", description="SQLite file, relative to agent.yaml")
    max_points: Annotated[int, Field(ge=10_000)] = 50_000_000
    """points the store keeps; beyond that the oldest are dropped and counted"""
    memory_points: Annotated[int, Field(ge=0)] = Field(
        2_000_000,
        description="points held in memory while the store cannot be written (disk full), and between "
        "the pollers and the tick while it restarts; beyond that the oldest are dropped and counted "
        "(about 21 bytes each)",
    )
    synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite's synchronous: normal loses nothing when the process dies, at most the last "
        "second of points on a power cut; full loses nothing then either, at a disk flush per tick",
    )


class ReconnectSection(Strict):
    """Waits between attempts to reach a device that failed: ``initial``, doubled up to ``max``
    (each +-20 %), reset by the next good poll."""

    initial: Annotated[Duration, Field(gt=0)] = 0.5
    """first wait (s) after a failed attempt"""
    max: Annotated[Duration, Field(gt=0, le=3600)] = 4.0
    """longest wait (s): a device that comes back is polled again within this"""

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectSection:
        if self.max < self.initial:
            raise ValueError("reconnect.max must not be shorter than reconnect.initial")
        return self


class HealthSection(Strict):
    """When ``/health`` says degraded (HTTP 503) rather than ok (200)."""

    device_down_after: Annotated[
        Duration, Field(gt=0, description="a device unreachable this long (s) degrades the agent")
    ] = 300.0
    sink_failing_after: Annotated[
        Duration, Field(gt=0, description="a sink failing this long (s) degrades the agent")
    ] = 120.0


class AgentSection(Strict):
    id: TagValue
    """this agent's id: tag agent on every point"""
    site: TagValue
    """the plant: tag site on every point"""
    workshop: TagValue
    """the workshop (one agent per workshop): tag workshop"""
    buffer: BufferSection = Field(default_factory=BufferSection)
    """the durable local store"""
    health_listen: str | None = Field(
        None, description="host:port of /health and /metrics (127.0.0.1 when only :port is given)"
    )
    health: HealthSection = Field(default_factory=HealthSection)
    """when /health says degraded"""
    reconnect: ReconnectSection = Field(default_factory=ReconnectSection)
    """waits between attempts to reach a failed device"""
    drain: Annotated[
        Duration, Field(ge=0, description="on stop, how long the sinks may drain the store (s); Docker waits 10 s")
    ] = 8.0


class Device(Strict):
    """The fields every device entry has, whatever its protocol."""

    name: Annotated[str, Field(pattern=DEVICE_NAME_PATTERN)]
    """the device's name: tag device, and how logs, /health and anomaly overrides name it"""
    profile: str
    """its model: a built-in profile or one in profile_dirs (edge-agent profile check)"""
    endpoint: Annotated[str, Field(pattern=ENDPOINT_PATTERN)]
    """where it answers; the scheme picks the protocol"""
    line: TagValue
    """its production line: tag line"""
    machine: TagValue | None = None
    """its machine: tag machine (default: the device's name)"""
    tags: dict[Annotated[str, Field(pattern=TAG_KEY_PATTERN)], TagValue] = Field(
        default_factory=dict, description="extra tags on the device's points (an asset id, a cell)"
    )
    poll_interval: Annotated[Duration, Field(gt=0)] = 1.0
    """time between polls (s)"""
    timeout: Annotated[Duration, Field(gt=0)] = 3.0
    """longest wait for one reply (s)"""
    oee: OeeSection | None = None
    """the device's OEE roles; none: no OEE for it"""
    anomaly_signals: list[str] | None = Field(None, description="default: the profile's analog signals")

    @field_validator("tags")
    @classmethod
    def _own_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        taken = sorted(RESERVED_TAGS & set(tags))
        if taken:
            raise ValueError(
                f"the agent sets the tag {', '.join(taken)} itself: rename it in tags (e.g. {taken[0]}_id), or use "
                "the device's line: and machine: for those"
            )
        return tags

    @property
    def machine_name(self) -> str:
        return self.machine or self.name

    @property
    def scheme(self) -> str:
        return self.endpoint.split("://", 1)[0].lower()


class AnalyticsSection(Strict):
    oee_window: Annotated[Duration, Field(ge=1)] = 60.0
    """OEE per machine per window of this length (tag window: 1m for 60 s, else the seconds)"""
    shifts: ShiftSchedule | None = None
    """shifts and breaks: OEE per shift too (tag window=shift), breaks are planned time"""
    settle: Annotated[Duration, Field(ge=0, description="wait for late readings before OEE")] = 2.0
    checkpoint_every: Annotated[
        Duration, Field(ge=0, description="how often the analytics state is saved (0: only at a stop)")
    ] = 300.0
    anomaly: AnomalyBase = Field(default_factory=lambda: anomaly_section_model()())  # noqa: PLW0108 - built late
    """anomaly detection: docs/anomaly.md"""


class AgentConfig(Strict):
    """The whole file. Fields typed with base classes hold registry-built subclasses."""

    agent: AgentSection
    """who this agent is, its store and its listener"""
    sinks: list[Any] = Field(default_factory=list)
    """where points go; empty: the local store only"""
    analytics: AnalyticsSection = Field(default_factory=AnalyticsSection)
    """OEE and anomaly settings"""
    kpis: KpiSection = Field(default_factory=KpiSection)
    """the workshop KPIs: docs/kpis.md"""
    profile_dirs: list[str] = Field(
        default_factory=list, description="folders with your own device profiles (relative to agent.yaml)"
    )
    devices: Annotated[list[Device], Field(min_length=1)]
    """one entry per device instance"""


def device_model(plugin: CollectorPlugin) -> type[Device]:
    """A device entry of ``plugin``'s protocol: the common fields and the protocol's options."""
    return _device_models(tuple(plugins().items())).get(plugin.protocol, Device)


def _device_models(registered: tuple[tuple[str, CollectorPlugin], ...]) -> dict[str, type[Device]]:
    out: dict[str, type[Device]] = {}
    for protocol, plugin in registered:
        cached = _DEVICE_MODELS.get((protocol, id(plugin)))
        if cached is None:
            bases: Any = (Device, plugin.device_options)
            cached = cast(type[Device], create_model(f"{protocol.title()}Device", __base__=bases))
            _DEVICE_MODELS[(protocol, id(plugin))] = cached
        out[protocol] = cached
    return out


_DEVICE_MODELS: dict[tuple[str, int], type[Device]] = {}
_CONFIG_MODELS: dict[tuple[Any, ...], type[AgentConfig]] = {}


def _scheme_of(value: Any) -> str:
    endpoint = value.get("endpoint") if isinstance(value, dict) else getattr(value, "endpoint", None)
    return str(endpoint).split("://", 1)[0].lower() if isinstance(endpoint, str) and "://" in endpoint else ""


def _sink_type(value: Any, known: dict[str, Any]) -> str | None:
    name = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return name if isinstance(name, str) and name in known else None


def agent_config_model() -> type[AgentConfig]:
    """The ``agent.yaml`` model for the protocols, sinks and detectors registered now."""
    collectors, sinks = plugins(), sink_plugins()
    anomaly = anomaly_section_model()
    key = (tuple((k, id(v)) for k, v in collectors.items()), tuple((k, id(v)) for k, v in sinks.items()), anomaly)
    cached = _CONFIG_MODELS.get(key)
    if cached is not None:
        return cached
    devices = _device_models(tuple(collectors.items()))
    by_scheme = {s: p.protocol for p in collectors.values() for s in p.schemes}
    schemes = ", ".join(f"{s}://" for s in sorted(by_scheme))
    examples = "; ".join(p.endpoint_example for p in collectors.values() if p.endpoint_example)
    device_union: Any = Annotated[
        Union[tuple(Annotated[m, Tag(name)] for name, m in devices.items())],  # noqa: UP007 - built at run time
        Discriminator(
            lambda v: by_scheme.get(_scheme_of(v)),
            custom_error_type="endpoint_scheme",
            custom_error_message=f"endpoint needs a known scheme: {schemes} (e.g. {examples})",
        ),
    ]
    sink_types = {name: p.config_model for name, p in sinks.items()}
    sink_union: Any = Annotated[
        Union[tuple(Annotated[m, Tag(name)] for name, m in sink_types.items())],  # noqa: UP007 - built at run time
        Discriminator(
            lambda v: _sink_type(v, sink_types),
            custom_error_type="sink_type",
            custom_error_message=f"type must be one of {', '.join(sorted(sink_types))}",
        ),
    ]
    analytics: type[BaseModel] = create_model(
        "AnalyticsSection",
        __base__=AnalyticsSection,
        anomaly=(anomaly, Field(default_factory=anomaly, description="anomaly detection: docs/anomaly.md")),
    )
    model: type[AgentConfig] = create_model(
        "AgentConfig",
        __base__=AgentConfig,
        sinks=(
            list[sink_union],
            Field(default_factory=list, description=AgentConfig.model_fields["sinks"].description),
        ),
        devices=(
            Annotated[list[device_union], Field(min_length=1)],
            Field(description=AgentConfig.model_fields["devices"].description),
        ),
        analytics=(
            analytics,
            Field(default_factory=analytics, description=AgentConfig.model_fields["analytics"].description),
        ),
    )
    _CONFIG_MODELS[key] = model
    return model


def union_tags() -> set[str]:
    """Names pydantic puts into error locations for the registry-built unions."""
    return set(plugins()) | set(sink_plugins())
