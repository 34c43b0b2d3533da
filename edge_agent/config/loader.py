"""Loading ``agent.yaml`` and device profiles: every problem, with file, line, field path and the fix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from collectors.plugin import CollectorPlugin, DeviceSpec, plugins
from collectors.profile import ProfileBase, SignalSpec, builtin_profile_dir, signal_names
from edge_agent.config.model import AgentConfig, Device, agent_config_model, union_tags
from edge_agent.config.renamed import rename_in_config
from edge_agent.config.yaml_source import ConfigError, YamlDocument, load_yaml, validation_problems

_ADAPTERS: dict[tuple[tuple[str, int], ...], TypeAdapter[Any]] = {}


def _profile_adapter() -> TypeAdapter[Any]:
    registered = plugins()
    key = tuple((name, id(p)) for name, p in registered.items())
    adapter = _ADAPTERS.get(key)
    if adapter is None:
        models = {name: p.profile_model for name, p in registered.items()}
        known = ", ".join(sorted(models))
        union: Any = Annotated[
            Union[tuple(Annotated[m, Tag(name)] for name, m in models.items())],  # noqa: UP007 - built at run time
            Discriminator(
                lambda v: v.get("protocol") if isinstance(v, dict) and v.get("protocol") in models else None,
                custom_error_type="protocol",
                custom_error_message=f"protocol must be one of {known}",
            ),
        ]
        adapter = _ADAPTERS[key] = TypeAdapter(union)
    return adapter


def load_profile(path: Path) -> ProfileBase:
    """Validate one profile file; every problem names the file, line and field."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "a profile is a mapping with name, protocol and fields/nodes")])
    try:
        profile: ProfileBase = _profile_adapter().validate_python(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc, union_tags=union_tags())) from None
    return profile


def load_profiles(dirs: Iterable[Path]) -> dict[str, ProfileBase]:
    profiles: dict[str, ProfileBase] = {}
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
    profiles: dict[str, ProfileBase]
    #: Things that work but should change (renamed keys), with file, line and the new form.
    warnings: tuple[str, ...] = ()

    def resolve(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.path.parent / p

    def profile(self, device: Device) -> ProfileBase:
        return self.profiles[device.profile]

    def plugin(self, device: Device) -> CollectorPlugin:
        """The protocol plugin that reads ``device`` (its profile's protocol)."""
        protocol: str = getattr(self.profiles[device.profile], "protocol", "")
        return plugins()[protocol]

    def signals(self, device: Device) -> list[SignalSpec]:
        return self.profiles[device.profile].signals()

    def spec(self, device: Device) -> DeviceSpec:
        """What the device's collector factory receives."""
        return device_spec(self.plugin(device), device)


def device_spec(plugin: CollectorPlugin, device: Device) -> DeviceSpec:
    fields = set(plugin.device_options.model_fields)
    options = plugin.device_options.model_validate(device.model_dump(include=fields))
    return DeviceSpec(device.name, device.endpoint, device.poll_interval, device.timeout, options)


def _check_device(doc: YamlDocument, i: int, dev: Device, profiles: dict[str, ProfileBase]) -> list[str]:
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
    protocol: str = getattr(profile, "protocol", "")
    plugin = plugins()[protocol]
    if dev.scheme not in plugin.schemes:
        problems.append(
            doc.problem(
                (*at, "endpoint"),
                f"profile {profile.name!r} speaks {protocol}, but the endpoint is {dev.scheme}://: "
                f"write {' or '.join(f'{s}://' for s in plugin.schemes)}",
            )
        )
    else:
        problems += _check_endpoint(doc, at, dev, plugin)
        if plugin.check_device is not None:
            spec = device_spec(plugin, dev)
            problems += [doc.problem((*at, *loc), message) for loc, message in plugin.check_device(profile, spec)]
    names = set(signal_names(profile))
    roles: list[tuple[tuple[str | int, ...], str]] = []
    if dev.oee is not None and dev.oee.shifts is not None:
        problems.append(
            doc.problem(
                (*at, "oee", "shifts"),
                "the agent's shifts are set once, under analytics.shifts (per-machine schedules: replay files only)",
            )
        )
    if dev.oee is not None and dev.oee.stale_after is not None and dev.oee.stale_after <= dev.poll_interval:
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


def _check_endpoint(doc: YamlDocument, at: tuple[str | int, ...], dev: Device, plugin: CollectorPlugin) -> list[str]:
    from urllib.parse import urlsplit  # noqa: PLC0415

    url = urlsplit(dev.endpoint)
    try:
        ok = bool(url.hostname) and url.port is not None
    except ValueError:
        ok = False
    if ok:
        return []
    return [doc.problem((*at, "endpoint"), f"{dev.endpoint!r} needs a host and a port, e.g. {plugin.endpoint_example}")]


def _check_kpis(doc: YamlDocument, config: AgentConfig, profiles: dict[str, ProfileBase]) -> list[str]:
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


def _check_anomaly_keys(doc: YamlDocument, config: AgentConfig, profiles: dict[str, ProfileBase]) -> list[str]:
    problems = []
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
    return problems


def load_config(path: Path) -> LoadedConfig:
    """Validate ``agent.yaml`` and the profiles it uses; raise ConfigError listing every problem."""
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "agent.yaml is a mapping with agent, sinks, devices")])
    warnings = rename_in_config(doc)
    try:
        config = agent_config_model().model_validate(doc.data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc, union_tags=union_tags())) from None
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
    problems += _check_anomaly_keys(doc, config, profiles)
    problems += _check_kpis(doc, config, profiles)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(path, config, profiles, tuple(warnings))
