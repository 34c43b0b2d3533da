"""``agent.yaml``: which devices this agent reads, where results go, and how OEE is configured.

A device profile describes a device *model*; ``devices`` here lists *instances*: the endpoint,
the unit id, the plant tags (site, workshop, line, machine) and the OEE roles of its signals.
:func:`load_config` validates everything before the agent starts and reports every problem
with file, line and field path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from collectors.profile import (
    DeviceProfile,
    ModbusProfile,
    OpcUaProfile,
    builtin_profile_dir,
    signal_names,
)
from edge_agent.config_types import Duration, Strict, TagValue, parse_duration
from edge_agent.kpi_config import KpiSection
from edge_agent.oee_config import OeeSection, ShiftSchedule
from edge_agent.yaml_source import ConfigError, YamlDocument, load_yaml, validation_problems

__all__ = ["Duration", "OeeSection", "ShiftSchedule", "parse_duration"]


class BufferSection(Strict):
    path: str = Field("var/edge-buffer.sqlite3", description="SQLite file, relative to agent.yaml")
    max_points: Annotated[int, Field(ge=10_000)] = 50_000_000


class AgentSection(Strict):
    id: TagValue
    site: TagValue
    workshop: TagValue
    buffer: BufferSection = Field(default_factory=BufferSection)
    health_listen: str | None = Field(None, description="host:port of the health endpoint")


class _SinkBase(Strict):
    url: Annotated[str, Field(pattern=r"^https?://")]
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 5000
    concurrency: Annotated[int, Field(ge=1, le=8, description="writes in flight at once")] = 2
    gzip: bool = True
    timeout: Duration = 10.0
    rejected_file: str = Field("var/rejected.lp", description="4xx-rejected lines, relative to agent.yaml")


class InfluxV1Sink(_SinkBase):
    type: Literal["influxdb_v1"]
    database: TagValue
    retention_policy: str = ""
    username: str = ""
    password: str = ""


class InfluxV2Sink(_SinkBase):
    type: Literal["influxdb_v2"]
    org: str
    bucket: TagValue
    token: str = ""


SinkSection = Annotated[InfluxV1Sink | InfluxV2Sink, Field(discriminator="type")]


class Device(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    profile: str
    endpoint: Annotated[str, Field(pattern=r"^(modbus|modbus-tcp|opc\.tcp)://")]
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    params: dict[str, str] = Field(default_factory=dict, description="fills {placeholders} in node ids")
    line: TagValue
    machine: TagValue | None = None
    tags: dict[str, TagValue] = Field(default_factory=dict)
    poll_interval: Annotated[Duration, Field(gt=0)] = 1.0
    timeout: Annotated[Duration, Field(gt=0)] = 3.0
    oee: OeeSection | None = None
    anomaly_signals: list[str] | None = Field(None, description="default: the profile's analog signals")

    @property
    def machine_name(self) -> str:
        return self.machine or self.name


class LevelParams(Strict):
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = None
    var_alpha: Annotated[float, Field(gt=0, lt=1)] | None = None
    grace: Annotated[int, Field(ge=1)] | None = None
    threshold: Annotated[float, Field(gt=0)] | None = None


class SpikeParams(Strict):
    alpha: Annotated[float, Field(gt=0, lt=1)] | None = None
    grace: Annotated[int, Field(ge=1)] | None = None
    threshold: Annotated[float, Field(gt=0)] | None = None


class CusumParams(Strict):
    k: Annotated[float, Field(ge=0)] | None = None
    threshold: Annotated[float, Field(gt=0)] | None = None


class StuckParams(Strict):
    samples: Annotated[int, Field(ge=2)] | None = None
    tolerance: Annotated[float, Field(ge=0)] | None = None


class RobustParams(Strict):
    window: Annotated[int, Field(ge=8)] | None = None
    every: Annotated[int, Field(ge=1)] | None = None
    threshold: Annotated[float, Field(gt=0)] | None = None


class DetectorOverrides(Strict):
    """Detector parameters; anything left out keeps its default."""

    level: LevelParams = Field(default_factory=LevelParams)
    spike: SpikeParams = Field(default_factory=SpikeParams)
    cusum: CusumParams = Field(default_factory=CusumParams)
    stuck: StuckParams = Field(default_factory=StuckParams)
    robust: RobustParams = Field(default_factory=RobustParams)


class AlarmParams(Strict):
    """Hysteresis on the combined score (named so: YAML reads a bare ``on:`` as true)."""

    on_above: Annotated[float, Field(gt=0)] = 1.0
    off_below: Annotated[float, Field(ge=0)] = 0.5
    on_samples: Annotated[int, Field(ge=1)] = 2
    off_samples: Annotated[int, Field(ge=1)] = 5

    @model_validator(mode="after")
    def _hysteresis(self) -> AlarmParams:
        if self.off_below >= self.on_above:
            raise ValueError("off_below must be lower than on_above (hysteresis)")
        return self


DetectorName = Literal["level", "spike", "cusum", "stuck", "range", "robust"]
_DEFAULT_DETECTORS: tuple[DetectorName, ...] = ("level", "spike", "cusum", "stuck", "range")


class AnomalySection(DetectorOverrides):
    """Anomaly scoring: which detectors, their defaults, alarms, and per-signal overrides."""

    detectors: list[DetectorName] = Field(default_factory=lambda: list(_DEFAULT_DETECTORS))
    alarm: AlarmParams = Field(default_factory=AlarmParams)
    smoothing: Annotated[float, Field(gt=0, le=1)] | None = None
    reset_on_state_change: bool = Field(True, description="a machine's signals warm up again when its state changes")
    #: Overrides per signal, keyed ``device.signal`` (or the column name in a replay CSV).
    signals: dict[str, DetectorOverrides] = Field(default_factory=dict)


class AnalyticsSection(Strict):
    oee_window: Annotated[Duration, Field(ge=1)] = 60.0
    shifts: ShiftSchedule | None = None
    settle: Annotated[Duration, Field(ge=0, description="wait for late readings before OEE")] = 2.0
    anomaly: AnomalySection = Field(default_factory=AnomalySection)


class AgentConfig(Strict):
    agent: AgentSection
    sinks: list[SinkSection] = Field(default_factory=list)
    analytics: AnalyticsSection = Field(default_factory=AnalyticsSection)
    kpis: KpiSection = Field(default_factory=KpiSection)
    profile_dirs: list[str] = Field(default_factory=list, description="relative to agent.yaml")
    devices: Annotated[list[Device], Field(min_length=1)]


Profile = ModbusProfile | OpcUaProfile
_PROFILE_ADAPTER: TypeAdapter[Profile] = TypeAdapter(DeviceProfile)


def load_profile(path: Path) -> Profile:
    """Validate one profile file; every problem names the file, line and field."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "a profile is a mapping with name, protocol and fields/nodes")])
    try:
        return _PROFILE_ADAPTER.validate_python(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc)) from None


