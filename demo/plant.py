"""A deterministic workshop simulation that records its own ground truth.

Two lines of three machines and one energy meter. Each machine walks through running, idle,
down, setup and planned-stop episodes with realistic durations, makes parts at its ideal cycle
time plus speed losses while running, rejects some, and carries analog signals (spindle
temperature, vibration, power). Anomalies are injected at known times. Everything is a function
of the seed and of plant time (seconds since the plant started), so any two runs agree and a
test can ask what really happened between two instants.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

RUNNING, IDLE, DOWN, SETUP, PLANNED_STOP = 1, 2, 3, 4, 5
STATE_CODES = {
    RUNNING: "running",
    IDLE: "idle",
    DOWN: "down",
    SETUP: "setup",
    PLANNED_STOP: "planned_stop",
}
#: (low, high) episode lengths in seconds.
DURATIONS = {
    RUNNING: (150.0, 600.0),
    IDLE: (15.0, 90.0),
    DOWN: (60.0, 300.0),
    SETUP: (120.0, 420.0),
    PLANNED_STOP: (300.0, 900.0),
}
#: Where a machine goes after running, and how likely.
AFTER_RUNNING = ((IDLE, 0.5), (DOWN, 0.3), (SETUP, 0.12), (PLANNED_STOP, 0.08))
#: Electrical power per state, kW.
POWER_KW = {RUNNING: 15.0, IDLE: 5.0, DOWN: 1.0, SETUP: 4.0, PLANNED_STOP: 0.5}
TEMP_TARGET_C = {RUNNING: 68.0, IDLE: 52.0, DOWN: 35.0, SETUP: 45.0, PLANNED_STOP: 30.0}
TEMP_TAU_S = 40.0
NOISE_HZ = 10


@dataclass(frozen=True)
class MachineSpec:
    name: str
    line: str
    protocol: str  # "opcua" or "modbus"
    ideal_cycle_s: float
    reject_rate: float
    #: First reading of the good-part counter (a uint16 on Modbus: starting near 65535 makes it wrap).
    counter_start: int = 0
    unit_id: int = 0


@dataclass(frozen=True)
class Anomaly:
    machine: str
    signal: str
    kind: str  # "drift", "spike" or "stuck"
    start_s: float
    end_s: float


DEFAULT_MACHINES = (
    MachineSpec("A1", "line-a", "opcua", 4.0, 0.03),
    MachineSpec("A2", "line-a", "opcua", 5.0, 0.02),
    MachineSpec("A3", "line-a", "opcua", 3.0, 0.04),
    MachineSpec("B1", "line-b", "modbus", 2.0, 0.03, counter_start=65_500, unit_id=1),
    MachineSpec("B2", "line-b", "modbus", 2.5, 0.05, counter_start=1_000, unit_id=2),
    MachineSpec("B3", "line-b", "modbus", 3.5, 0.02, counter_start=30_000, unit_id=3),
)
ENERGY_METER_UNIT = 10

DEFAULT_ANOMALIES = (
    Anomaly("A2", "spindle_temp", "drift", 300.0, 600.0),
    Anomaly("B1", "vibration", "spike", 200.0, 203.0),
    Anomaly("A3", "spindle_temp", "stuck", 420.0, 540.0),
)


@dataclass
class MachineSim:
    spec: MachineSpec
    rng: np.random.Generator
    #: Episode starts (s since plant start) and their state codes; episode i ends at starts[i+1].
    starts: list[float] = field(default_factory=lambda: [0.0])
    states: list[int] = field(default_factory=lambda: [RUNNING])
    #: Completion times of parts (s) and whether each was good.
    part_times: list[float] = field(default_factory=list)
    part_good: list[bool] = field(default_factory=list)
    #: Good parts among the first i + 1 parts.
    good_cum: list[int] = field(default_factory=list)
    temp_at_start: list[float] = field(default_factory=list)
    horizon: float = 0.0

    def _duration(self, state: int) -> float:
        low, high = DURATIONS[state]
        return float(self.rng.uniform(low, high))

    def extend(self, until_s: float) -> None:
        """Simulate episodes until ``until_s`` is covered."""
        if not self.temp_at_start:
            # The plant was running before we started watching: start in thermal steady state.
            self.temp_at_start.append(TEMP_TARGET_C[self.states[0]])
        while self.horizon <= until_s:
            state, begin = self.states[-1], self.starts[-1]
            end = begin + self._duration(state)
            if state == RUNNING:
                t = begin
                while True:
                    t += self.spec.ideal_cycle_s * float(self.rng.uniform(1.05, 1.35))
                    if t > end:
                        break
                    self.part_times.append(t)
                    ok = bool(self.rng.random() >= self.spec.reject_rate)
                    self.part_good.append(ok)
                    self.good_cum.append((self.good_cum[-1] if self.good_cum else 0) + ok)
                nxt = AFTER_RUNNING[int(self.rng.choice(len(AFTER_RUNNING), p=[p for _, p in AFTER_RUNNING]))][0]
            else:
                nxt = RUNNING
            target = TEMP_TARGET_C[state]
            self.temp_at_start.append(
                target + (self.temp_at_start[-1] - target) * math.exp(-(end - begin) / TEMP_TAU_S)
            )
            self.starts.append(end)
            self.states.append(nxt)
            self.horizon = end

    def episode(self, t: float) -> int:
        self.extend(t)
        return bisect.bisect_right(self.starts, t) - 1

    def state_at(self, t: float) -> int:
        return self.states[self.episode(t)]

    def counts_at(self, t: float) -> tuple[int, int]:
        """Good and rejected parts completed in [0, t]."""
        self.extend(t)
        n = bisect.bisect_right(self.part_times, t)
        good = self.good_cum[n - 1] if n else 0
        return good, n - good

    def temperature(self, t: float) -> float:
        i = self.episode(t)
        target = TEMP_TARGET_C[self.states[i]]
        return target + (self.temp_at_start[i] - target) * math.exp(-(t - self.starts[i]) / TEMP_TAU_S)

    def energy_kwh(self, t: float) -> float:
        i = self.episode(t)
        done = sum(POWER_KW[self.states[j]] * (self.starts[j + 1] - self.starts[j]) for j in range(i))
        return (done + POWER_KW[self.states[i]] * (t - self.starts[i])) / 3600.0


class Plant:
    """The whole workshop; times are plant seconds (float) since ``start``."""

    def __init__(
        self,
        seed: int = 1,
        machines: tuple[MachineSpec, ...] = DEFAULT_MACHINES,
        anomalies: tuple[Anomaly, ...] = DEFAULT_ANOMALIES,
    ) -> None:
        self.seed = seed
        root = np.random.SeedSequence(seed)
        children = root.spawn(len(machines) + 1)
        self.machines = {
            m.name: MachineSim(m, np.random.default_rng(c)) for m, c in zip(machines, children, strict=False)
        }
        self.anomalies = tuple(self._place(a) for a in anomalies)
        self._noise = np.random.default_rng(children[-1])
        self._noise_cache: dict[tuple[str, str], np.ndarray] = {}

    def _place(self, anomaly: Anomaly, settled_s: float = 200.0) -> Anomaly:
        """Move an anomaly to the first stretch of steady running at or after its nominal start.

        An anomaly that coincides with a state change would be indistinguishable from the
        change itself (the agent restarts a machine's detectors when its state changes).
        """
        sim = self.machines[anomaly.machine]
        length = anomaly.end_s - anomaly.start_s
        sim.extend(anomaly.start_s + 24 * 3600)
        for i, state in enumerate(sim.states[:-1]):
            begin = max(sim.starts[i] + settled_s, anomaly.start_s)
            if state == RUNNING and begin + length + 30.0 <= sim.starts[i + 1]:
                return Anomaly(anomaly.machine, anomaly.signal, anomaly.kind, begin, begin + length)
        return anomaly

    def _noise_at(self, machine: str, signal: str, t: float) -> float:
        key = (machine, signal)
        table = self._noise_cache.get(key)
        index = int(t * NOISE_HZ)
        if table is None or index >= table.shape[0]:
            size = max(index + 1, 36_000 if table is None else table.shape[0] * 2)
            extra = self._noise.standard_normal(size - (0 if table is None else table.shape[0]))
            table = extra if table is None else np.concatenate([table, extra])
            self._noise_cache[key] = table
        return float(table[max(index, 0)])

    def _active(self, machine: str, signal: str, t: float) -> Anomaly | None:
        for a in self.anomalies:
            if a.machine == machine and a.signal == signal and a.start_s <= t < a.end_s:
                return a
        return None

    def state(self, machine: str, t: float) -> int:
        return self.machines[machine].state_at(t)

    def counts(self, machine: str, t: float) -> tuple[int, int]:
        return self.machines[machine].counts_at(t)

    def spindle_temp(self, machine: str, t: float) -> float:
        a = self._active(machine, "spindle_temp", t)
        if a is not None and a.kind == "stuck":
            t = a.start_s
        value = self.machines[machine].temperature(t) + 0.3 * self._noise_at(machine, "spindle_temp", t)
        if a is not None and a.kind == "drift":
            value += 0.05 * (t - a.start_s)  # 0.05 degC/s: 15 degC over five minutes
        return value

    def vibration(self, machine: str, t: float) -> float:
        """RMS vibration velocity, mm/s."""
        running = self.state(machine, t) == RUNNING
        value = (2.5 if running else 0.4) + (0.15 if running else 0.03) * self._noise_at(machine, "vibration", t)
        a = self._active(machine, "vibration", t)
        if a is not None and a.kind == "spike":
            value += 12.0
        return max(value, 0.0)

    def power_kw(self, machine: str, t: float) -> float:
        return max(POWER_KW[self.state(machine, t)] + 0.2 * self._noise_at(machine, "power", t), 0.0)

    def energy_kwh(self, t: float) -> float:
        """The meter's cumulative energy: every machine's integrated power, kWh."""
        return sum(m.energy_kwh(t) for m in self.machines.values())

    # -- ground truth ------------------------------------------------------------------------
    def truth(self, machine: str, start_s: float, end_s: float, microstop_s: float = 0.0) -> dict[str, float]:
        """Seconds per state, parts and OEE ratios over [start_s, end_s), by the agent's rules.

        Idle and down episodes (consecutive time in one state, taken whole within the range)
        shorter than ``microstop_s`` are micro-stops: part of actual production time.
        """
        sim = self.machines[machine]
        sim.extend(end_s)
        seconds = dict.fromkeys(STATE_CODES.values(), 0.0)
        seconds["microstop"] = 0.0
        # Episodes: runs of one state (the plant may draw the same state twice in a row).
        runs: list[tuple[float, float, int]] = []
        for i, state in enumerate(sim.states[:-1]):
            lo, hi = sim.starts[i], sim.starts[i + 1]
            if runs and runs[-1][2] == state and runs[-1][1] == lo:
                runs[-1] = (runs[-1][0], hi, state)
            else:
                runs.append((lo, hi, state))
        for lo, hi, state in runs:
            inside = min(hi, end_s) - max(lo, start_s)
            if inside <= 0:
                continue
            # The agent sees an episode only within its data: clipped to [start_s, end_s).
            micro = state in (IDLE, DOWN) and inside < microstop_s
            seconds["microstop" if micro else STATE_CODES[state]] += inside
        g0, r0 = sim.counts_at(start_s)
        g1, r1 = sim.counts_at(end_s)
        good, reject = g1 - g0, r1 - r0
        produced = good + reject
        pbt = (end_s - start_s) - seconds["planned_stop"]
        running = seconds["running"] + seconds["microstop"]
        pri = sim.spec.ideal_cycle_s
        return {
            **{f"{k}_s": v for k, v in seconds.items()},
            "produced": produced,
            "good": good,
            "reject": reject,
            "availability": running / pbt if pbt > 0 else math.nan,
            "performance": pri * produced / running if running > 0 else math.nan,
            "quality": good / produced if produced else math.nan,
            "oee": pri * good / pbt if pbt > 0 else math.nan,
        }
