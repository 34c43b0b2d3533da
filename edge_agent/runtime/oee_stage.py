"""The pipeline's OEE stage: every machine's windows (fixed and per shift) and mapped states.

Readings of the machines' state and counter signals wait ``settle`` for late ones, then feed one
:class:`~edge_agent.analytics.oee.OeeEngine` per window grid; each window that closes becomes an
``oee`` point per field, and each state reading a ``machine_state`` point (0 running .. 5 unknown,
whatever codes the device uses). After a crash, windows the run before already wrote after its
checkpoint are not written again (``keep_written``, set by :mod:`edge_agent.runtime.checkpoint`).
Everything here belongs to the tick's thread.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.episodes import UNKNOWN as UNKNOWN_STATE
from edge_agent.analytics.oee import NCOL, OeeEngine, WindowRows
from edge_agent.analytics.oee_kpis import kpis
from edge_agent.analytics.windows import NS, FixedWindows, ShiftWindows
from edge_agent.collectors.batch import QUALITY_GOOD, QUALITY_UNREACHABLE, Batch
from edge_agent.config.oee import ShiftSchedule, machine_config, shift_windows, work_schedule
from edge_agent.runtime.layout import ROLE_STATE, Layout
from edge_agent.schema import MACHINE_STATE, OEE, OEE_FIELDS
from edge_agent.store.catalog import Series
from edge_agent.store.series import SeriesRegistry

#: The KPIs the status page shows of a machine's open window.
_CURRENT = ("availability", "performance", "quality", "oee", "produced", "good")


@dataclass
class MachineView:
    """What the terminal view and health endpoint show for one OEE machine."""

    name: str
    line: str
    state: int = -1
    elements: NDArray[np.float64] | None = None
    anomaly: float = 0.0


@dataclass(frozen=True)
class OeeSettings:
    """What the OEE stage takes from ``analytics``: the window (s), the shifts, the settle time (s)."""

    window_s: float
    shifts: ShiftSchedule | None
    settle_s: float

    @property
    def window_tag(self) -> str:
        """The ``window`` tag of the fixed grid: ``1m`` for 60 s, else the seconds (``300s``)."""
        return "1m" if self.window_s == 60 else f"{int(self.window_s)}s"


class OeeStage:
    def __init__(self, settings: OeeSettings, layout: Layout, series: SeriesRegistry) -> None:
        self.layout = layout
        self.settle_ns = int(settings.settle_s * NS)
        machines = layout.machines
        configs = [machine_config(m.oee, m.poll_ns / NS) for m in machines]
        self.machines = [MachineView(m.name, m.line) for m in machines]
        self.grids: dict[str, FixedWindows | ShiftWindows] = {
            settings.window_tag: FixedWindows(int(settings.window_s * NS))
        }
        if settings.shifts is not None:
            self.grids["shift"] = shift_windows(settings.shifts)
        oee_keys = [
            Series.of(OEE, {**m.tags, "window": w}, f) for w in self.grids for m in machines for f in OEE_FIELDS
        ]
        state_keys = [Series.of(MACHINE_STATE, m.tags, "state") for m in machines]
        ids = series.register(oee_keys + state_keys)
        n_m, n_f = len(machines), len(OEE_FIELDS)
        self.oee_ids = {w: ids[g * n_m * n_f : (g + 1) * n_m * n_f].reshape(n_m, n_f) for g, w in enumerate(self.grids)}
        #: Series id of each machine's mapped state, and each machine's code -> state table.
        self.machine_state_ids = ids[len(oee_keys) :]
        self._state_lut = np.array(
            [[c.state_map.get(code, c.default_state) for code in range(256)] for c in configs], np.float64
        ).reshape(n_m, 256)
        self._default_state = [float(c.default_state) for c in configs]
        schedule = work_schedule(settings.shifts)
        self.engines = {w: OeeEngine(configs, g, schedule) for w, g in self.grids.items()}
        #: Time elements of every window closed so far, per machine (the first grid's).
        self.totals = np.zeros((n_m, NCOL))
        self.ideal_cycle_s = np.array([c.ideal_cycle_s for c in configs])
        self._held = Batch.empty()
        #: How far each window grid has been written (end of its latest closed window, UTC ns).
        self.written_until: dict[str, int] = {}
        #: After a crash: windows ending by then were written by the run before (checkpoint.restore).
        self.keep_written: dict[str, int] = {}

    def process(self, raw: Batch, now_ns: int, final: bool) -> Batch:
        """The windows ``raw`` closes and the machine states it shows."""
        return Batch.concat([self._windows(raw, now_ns, final), self._machine_states(raw)])

    def _machine_states(self, raw: Batch) -> Batch:
        """The mapped state of each state reading (``machine_state``): what dashboards show, whatever
        codes the device uses; an unreachable device's machine is ``unknown``."""
        if not len(raw) or not self.machines:
            return Batch.empty()
        layout = self.layout
        pick = np.flatnonzero(
            (layout.role[raw.signal] == ROLE_STATE)
            & ((raw.quality == QUALITY_GOOD) | (raw.quality == QUALITY_UNREACHABLE))
        )
        if not pick.shape[0]:
            return Batch.empty()
        machine = layout.role_machine[raw.signal[pick]]
        code = raw.value[pick]
        known = np.isfinite(code) & (code >= 0) & (code < 256) & (code == np.round(code))
        state = np.full(pick.shape[0], float(UNKNOWN_STATE))
        good = known & (raw.quality[pick] == QUALITY_GOOD)
        state[good] = self._state_lut[machine[good], code[good].astype(np.intp)]
        bad_code = ~known & (raw.quality[pick] == QUALITY_GOOD)
        state[bad_code] = [self._default_state[m] for m in machine[bad_code].tolist()]
        return Batch(raw.ts[pick], self.machine_state_ids[machine], state, np.zeros(pick.shape[0], np.uint8))

    def _windows(self, raw: Batch, now_ns: int, final: bool) -> Batch:
        if not self.engines or not self.machines:
            return Batch.empty()
        layout = self.layout
        role = layout.role[raw.signal] if len(raw) else np.empty(0, np.intp)
        usable = (role >= 0) & (raw.quality == QUALITY_GOOD)
        usable |= (role == ROLE_STATE) & (raw.quality == QUALITY_UNREACHABLE) if len(raw) else usable
        held = Batch.concat([self._held, raw.take(usable)])
        cutoff = now_ns if final else now_ns - self.settle_ns
        ready = held.ts <= cutoff
        use, self._held = held.take(ready), held.take(~ready)
        machine, r = layout.role_machine[use.signal], layout.role[use.signal]
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
            points.append(self._points(w, rows, engine))
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

    def _points(self, window: str, rows: WindowRows, engine: OeeEngine) -> Batch:
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

    def current(self) -> list[dict[str, float | str]]:
        """Per OEE machine: its state and the KPIs of its open window so far (the status page)."""
        engine = next(iter(self.engines.values()), None)
        if engine is None or not self.machines:
            return []
        machine, key, elements = engine.latest_open()
        values = self.kpi_matrix(elements, machine, engine) if machine.shape[0] else np.empty((0, len(OEE_FIELDS)))
        by_machine = {int(m): (int(k), v) for m, k, v in zip(machine.tolist(), key.tolist(), values, strict=True)}
        out: list[dict[str, float | str]] = []
        for i, view in enumerate(self.machines):
            # The state as the agent maps it (0 running .. 5 unknown), whatever codes the device uses.
            mapped = self._state_lut[i, view.state] if 0 <= view.state < 256 else float(UNKNOWN_STATE)
            row: dict[str, float | str] = {"machine": view.name, "line": view.line, "state": int(mapped)}
            if i in by_machine:
                window, v = by_machine[i]
                row["window_start_ns"] = window
                row.update({f: float(v[j]) for j, f in enumerate(OEE_FIELDS) if f in _CURRENT})
            out.append(row)
        return out

    def summary(self) -> list[dict[str, float | str]]:
        """Per OEE machine: state and KPIs over every window closed so far."""
        if not self.machines:
            return []
        engine = next(iter(self.engines.values()))
        values = self.kpi_matrix(self.totals, np.arange(len(self.machines)), engine)
        out: list[dict[str, float | str]] = []
        for i, view in enumerate(self.machines):
            row: dict[str, float | str] = {"machine": view.name, "line": view.line, "state": view.state}
            row["anomaly"] = view.anomaly
            row.update({f: float(values[i, j]) for j, f in enumerate(OEE_FIELDS)})
            out.append(row)
        return out


__all__ = ["MachineView", "OeeSettings", "OeeStage"]