def load_profiles(dirs: Iterable[Path]) -> dict[str, Profile]:
    profiles: dict[str, Profile] = {}
    where: dict[str, Path] = {}
    problems: list[str] = []
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            try:
                profile = load_profile(path)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            if profile.name in profiles:
                problems.append(
                    f"{path}: profile name {profile.name!r} is also used by {where[profile.name]}: rename one"
                )
            profiles[profile.name], where[profile.name] = profile, path
    if problems:
        raise ConfigError(problems)
    return profiles


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    config: AgentConfig
    profiles: dict[str, Profile]

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.path.parent / p


def _check_device(doc: YamlDocument, i: int, dev: Device, profiles: dict[str, Profile]) -> list[str]:
    at = ("devices", i)
    profile = profiles.get(dev.profile)
    if profile is None:
        known = ", ".join(sorted(profiles)) or "none"
        return [
            doc.problem(
                (*at, "profile"),
                f"unknown profile {dev.profile!r}: known profiles are {known}; add its YAML to a profile_dirs folder",
            )
        ]
    problems = []
    scheme = urlsplit(dev.endpoint).scheme
    if (scheme == "opc.tcp") != isinstance(profile, OpcUaProfile):
        problems.append(
            doc.problem(
                (*at, "endpoint"),
                f"profile {profile.name!r} speaks {profile.protocol}, but the endpoint is {scheme}://",
            )
        )
    url = urlsplit(dev.endpoint)
    try:
        if not url.hostname or url.port is None:
            raise ValueError
    except ValueError:
        problems.append(
            doc.problem(
                (*at, "endpoint"),
                f"{dev.endpoint!r} needs a host and a port, e.g. modbus://10.0.0.5:502",
            )
        )
    names = set(signal_names(profile))
    if isinstance(profile, OpcUaProfile):
        missing = profile.placeholders() - set(dev.params)
        if missing:
            problems.append(doc.problem((*at, "params"), f"profile {profile.name!r} needs params {sorted(missing)}"))
    roles: list[tuple[tuple[str | int, ...], str]] = []
    if dev.oee is not None and dev.oee.shifts is not None:
        problems.append(
            doc.problem(
                (*at, "oee", "shifts"),
                "the agent's shifts are set once, under analytics.shifts (per-machine schedules: replay files only)",
            )
        )
    if dev.oee is not None and dev.oee.stale_after <= dev.poll_interval:
        problems.append(
            doc.problem(
                (*at, "oee", "stale_after"),
                f"stale_after ({dev.oee.stale_after:g} s) must be longer than poll_interval "
                f"({dev.poll_interval:g} s), or every state turns unknown between two polls",
            )
        )
    if dev.oee is not None:
        roles.append(((*at, "oee", "state", "signal"), dev.oee.state.signal))
        roles += [((*at, "oee", "counters", k, "signal"), c.signal) for k, c in dev.oee.counters.items()]
        if dev.oee.energy is not None:
            roles.append(((*at, "oee", "energy", "signal"), dev.oee.energy.signal))
    roles += [((*at, "anomaly_signals", j), s) for j, s in enumerate(dev.anomaly_signals or [])]
    for loc, signal in roles:
        if signal not in names:
            problems.append(
                doc.problem(
                    loc,
                    f"signal {signal!r} is not in profile {profile.name!r} (it has {', '.join(sorted(names))})",
                )
            )
    return problems


