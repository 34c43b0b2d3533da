"""Loading ``agent.yaml`` and device profiles: every problem, with file, line, field path and the fix."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from edge_agent.collectors.endpoints import endpoint_problem
from edge_agent.collectors.plugin import CollectorPlugin, DeviceSpec, plugins
from edge_agent.collectors.profile import ProfileBase, SignalSpec, builtin_profile_dir, signal_names
from edge_agent.config.model import AgentConfig, Device, agent_config_model, union_tags
from edge_agent.config.renamed import rename_in_config
from edge_agent.config.types import FROM_FILE
from edge_agent.config.yaml_source import ConfigError, YamlDocument, load_yaml, validation_problems
from edge_agent.secrets import hidden, read_secret_files, substitute

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


def load_profile(path: Path, warnings: list[str] | None = None) -> ProfileBase:
    """Validate one profile file; every problem names the file, line and field, all in one pass.

    Doubtful but valid values (an address that looks Modicon-style) are appended to ``warnings``.
    """
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "a profile is a mapping with name, protocol and fields/nodes")])
    plugin = plugins().get(str(doc.data.get("protocol")))
    findings = plugin.profile_model.lint(doc.data) if plugin is not None else []
    problems = [doc.problem(f.loc, f.message) for f in findings if not f.warning]
    try:
        profile: ProfileBase = _profile_adapter().validate_python(doc.data, context=FROM_FILE)
    except ValidationError as exc:
        # Errors of the whole profile repeat what lint found at the fields.
        problems = validation_problems(doc, exc, union_tags=union_tags(), skip_whole=bool(problems)) + problems
    if problems:
        raise ConfigError(problems)
    if warnings is not None:
        warnings += [doc.problem(f.loc, f.message) for f in findings if f.warning]
    return profile


def profile_name(path: Path) -> str | None:
    """The ``name:`` a profile file declares, read without validating it (None if unreadable)."""
    try:
        data = load_yaml(path).data
    except ConfigError:
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def load_profiles(
    dirs: Iterable[Path], used: set[str] | None = None, warnings: list[str] | None = None
) -> dict[str, ProfileBase]:
    """Every profile in ``dirs`` by name. A broken profile is an error when ``used`` is None or
    names it, and a warning (in ``warnings``) when no device uses it."""
    profiles: dict[str, ProfileBase] = {}
    where: dict[str, Path] = {}
    problems: list[str] = []
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            try:
                profile = load_profile(path, warnings)
            except ConfigError as exc:
                if used is not None and warnings is not None and profile_name(path) not in used:
                    warnings += [f"{p} (no device uses this profile: it is skipped)" for p in exc.problems]
                else:
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

    def fingerprint(self) -> str:
        """12 hex digits that change when the effective configuration does (secrets left out):
        which agents of a fleet run the same settings (tag ``config`` of ``agent`` points)."""
        text = json.dumps(hidden(self.config.model_dump(mode="json")), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

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
    return _endpoint_problems(doc, at, dev.endpoint, plugin)


def _endpoint_problems(
    doc: YamlDocument, at: tuple[str | int, ...], endpoint: str, plugin: CollectorPlugin
) -> list[str]:
    if plugin.check_endpoint is not None:
        wrong = plugin.check_endpoint(endpoint)
    else:
        wrong = endpoint_problem(endpoint, plugin.endpoint_example)
    return [doc.problem((*at, "endpoint"), wrong)] if wrong else []


def _raw_endpoint_problems(doc: YamlDocument, said: list[str]) -> list[str]:
    """Endpoints checked as written, when the file did not validate: all problems in one pass."""
    devices = doc.data.get("devices") if isinstance(doc.data, dict) else None
    by_scheme = {scheme: plugin for plugin in plugins().values() for scheme in plugin.schemes}
    problems: list[str] = []
    for i, dev in enumerate(devices if isinstance(devices, list) else []):
        endpoint = dev.get("endpoint") if isinstance(dev, dict) else None
        plugin = by_scheme.get(endpoint.split("://", 1)[0].lower()) if isinstance(endpoint, str) else None
        if plugin is not None and isinstance(endpoint, str):
            at = doc.problem(("devices", i, "endpoint"), "").rsplit(":", 1)[0]
            if not any(p.startswith(at) for p in said):
                problems += _endpoint_problems(doc, ("devices", i), endpoint, plugin)
    return problems


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


def _check_sinks(doc: YamlDocument, config: AgentConfig) -> list[str]:
    """No two sinks send their points to the same place (they would share one cursor in the store,
    and each would skip what the other acknowledged)."""
    problems = []
    seen: dict[str, int] = {}
    for i, sink in enumerate(config.sinks):
        identity = sink.identity()
        if identity in seen:
            problems.append(
                doc.problem(
                    ("sinks", i),
                    f"this sink writes to the same place as sinks[{seen[identity]}] ({identity}): remove one, "
                    "or point it at another database, bucket, retention policy or user",
                )
            )
        seen.setdefault(identity, i)
    return problems


def load_config(path: Path) -> LoadedConfig:
    """Validate ``agent.yaml`` and the profiles it uses; raise ConfigError listing every problem.

    The problems come in one pass: a missing environment variable, a wrong field and a broken
    profile are reported together (checks that need a valid file, such as a device's signals
    against its profile, follow once the file validates).
    """
    doc = load_yaml(path)
    if not isinstance(doc.data, dict):
        raise ConfigError([doc.problem((), "agent.yaml is a mapping with agent, sinks, devices")])
    warnings = rename_in_config(doc)
    found = substitute(doc.data, os.environ) + read_secret_files(doc.data, path.parent)
    problems = [doc.problem(loc, message) for loc, message in found]
    config: AgentConfig | None = None
    try:
        config = agent_config_model().model_validate(doc.data, context=FROM_FILE)
    except ValidationError as exc:
        # A field left empty by a missing variable is reported once, as the missing variable.
        said = {p.split(": ", 2)[1] for p in problems}
        problems += [
            p for p in validation_problems(doc, exc, union_tags=union_tags()) if p.split(": ", 2)[1] not in said
        ]
    wanted = config.profile_dirs if config is not None else _raw_list(doc.data.get("profile_dirs"))
    dirs = [builtin_profile_dir()]
    for j, rel in enumerate(wanted):
        folder = Path(rel) if Path(rel).is_absolute() else path.parent / rel
        if not folder.is_dir():
            problems.append(doc.problem(("profile_dirs", j), f"no folder {folder}: create it or fix the path"))
        else:
            dirs.append(folder)
    used = {d.profile for d in config.devices} if config is not None else _raw_profiles(doc.data)
    try:
        profiles = load_profiles(dirs, used, warnings)
    except ConfigError as exc:
        problems += exc.problems
        profiles = {}
    if config is None:
        raise ConfigError(problems + _raw_endpoint_problems(doc, problems))
    if problems:
        raise ConfigError(problems)
    problems += _check_devices(doc, config, profiles)
    problems += _check_anomaly_keys(doc, config, profiles)
    problems += _check_kpis(doc, config, profiles)
    problems += _check_sinks(doc, config)
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(path, config, profiles, tuple(warnings))


def _check_devices(doc: YamlDocument, config: AgentConfig, profiles: dict[str, ProfileBase]) -> list[str]:
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, dev in enumerate(config.devices):
        if dev.name in seen:
            problems.append(
                doc.problem(
                    ("devices", i, "name"), f"device name {dev.name!r} is already used by devices[{seen[dev.name]}]"
                )
            )
        seen.setdefault(dev.name, i)
        problems += _check_device(doc, i, dev, profiles)
    return problems


def _raw_list(value: object) -> list[str]:
    """A list of strings as written (the file did not validate: take what can be taken)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _raw_profiles(data: dict[str, Any]) -> set[str]:
    """The profiles the devices name, as written."""
    devices = data.get("devices")
    if not isinstance(devices, list):
        return set()
    return {d["profile"] for d in devices if isinstance(d, dict) and isinstance(d.get("profile"), str)}
