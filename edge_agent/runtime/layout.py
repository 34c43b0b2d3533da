"""From the configured devices to series: what each collector index means, once.

Each device's collector indexes its signals 0..n-1 (its profile's order). The layout registers
one ``raw`` series per signal (tags: site, workshop, agent, line, machine, device, signal, and the
device's own), maps each collector index to its series id, and says which series play which OEE
role for which machine (state, counters, energy) and which analog signals are scored. The stages
read the layout; none of them reads ``agent.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.oee import ENERGY_KIND
from edge_agent.collectors.profile import SignalSpec
from edge_agent.config import LoadedConfig
from edge_agent.config.oee import COUNTER_KIND, OeeSection
from edge_agent.schema import RAW, TEXT_FIELD
from edge_agent.store.catalog import Series
from edge_agent.store.series import SeriesRegistry

#: Role codes per raw series: -1 none, 0 state, 1 + counter kind.
ROLE_NONE, ROLE_STATE = -1, 0
NS = 1_000_000_000


@dataclass(frozen=True)
class Machine:
    """One OEE machine: its device, tags (the device's, without ``device``) and ``oee:`` section.

    ``poll_ns`` is its device's poll interval (ns): a state change may be read up to two polls
    after it happened, and a state is stale after three.
    """

    name: str
    line: str
    device: int
    tags: dict[str, str]
    oee: OeeSection
    poll_ns: int


@dataclass(frozen=True, slots=True)
class Scored:
    """One analog signal the anomaly stage scores: ``device.signal``, its raw series, its machine
    (-1: none), its tags and its engineering limits (None: none)."""

    key: str
    raw_id: int
    machine: int
    #: The device's tags, shared by every signal of the device (``tags`` adds the signal's name).
    device_tags: dict[str, str]
    signal: str
    low: float | None
    high: float | None

    @property
    def tags(self) -> dict[str, str]:
        """The signal's tags (made when asked: 50,000 signals would otherwise keep 50,000 dicts)."""
        return {**self.device_tags, "signal": self.signal}


def raw_series(tags: dict[str, str], signal: SignalSpec) -> Series:
    """A signal's raw series: its text field, or its value field tagged with the profile's unit."""
    if signal.kind == "text":
        return Series.of(RAW, {**tags, "signal": signal.name}, TEXT_FIELD)
    unit = {"unit": signal.unit} if signal.unit else {}
    return Series.of(RAW, {**tags, "signal": signal.name, **unit}, "value")


class Layout:
    """Every device's raw series, OEE roles and scored signals (built once, then read-only)."""

    def __init__(self, loaded: LoadedConfig, series: SeriesRegistry) -> None:
        cfg = loaded.config
        base = {"site": cfg.agent.site, "workshop": cfg.agent.workshop, "agent": cfg.agent.id}
        keys: list[tuple[dict[str, str], SignalSpec]] = []  # each raw series, made when registered
        tables: list[NDArray[np.intp]] = []
        #: Every OEE machine, in order.
        self.machines: list[Machine] = []
        roles: list[tuple[int, int, int]] = []  # (raw index, machine, role)
        scored: list[tuple[int, int, str, dict[str, str], SignalSpec]] = []  # ..., device tags, ...
        for index, dev in enumerate(cfg.devices):
            signals = loaded.signals(dev)
            names = [sig.name for sig in signals]
            tags = {**dev.tags, **base, "line": dev.line, "machine": dev.machine_name, "device": dev.name}
            first = len(keys)
            keys += [(tags, s) for s in signals]
            tables.append(np.arange(first, first + len(names)))
            machine = -1
            if dev.oee is not None:
                machine = len(self.machines)
                machine_tags = {k: v for k, v in tags.items() if k != "device"}
                self.machines.append(
                    Machine(dev.machine_name, dev.line, index, machine_tags, dev.oee, int(dev.poll_interval * NS))
                )
                roles += [(first + names.index(signal), machine, role) for signal, role in _roles(dev.oee)]
            wanted = dev.anomaly_signals
            if wanted is None:
                wanted = [s.name for s in signals if s.kind == "analog"]
            scored += [
                (first + names.index(n), machine, f"{dev.name}.{n}", tags, signals[names.index(n)]) for n in wanted
            ]
        raw_ids = series.register(raw_series(tags, s) for tags, s in keys)
        #: Per device: its name and, per collector index, (signal name, unit, kind), for people to
        #: read (one list per profile, shared by its devices).
        by_profile: dict[str, list[tuple[str, str, str]]] = {}
        self.labels: list[tuple[str, list[tuple[str, str, str]]]] = []
        for dev in cfg.devices:
            named = by_profile.get(dev.profile)
            if named is None:
                named = by_profile[dev.profile] = [(s.name, s.unit, s.kind) for s in loaded.signals(dev)]
            self.labels.append((dev.name, named))
        #: Series id of each collector index, per device.
        self.device_tables: list[NDArray[np.int32]] = [raw_ids[t] for t in tables]
        size = int(raw_ids.max()) + 1 if raw_ids.shape[0] else 0
        #: Per raw series id: the OEE machine it serves (-1: none) and its role there.
        self.role_machine = np.full(size, -1, np.intp)
        self.role = np.full(size, ROLE_NONE, np.intp)
        #: Raw series id of each device's machine state signal (-1: the device has no oee: section).
        self.device_state_signal = np.full(len(cfg.devices), -1, np.int64)
        for raw_index, machine, role in roles:
            sid = int(raw_ids[raw_index])
            self.role_machine[sid], self.role[sid] = machine, role
            if role == ROLE_STATE:
                self.device_state_signal[self.machines[machine].device] = sid
        #: The analog signals to score, in column order.
        self.scored = [Scored(key, int(raw_ids[i]), m, tags, s.name, s.low, s.high) for i, m, key, tags, s in scored]

    @property
    def machine_device(self) -> list[int]:
        """Device index of each OEE machine."""
        return [m.device for m in self.machines]


def _roles(oee: OeeSection) -> list[tuple[str, int]]:
    """(signal, role code) of a machine's ``oee:`` section."""
    roles = [(oee.state.signal, ROLE_STATE)]
    roles += [(c.signal, 1 + COUNTER_KIND[k]) for k, c in oee.counters.items()]
    if oee.energy is not None:
        roles.append((oee.energy.signal, 1 + ENERGY_KIND))
    return roles


__all__ = ["NS", "ROLE_NONE", "ROLE_STATE", "Layout", "Machine", "Scored"]