def _check_kpis(doc: YamlDocument, config: AgentConfig, profiles: dict[str, Profile]) -> list[str]:
    """Scope and energy meters name devices (and signals) that exist."""
    devices = {d.name: d for d in config.devices}
    problems = [
        doc.problem(("kpis", "scope", j), f"no device {name!r} (devices: {', '.join(devices)})")
        for j, name in enumerate(config.kpis.scope or [])
        if name not in devices
    ]
    for j, key in enumerate(config.kpis.energy_meters):
        device_name, _, signal = key.partition(".")
        device = devices.get(device_name)
        known = set(signal_names(profiles[device.profile])) if device and device.profile in profiles else set()
        if signal not in known:
            where = f"device {device_name!r} has no signal {signal!r}" if device else f"no device {device_name!r}"
            problems.append(doc.problem(("kpis", "energy_meters", j), f"{where}: write device.signal"))
    return problems


def load_config(path: Path) -> LoadedConfig:
    """Validate ``agent.yaml`` and the profiles it uses; raise ConfigError listing every problem."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "agent.yaml is a mapping with agent, sinks, devices")])
    try:
        config = AgentConfig.model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc)) from None
    dirs = [builtin_profile_dir()]
    problems: list[str] = []
    for j, rel in enumerate(config.profile_dirs):
        folder = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        if not folder.is_dir():
            problems.append(doc.problem(("profile_dirs", j), f"no folder {folder}: create it or fix the path"))
        else:
            dirs.append(folder)
    profiles = load_profiles(dirs)
    seen: dict[str, int] = {}
    for i, dev in enumerate(config.devices):
        if dev.name in seen:
            problems.append(
                doc.problem(
                    ("devices", i, "name"),
                    f"device name {dev.name!r} is already used by devices[{seen[dev.name]}]",
                )
            )
        seen.setdefault(dev.name, i)
        problems += _check_device(doc, i, dev, profiles)
    for key in config.analytics.anomaly.signals:
        device_name, _, signal = key.partition(".")
        device = next((d for d in config.devices if d.name == device_name), None)
        known = set(signal_names(profiles[device.profile])) if device and device.profile in profiles else set()
        if device is None or signal not in known:
            where = f"device {device_name!r} has no signal {signal!r}" if device else f"no device {device_name!r}"
            problems.append(
                doc.problem(
                    ("analytics", "anomaly", "signals", key),
                    f"{where}: keys are device.signal, e.g. {config.devices[0].name}.<signal>",
                )
            )
    problems += _check_kpis(doc, config, profiles)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(path, config, profiles)
