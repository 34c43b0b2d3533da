"""From collector batches to stored points: raw values, anomaly scores and OEE windows.

Each device's collector indexes its signals 0..n-1; the pipeline maps them to series ids
(registered in the local store), routes OEE roles to the OEE engines and analog signals to the
anomaly detector, and returns one columnar batch per tick for the store. No Python object is
made per reading.

Threads: pollers (on the event loop) hand batches over through :class:`Inbox`, whose list is
appended to and swapped whole under one lock; everything else here belongs to the thread that
runs :meth:`Pipeline.tick`.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.episodes import UNKNOWN as UNKNOWN_STATE
from edge_agent.analytics.oee import ENERGY_KIND, NCOL, MachineOeeConfig, OeeEngine, WindowRows
from edge_agent.analytics.oee_kpis import kpis
from edge_agent.analytics.windows import NS, FixedWindows, ShiftWindows
from edge_agent.collectors.batch import QUALITY_GOOD, QUALITY_UNREACHABLE, Batch
from edge_agent.config import Device, LoadedConfig
from edge_agent.config.oee import COUNTER_KIND, machine_config, shift_windows, work_schedule
from edge_agent.runtime.anomaly_stage import AnalogSignal, AnomalyStage
from edge_agent.runtime.checkpoint import fingerprint as checkpoint_fingerprint
from edge_agent.schema import MACHINE_STATE, OEE, OEE_FIELDS, RAW, TEXT_FIELD
from edge_agent.store.catalog import Series
from edge_agent.store.series import SeriesRegistry

#: Role codes per raw series: -1 none, 0 state, 1 + counter kind.
ROLE_STATE = 0


@dataclass
class MachineView:
    """What the terminal view and health endpoint show for one OEE machine."""

    name: str
    line: str
    state: int = -1
    elements: NDArray[np.float64] | None = None
    anomaly: float = 0.0


class Inbox:
    """Batches handed from the pollers to the tick: appended and taken whole under one lock.

    ``put`` and ``take`` may run on different threads; a batch is in the list or in the hands of
    the taker, never in between. The inbox holds at most ``max_points`` points: beyond that the
    oldest batches are dropped and counted under ``inbox_full`` (the tick has stopped taking them:
    it failed and waits for its restart, or the box cannot keep up), never silently.
    """

    def __init__(self, max_points: int = 2_000_000) -> None:
        self._lock = threading.Lock()
        self._batches: list[Batch] = []
        self._points = 0
        self.max_points = max_points
        self._dropped: dict[str, int] = {}

    def put(self, batch: Batch) -> None:
        with self._lock:
            self._batches.append(batch)
            self._points += len(batch)
            while self._points > self.max_points and len(self._batches) > 1:
                oldest = self._batches.pop(0)
                self._points -= len(oldest)
                self._dropped["inbox_full"] = self._dropped.get("inbox_full", 0) + len(oldest)

    def drop(self, reason: str, points: int) -> None:
        """Count points that never reached the inbox (a poller failed handing them over)."""
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + points

    def take(self) -> list[Batch]:
        with self._lock:
            batches, self._batches, self._points = self._batches, [], 0
        return batches

    def take_drops(self) -> dict[str, int]:
        """Points dropped since the last call, by reason."""
        with self._lock:
            dropped, self._dropped = self._dropped, {}
        return dropped


class Pipeline:
    """Holds the analytics state of one agent: owned by the thread that calls :meth:`tick`.

    :meth:`ingest` is the one method for other threads (the pollers' event loop).
    """

    def __init__(self, loaded: LoadedConfig, series: SeriesRegistry, inbox_points: int = 2_000_000) -> None:  # noqa: PLR0915 - one pass over the devices
        cfg = loaded.config
        self.loaded = loaded
        self.settle_ns = int(cfg.analytics.settle * NS)
        base = {"site": cfg.agent.site, "workshop": cfg.agent.workshop, "agent": cfg.agent.id}
        raw_keys: list[Series] = []
        self.device_tables: list[NDArray[np.int32]] = []
        #: Device index of each OEE machine.
        self.machine_device: list[int] = []
        self.devices: list[Device] = cfg.devices
        machine_cfgs: list[MachineOeeConfig] = []
        self.machines: list[MachineView] = []
        machine_tags: list[dict[str, str]] = []
        roles: list[tuple[int, int, int]] = []  # (raw index, machine, role)
        analog: list[tuple[int, int, str, dict[str, str], float | None, float | None]] = []
        for dev in cfg.devices:
            signals = loaded.signals(dev)
            names = [sig.name for sig in signals]
            tags = {
                **dev.tags,
                **base,
                "line": dev.line,
                "machine": dev.machine_name,
                "device": dev.name,
            }
            first = len(raw_keys)
            raw_keys += [
                Series.of(RAW, {**tags, "signal": sig.name}, TEXT_FIELD if sig.kind == "text" else "value")
                for sig in signals
            ]
            machine = -1
            if dev.oee is not None:
                machine = len(machine_cfgs)
                oee = dev.oee
                machine_cfgs.append(machine_config(oee, dev.poll_interval))
                self.machines.append(MachineView(dev.machine_name, dev.line))
                self.machine_device.append(len(self.device_tables))
                machine_tags.append({k: v for k, v in tags.items() if k != "device"})
                roles.append((first + names.index(oee.state.signal), machine, ROLE_STATE))
                roles += [
                    (first + names.index(c.signal), machine, 1 + COUNTER_KIND[k]) for k, c in oee.counters.items()
                ]
                if oee.energy is not None:
                    roles.append((first + names.index(oee.energy.signal), machine, 1 + ENERGY_KIND))
            scored = (
                dev.anomaly_signals
                if dev.anomaly_signals is not None
                else [sig.name for sig in signals if sig.kind == "analog"]
            )
            for n in scored:
                sig = signals[names.index(n)]
                analog.append(
                    (first + names.index(n), machine, f"{dev.name}.{n}", {**tags, "signal": n}, sig.low, sig.high)
                )
            self.device_tables.append(np.arange(first, first + len(names), dtype=np.int32))
        # Series registration: raw, anomaly, then OEE (per machine, per window kind, per field).
        self.grids: dict[str, FixedWindows | ShiftWindows] = {
            "1m" if cfg.analytics.oee_window == 60 else f"{int(cfg.analytics.oee_window)}s": FixedWindows(
                int(cfg.analytics.oee_window * NS)
            ),
        }
        if cfg.analytics.shifts is not None:
            self.grids["shift"] = shift_windows(cfg.analytics.shifts)
        oee_keys = [Series.of(OEE, {**t, "window": w}, f) for w in self.grids for t in machine_tags for f in OEE_FIELDS]
        state_keys = [Series.of(MACHINE_STATE, t, "state") for t in machine_tags]
        ids = series.register(raw_keys + oee_keys + state_keys)
        #: Series id of each machine's mapped state, and each machine's code -> state table.
        self.machine_state_ids = ids[len(ids) - len(state_keys) :] if state_keys else np.empty(0, np.int32)
        self._state_lut = np.array(
            [[c.state_map.get(code, c.default_state) for code in range(256)] for c in machine_cfgs], np.float64
        ).reshape(len(machine_cfgs), 256)
        ids = ids[: len(ids) - len(state_keys)]
        n_raw = len(raw_keys)
        raw_ids = ids[:n_raw]
        self.device_tables = [raw_ids[t] for t in self.device_tables]
        n_m, n_f = len(machine_cfgs), len(OEE_FIELDS)
        self.oee_ids = {
            w: ids[n_raw + g * n_m * n_f : n_raw + (g + 1) * n_m * n_f].reshape(n_m, n_f)
            for g, w in enumerate(self.grids)
        }
        size = int(ids.max()) + 1 if ids.shape[0] else 0
        #: Raw series id of each device's machine state signal (-1: the device has no oee: section).
        self.device_state_signal = np.full(len(cfg.devices), -1, np.int64)
        for raw_index, machine, role in roles:
            if role == ROLE_STATE:
                self.device_state_signal[self.machine_device[machine]] = int(raw_ids[raw_index])
        self.role_machine = np.full(size, -1, np.intp)
        self.role = np.full(size, -1, np.intp)
        for raw_index, machine, role in roles:
            self.role_machine[raw_ids[raw_index]] = machine
            self.role[raw_ids[raw_index]] = role
        self.anomaly = AnomalyStage(
            cfg.analytics.anomaly,
            [AnalogSignal(key, int(raw_ids[i]), m, tags, low, high) for i, m, key, tags, low, high in analog],
            series,
        )
        self._default_state = [float(c.default_state) for c in machine_cfgs]
        self._state_code = np.full(len(machine_cfgs), np.nan)
        self._state_ns = np.full(len(machine_cfgs), np.iinfo(np.int64).min // 2, np.int64)
        #: How far before the reading that shows a new state the change may be dated: two polls.
        self._state_lead_ns = np.array(
            [2 * int(cfg.devices[d].poll_interval * NS) for d in self.machine_device], np.int64
        )
        schedule = work_schedule(cfg.analytics.shifts)
        self.engines = {w: OeeEngine(machine_cfgs, g, schedule) for w, g in self.grids.items()}
        self.totals = np.zeros((n_m, NCOL))
        self.ideal_cycle_s = np.array([c.ideal_cycle_s for c in machine_cfgs])
        self.inbox = Inbox(inbox_points)
        #: What the analytics state depends on (:mod:`edge_agent.runtime.checkpoint`).
        self.fingerprint = checkpoint_fingerprint(loaded, [a[2] for a in analog])
        #: The raw readings of the latest tick (for the workshop KPIs).
        self.last_raw = Batch.empty()
        self._held = Batch.empty()
        self._unscored = Batch.empty()
        #: How far each window grid has been written (end of its latest closed window, UTC ns).
        self.written_until: dict[str, int] = {}
        #: After a crash: windows ending by then were written by the run before (checkpoint.restore).
        self.keep_written: dict[str, int] = {}
        #: How much longer than ``settle`` each raw series' readings wait to be scored (ns): a
        #: machine's analog signals wait for the state readings that may date a change before them.
        with_machine = [(a.raw_id, a.machine) for a in self.anomaly.signals if a.machine >= 0]
        self._score_lead = np.zeros(max((a.raw_id for a in self.anomaly.signals), default=-1) + 1, np.int64)
        if with_machine:
            ids, of = np.array(with_machine, np.intp).T
            self._score_lead[ids] = self._state_lead_ns[of]

    # -- input -------------------------------------------------------------------------------
    def ingest(self, device_index: int, batch: Batch) -> None:
        """Take a collector's batch (signal = index in the device's profile); any thread.

        A reading that is NaN or infinite is kept with quality ``bad_decode`` (2): it is not a
        number any analytic or encoder can use.
        """
        if len(batch):
            self.inbox.put(batch.remap(self.device_tables[device_index]).flag_not_finite())

    def outage(self, device_index: int, ts_ns: int) -> None:
        """The device could not be reached at ``ts_ns`` (any thread): its machine's time is unknown
        from then until its next state reading, and its counters re-baseline. Written as a raw
        point of the state signal with quality ``unreachable`` (value NaN)."""
        state = self.device_state_signal[device_index]
        if state >= 0:
            self.inbox.put(Batch.of(ts_ns, [state], [np.nan], [QUALITY_UNREACHABLE]))

    # -- per tick ----------------------------------------------------------------------------
    def tick(self, now_ns: int, final: bool = False) -> Batch:
        """Everything produced since the last tick: raw points, scores, closed OEE windows."""
        return self.process(self.take_readings(), now_ns, final)

    def take_readings(self) -> Batch:
        """The readings handed over since the last call (the tick's first step)."""
        return Batch.concat(self.inbox.take())

    def process(self, raw: Batch, now_ns: int, final: bool = False) -> Batch:
        """``raw`` and what the analytics make of it: scores, alarms, closed OEE windows, states."""
        self.last_raw = raw
        out = [raw, self._score(raw, now_ns if final else now_ns - self.settle_ns, hold=not final)]
        if final:
            out.append(self.anomaly.flush())
        out.append(self._oee(raw, now_ns, final))
        out.append(self._machine_states(raw))
        return Batch.concat(out)

    def _machine_states(self, raw: Batch) -> Batch:
        """The mapped state of each state reading (``machine_state``): what dashboards show, whatever
        codes the device uses; an unreachable device's machine is ``unknown``."""
        if not len(raw) or not self.machines:
            return Batch.empty()
        pick = np.flatnonzero(
            (self.role[raw.signal] == ROLE_STATE)
            & ((raw.quality == QUALITY_GOOD) | (raw.quality == QUALITY_UNREACHABLE))
        )
        if not pick.shape[0]:
            return Batch.empty()
        machine = self.role_machine[raw.signal[pick]]
        code = raw.value[pick]
        known = np.isfinite(code) & (code >= 0) & (code < 256) & (code == np.round(code))
        state = np.full(pick.shape[0], float(UNKNOWN_STATE))
        good = known & (raw.quality[pick] == QUALITY_GOOD)
        state[good] = self._state_lut[machine[good], code[good].astype(np.intp)]
        bad_code = ~known & (raw.quality[pick] == QUALITY_GOOD)
        state[bad_code] = [self._default_state[m] for m in machine[bad_code].tolist()]
        return Batch(raw.ts[pick], self.machine_state_ids[machine], state, np.zeros(pick.shape[0], np.uint8))

    def _score(self, raw: Batch, cutoff_ns: int, hold: bool = True) -> Batch:
        """Anomaly scores of the readings up to ``cutoff_ns``; a machine whose state changed takes up
        that state's normal.

        Readings wait ``settle`` like the OEE's, and a machine's analog readings wait two of its
        polls longer than its state readings: a state change that shows one poll after its effect
        (power dropping with the machine), or that a subscription reports late, is then in place
        before the samples it explains are scored. At the end (``hold`` False) nothing waits.
        """
        if self.anomaly.column.shape[0] == 0:
            return self.anomaly.score(Batch.empty(), [])
        keep = self.anomaly.wanted(raw) | (self.role[raw.signal] == ROLE_STATE) if len(raw) else np.empty(0, bool)
        pending = Batch.concat([self._unscored, raw.take(keep)]) if len(raw) else self._unscored
        limit = np.full(len(pending), cutoff_ns, np.int64)
        if hold and len(pending):
            inside = pending.signal < self._score_lead.shape[0]
            limit[inside] -= self._score_lead[pending.signal[inside]]
        ready = pending.ts <= limit
        now, self._unscored = pending.take(ready), pending.take(~ready)
        scored = self.anomaly.score(now, self._state_changes(now))
        for m, view in enumerate(self.machines):
            cols = np.flatnonzero(self.anomaly.machine == m)
            if cols.shape[0]:
                view.anomaly = float(np.nanmax(self.anomaly.latest[cols]))
        return scored

    def _state_changes(self, raw: Batch) -> list[tuple[int, int, int]]:
        """``(time ns, machine, state code)`` of every state a machine entered in ``raw``, in time order.

        A change is dated at the last reading that still showed the old state, at most two polls
        before the reading that shows the new one (a poll's readings share its time): the machine
        changed somewhere in between, and when the state is read in another request than the
        other values (a Modbus holding block, then an input block), the poll before may already
        show the new power. Those readings then fall in the new state's first samples, which
        score 0.
        """
        if not len(raw) or not self.machines:
            return []
        state = np.flatnonzero((self.role[raw.signal] == ROLE_STATE) & (raw.quality == QUALITY_GOOD))
        changes: list[tuple[int, int, int]] = []
        for i in state[np.argsort(raw.ts[state], kind="stable")].tolist():
            m, code, ts = int(self.role_machine[raw.signal[i]]), float(raw.value[i]), int(raw.ts[i])
            if code != self._state_code[m] and np.isfinite(code):
                at = max(ts - int(self._state_lead_ns[m]), int(self._state_ns[m]))
                changes.append((at, m, int(code)))
            self._state_code[m], self._state_ns[m] = code, ts
        changes.sort(key=lambda c: c[0])
        return changes

    def _oee(self, raw: Batch, now_ns: int, final: bool) -> Batch:
        if not self.engines or not self.machines:
            return Batch.empty()
        role = self.role[raw.signal] if len(raw) else np.empty(0, np.intp)
        usable = (role >= 0) & (raw.quality == QUALITY_GOOD)
        usable |= (role == ROLE_STATE) & (raw.quality == QUALITY_UNREACHABLE) if len(raw) else usable
        held = Batch.concat([self._held, raw.take(usable)])
        cutoff = now_ns if final else now_ns - self.settle_ns
        ready = held.ts <= cutoff
        use, self._held = held.take(ready), held.take(~ready)
        machine, r = self.role_machine[use.signal], self.role[use.signal]
        state = r == ROLE_STATE
        by_time = np.flatnonzero(state)[np.argsort(use.ts[state], kind="stable")]
        for m, v in zip(machine[by_time].tolist(), use.value[by_time].tolist(), strict=True):
            self.machines[m].state = int(v) if np.isfinite(v) else -1  # -1: unreachable
        points = []
        for w, engine in self.engines.items():
            engine.observe(machine, use.ts)
            engine.add_states(machine[state], use.ts[state], use.value[state])
            counter = ~state
            engine.add_counters(machine[counter], r[counter] - 1, use.ts[counter], use.value[counter])
            if not final:
                # Time runs on while no reading comes (it turns unknown after stale_after). At the
                # end, data ends at the last reading: no counter has seen the time after it.
                engine.advance(cutoff)
                rows = self._not_written_yet(w, engine.close())
            else:
                # At a stop the open windows are written as they stand (flagged partial_window)
                # but stay open in the checkpoint: after a restart they continue, and are written
                # again, whole, under the same time stamp.
                rows = copy.deepcopy(engine).close(final=True)
            if w == next(iter(self.engines)):
                np.add.at(self.totals, rows.machine, rows.elements)
            points.append(self._oee_points(w, rows, engine))
        return Batch.concat(points)

    def _not_written_yet(self, window: str, rows: WindowRows) -> WindowRows:
        """``rows`` less the windows a run before a crash already wrote; notes how far ``window``'s
        grid is written now."""
        if len(rows) == 0:
            return rows
        kept = self.keep_written.get(window)
        if kept is not None:
            rows = rows.take(rows.end > kept)
            if len(rows) and int(rows.end.min()) > kept:
                del self.keep_written[window]
        if len(rows):
            self.written_until[window] = max(self.written_until.get(window, 0), int(rows.end.max()))
        return rows

    def _oee_points(self, window: str, rows: WindowRows, engine: OeeEngine) -> Batch:
        if len(rows) == 0:
            return Batch.empty()
        values = self.kpi_matrix(rows.elements, rows.machine, engine, rows.partial)
        ids = self.oee_ids[window][rows.machine]
        ok = np.isfinite(values)
        ts = np.repeat(rows.key, values.shape[1]).reshape(values.shape)
        return Batch(ts[ok], ids[ok], values[ok], np.zeros(int(ok.sum()), np.uint8))

    def kpi_matrix(
        self,
        elements: NDArray[np.float64],
        machine: NDArray[np.intp],
        engine: OeeEngine,
        partial: NDArray[np.bool_] | None = None,
    ) -> NDArray[np.float64]:
        """``[rows, len(OEE_FIELDS)]`` values (NaN = absent) for element rows of ``machine``."""
        k = kpis(elements, self.ideal_cycle_s[machine], engine.has_counter[machine], partial)
        return np.column_stack([k[f] for f in OEE_FIELDS])

    def summary(self) -> list[dict[str, float | str]]:
        """Per OEE machine: state and KPIs over every window closed so far."""
        if not self.machines:
            return []
        engine = next(iter(self.engines.values()))
        m = np.arange(len(self.machines))
        values = self.kpi_matrix(self.totals, m, engine)
        out: list[dict[str, float | str]] = []
        for i, view in enumerate(self.machines):
            row: dict[str, float | str] = {
                "machine": view.name,
                "line": view.line,
                "state": view.state,
                "anomaly": view.anomaly,
            }
            row.update({f: float(values[i, j]) for j, f in enumerate(OEE_FIELDS)})
            out.append(row)
        return out
