"""The workshop's smart-workshop and cloud-adoption KPIs, written as ``kpi`` points (docs/kpis.md).

Every ``kpis.every`` (clock time) the stage writes one point per workshop with the interval's
counts (devices, samples, points, production, energy) and ratios, the edge backlog, the run of
continuous cloud days, and the change against the baseline. Counts are summable, so dashboards
roll workshops up into a plant and intervals into any range, dividing afterwards. The days with
a database-acknowledged write and the baseline window's sums are kept in the local store, so
they survive restarts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import queue
from collections.abc import Callable
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.adoption import ShopFloor, change, continuous_days, production_figures
from edge_agent.analytics.oee_kpis import summable
from edge_agent.collectors.batch import QUALITY_GOOD, Batch
from edge_agent.config import LoadedConfig
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.schema import KPI, KPI_FIELDS
from edge_agent.store.catalog import Series
from edge_agent.store.points import Chunk, PointStore
from edge_agent.store.series import SeriesRegistry
from edge_agent.store.state import SmallState

NS = 1_000_000_000
_DAYS_KEY, _BASELINE_KEY = "kpi.cloud_days", "kpi.baseline_sums"
_SUMS = ("produced", "good", "reject", "actual_production_s", "energy_kwh")


class KpiStage:
    """Counts for the KPIs between reports, owned by the tick's thread.

    :meth:`acknowledged` is the one method for other threads (the sinks' senders): it hands the
    acknowledgement over whole through a queue that :meth:`tick` drains.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        points: PointStore,
        series: SeriesRegistry,
        state: SmallState,
        pipeline: Pipeline,
        now_ns: Callable[[], int],
    ) -> None:
        cfg = loaded.config
        k = cfg.kpis
        self.points, self.state, self.pipeline, self.now_ns, self.section = points, state, pipeline, now_ns, k
        names = [d.name for d in cfg.devices]
        scope = set(k.scope) if k.scope is not None else set(names)
        in_scope = np.array([n in scope for n in names], bool)
        expected = np.array([len(loaded.signals(d)) / d.poll_interval for d in cfg.devices], np.float64)
        self.shop = ShopFloor(expected, in_scope, int(k.seen_within * NS))
        self.every_ns = int(k.every * NS)
        zone = k.timezone or (cfg.analytics.shifts.timezone if cfg.analytics.shifts else "UTC")
        self.zone = ZoneInfo(zone)
        size = max((int(t.max()) + 1 for t in pipeline.layout.device_tables if t.shape[0]), default=0)
        self.series_device = np.full(size, -1, np.intp)
        for i, table in enumerate(pipeline.layout.device_tables):
            self.series_device[table] = i
        self.machine_in_scope = np.array([in_scope[d] for d in pipeline.layout.machine_device], bool)
        self.energy_ids = np.array([self._raw_id(loaded, key) for key in k.energy_meters], np.int64)
        self._last_energy = np.full(self.energy_ids.shape[0], np.nan)
        self._meter_ts = np.empty(0, np.int64)
        self._meter_kwh = np.empty(0, np.float64)
        tags = {"site": cfg.agent.site, "workshop": cfg.agent.workshop, "agent": cfg.agent.id}
        self.ids = series.register([Series.of(KPI, tags, f) for f in KPI_FIELDS])
        self._acks: queue.SimpleQueue[tuple[NDArray[np.int32], list[float], int, int]] = queue.SimpleQueue()
        self.days = {dt.date.fromisoformat(d) for d in json.loads(state.get_state(_DAYS_KEY) or "[]")}
        self.baseline_sums: dict[str, float] = json.loads(state.get_state(_BASELINE_KEY) or "{}")
        self._last_totals = pipeline.oee.totals.copy()
        self._interval_start: int | None = None
        #: The latest report (field -> value), for the health endpoint.
        self.latest: dict[str, float] = {}

    def _raw_id(self, loaded: LoadedConfig, key: str) -> int:
        device_name, _, signal = key.partition(".")
        index = next(i for i, d in enumerate(loaded.config.devices) if d.name == device_name)
        names = [sig.name for sig in loaded.signals(loaded.config.devices[index])]
        return int(self.pipeline.layout.device_tables[index][names.index(signal)])

    # -- inputs ------------------------------------------------------------------------------
    def acknowledged(self, chunks: list[Chunk], ack_wall_ns: int, refused: int = 0) -> None:
        """The first sink's database acknowledged ``chunks``, of which it refused ``refused`` points
        (kept aside, not on the cloud); called from its sender thread."""
        signals = np.concatenate([c.batch.signal for c in chunks]) if chunks else np.empty(0, np.int32)
        latencies = [(ack_wall_ns - c.created_ns) / 1e9 for c in chunks if c.created_ns]
        self._acks.put((signals, latencies, self.now_ns(), refused))

    def take_acknowledgements(self) -> None:
        """Book the acknowledgements handed over so far (the tick does; the agent again after the drain)."""
        while True:
            try:
                signals, latencies, now, refused = self._acks.get_nowait()
            except queue.Empty:
                return
            self._acknowledged(signals, latencies, now, refused)

    def _acknowledged(self, signals: NDArray[np.int32], latencies: list[float], now: int, refused: int) -> None:
        known = signals[signals < self.series_device.shape[0]]
        devices = np.unique(self.series_device[known])
        taken = max(int(signals.shape[0]) - refused, 0)
        self.shop.acknowledged(devices[devices >= 0], now, taken, latencies)
        day = dt.datetime.fromtimestamp(now / NS, self.zone).date()
        if day not in self.days:
            self.days.add(day)
            self.state.put_state(_DAYS_KEY, json.dumps(sorted(d.isoformat() for d in self.days)))

    def _meters(self, raw: Batch) -> None:
        """Take the workshop energy meters' increases (a drop is a meter reset: counts on from 0)."""
        for j, sid in enumerate(self.energy_ids.tolist()):
            rows = np.flatnonzero((raw.signal == sid) & (raw.quality == QUALITY_GOOD))
            if rows.shape[0] == 0:
                continue
            rows = rows[np.argsort(raw.ts[rows], kind="stable")]
            values = raw.value[rows]
            steps = np.diff(np.concatenate([[self._last_energy[j]], values]))
            steps = np.where(steps < 0, values, steps)
            self._last_energy[j] = values[-1]
            seen = np.isfinite(steps)
            self._meter_ts = np.concatenate([self._meter_ts, raw.ts[rows][seen]])
            self._meter_kwh = np.concatenate([self._meter_kwh, steps[seen]])

    def _meter_energy(self, horizon: int) -> float:
        """Meter energy (kWh) read before ``horizon``: the same time as the production counted."""
        done = self._meter_ts < horizon
        total = float(self._meter_kwh[done].sum())
        self._meter_ts, self._meter_kwh = self._meter_ts[~done], self._meter_kwh[~done]
        return total

    # -- reports -----------------------------------------------------------------------------
    def tick(self, now: int, produced_points: int, final: bool = False) -> Batch:
        """Take this tick's raw readings; a ``kpi`` point when a reporting interval has ended
        (or, with ``final``, for the part of the interval so far)."""
        self.shop.produced(produced_points)
        self.take_acknowledgements()
        self._meters(self.pipeline.last_raw)
        if self._interval_start is None:
            self._interval_start = now // self.every_ns * self.every_ns
        if now < self._interval_start + self.every_ns and not (final and now > self._interval_start):
            return Batch.empty()
        start = self._interval_start
        self._interval_start = max(start + self.every_ns, now // self.every_ns * self.every_ns)
        report = self.report(start, now)
        values = np.array([report[f] for f in KPI_FIELDS], np.float64)
        ok = np.isfinite(values)
        return Batch(
            np.full(int(ok.sum()), start, np.int64),
            self.ids[ok],
            values[ok],
            np.zeros(int(ok.sum()), np.uint8),
        )

    def _production(self) -> dict[str, float]:
        totals = self.pipeline.oee.totals
        delta, self._last_totals = totals - self._last_totals, totals.copy()
        keep = self.machine_in_scope
        engine = next(iter(self.pipeline.oee.engines.values()), None)
        sums = dict.fromkeys(_SUMS, 0.0)
        if engine is not None and keep.any():
            cols = summable(delta[keep], engine.ideal_cycle_s[keep], engine.has_counter[keep])
            for name in _SUMS:
                sums[name] = float(np.nansum(cols[name]))
        # Production arrives as OEE windows close: count meter energy up to the same time.
        horizon = int(engine.closed_until[keep].min()) if engine is not None and keep.any() else self.now_ns()
        sums["energy_kwh"] += self._meter_energy(horizon)
        return sums

    def report(self, start: int, now: int) -> dict[str, float]:
        """The interval ``[start, now)``: every field of :data:`KPI_FIELDS` (NaN = absent)."""
        self.take_acknowledgements()
        out = self.shop.report(now, (now - start) / NS)
        stats = self.points.stats()
        today = dt.datetime.fromtimestamp(now / NS, self.zone).date()
        out |= {
            "continuous_cloud_days": float(continuous_days(self.days, today)),
            "backlog_points": float(stats.pending_points),
            "backlog_oldest_age_s": max((now - stats.oldest_ts) / NS, 0.0) if stats.oldest_ts else 0.0,
        }
        sums = self._production()
        out |= sums
        current = production_figures(sums)
        out |= current
        self._add_to_baseline(start, now, sums)
        base = self.baseline()
        out |= {f"baseline_{k}": v for k, v in base.items()}
        out["energy_reduction"] = change(current["energy_per_good_kwh"], base["energy_per_good_kwh"], True)
        out["defect_reduction"] = change(current["defect_rate"], base["defect_rate"], True)
        out["throughput_gain"] = change(current["throughput_per_h"], base["throughput_per_h"], False)
        self.latest = {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}
        return out

    # -- baseline ----------------------------------------------------------------------------
    def _window(self) -> tuple[int, int] | None:
        b = self.section.baseline
        if b is None or b.start is None or b.end is None:
            return None
        return int(b.start.timestamp() * NS), int(b.end.timestamp() * NS)

    def _add_to_baseline(self, start: int, end: int, sums: dict[str, float]) -> None:
        window = self._window()
        if window is None or not (window[0] <= start and end <= window[1]):
            return
        for k, v in sums.items():
            self.baseline_sums[k] = self.baseline_sums.get(k, 0.0) + v
        self.state.put_state(_BASELINE_KEY, json.dumps(self.baseline_sums))

    def baseline(self) -> dict[str, float]:
        """Fixed values from the configuration, else the baseline window's, once it has ended."""
        b = self.section.baseline
        window = self._window()
        frozen = window is not None and self.now_ns() >= window[1] and bool(self.baseline_sums)
        measured = production_figures({k: self.baseline_sums.get(k, 0.0) for k in _SUMS}) if frozen else {}
        out = {}
        for name in ("energy_per_good_kwh", "defect_rate", "throughput_per_h"):
            fixed = getattr(b, name) if b is not None else None
            out[name] = float(fixed) if fixed is not None else measured.get(name, float("nan"))
        return out
