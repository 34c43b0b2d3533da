"""From collector batches to stored points: raw values, anomaly scores and OEE windows.

Each device's collector indexes its signals 0..n-1; the layout (:mod:`.layout`) maps them to
series ids. The pipeline hands each tick's readings to the anomaly stage (:mod:`.anomaly_stage`)
and the OEE stage (:mod:`.oee_stage`), each built from its own settings, and returns one columnar
batch per tick for the store. No Python object is made per reading.

Threads: pollers (on the event loop) hand batches over through :class:`Inbox`, whose list is
appended to and swapped whole under one lock; everything else here belongs to the thread that
runs :meth:`Pipeline.tick`.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from numpy.typing import NDArray

from edge_agent.collectors.batch import QUALITY_GOOD, QUALITY_UNREACHABLE, Batch
from edge_agent.config import LoadedConfig
from edge_agent.runtime.anomaly_stage import AnomalyStage
from edge_agent.runtime.checkpoint import fingerprint as checkpoint_fingerprint
from edge_agent.runtime.layout import Layout
from edge_agent.runtime.oee_stage import MachineView, OeeSettings, OeeStage
from edge_agent.runtime.status_page import LatestReadings
from edge_agent.store.series import SeriesRegistry

log = logging.getLogger(__name__)
_NONE_RECEIVED = (np.zeros(0, np.intp), np.zeros(0, np.int64), np.zeros(0, np.int64))


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
        #: Per batch: the device whose collector indexes its signals, or -1 (series ids).
        self._devices: list[int] = []
        self._points = 0
        self.max_points = max_points
        self._dropped: dict[str, int] = {}

    def put(self, batch: Batch, device: int = -1) -> None:
        """Hand over ``batch``: of ``device`` (signals indexed as its collector does), or with
        series ids (``device`` -1)."""
        with self._lock:
            self._batches.append(batch)
            self._devices.append(device)
            self._points += len(batch)
            while self._points > self.max_points and len(self._batches) > 1:
                oldest = self._batches.pop(0)
                del self._devices[0]
                self._points -= len(oldest)
                self._dropped["inbox_full"] = self._dropped.get("inbox_full", 0) + len(oldest)

    def drop(self, reason: str, points: int) -> None:
        """Count points that never reached the inbox (a poller failed handing them over)."""
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + points

    def take(self) -> list[Batch]:
        return self.take_with_devices()[0]

    def take_with_devices(self) -> tuple[list[Batch], list[int]]:
        """Every batch handed over since the last call, and whose each is (see :meth:`put`)."""
        with self._lock:
            batches, self._batches, self._points = self._batches, [], 0
            devices, self._devices = self._devices, []
        return batches, devices

    def take_drops(self) -> dict[str, int]:
        """Points dropped since the last call, by reason."""
        with self._lock:
            dropped, self._dropped = self._dropped, {}
        return dropped


class Pipeline:
    """The analytics of one agent: owned by the thread that calls :meth:`tick`.

    :meth:`ingest` and :meth:`outage` are the methods for other threads (the pollers' event loop).
    """

    def __init__(self, loaded: LoadedConfig, series: SeriesRegistry, inbox_points: int = 2_000_000) -> None:
        analytics = loaded.config.analytics
        self.layout = Layout(loaded, series)
        self.settle_ns = int(analytics.settle * 1_000_000_000)
        self.oee = OeeStage(OeeSettings(analytics.oee_window, analytics.shifts, analytics.settle), self.layout, series)
        self.anomaly = AnomalyStage(analytics.anomaly, self.layout, series)
        self.inbox = Inbox(inbox_points)
        #: What the analytics state depends on (:mod:`edge_agent.runtime.checkpoint`).
        self.fingerprint = checkpoint_fingerprint(loaded, [s.key for s in self.layout.scored])
        #: The raw readings of the latest tick (for the workshop KPIs).
        self.last_raw = Batch.empty()
        #: The latest reading of every raw series (for the status page).
        self.latest = LatestReadings(self.layout.role.shape[0])
        tables = self.layout.device_tables
        #: Every device's collector-index-to-series-id table, end to end, and where each starts.
        self._tables = np.concatenate(tables) if tables else np.zeros(0, np.int32)
        self._table_len = np.array([t.shape[0] for t in tables], np.int64)
        self._table_start = np.concatenate([[0], np.cumsum(self._table_len)[:-1]]).astype(np.int64)
        #: What the latest :meth:`take_readings` took per device: the devices, each one's newest
        #: reading (UTC ns) and its count of good ones.
        self.received: tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64]] = _NONE_RECEIVED

    @property
    def machines(self) -> list[MachineView]:
        """What the terminal view and the health endpoint show of each OEE machine."""
        return self.oee.machines

    # -- input -------------------------------------------------------------------------------
    def ingest(self, device_index: int, batch: Batch) -> None:
        """Take a collector's batch (signal = index in the device's profile); any thread.

        A reading that is NaN or infinite is kept with quality ``bad_decode`` (2): it is not a
        number any analytic or encoder can use.
        """
        if len(batch):
            self.inbox.put(batch, device_index)  # mapped to series ids by the tick, all at once

    def outage(self, device_index: int, ts_ns: int) -> None:
        """The device could not be reached at ``ts_ns`` (any thread): its machine's time is unknown
        from then until its next state reading, and its counters re-baseline. Written as a raw
        point of the state signal with quality ``unreachable`` (value NaN)."""
        state = self.layout.device_state_signal[device_index]
        if state >= 0:
            self.inbox.put(Batch.of(ts_ns, [state], [np.nan], [QUALITY_UNREACHABLE]))

    # -- per tick ----------------------------------------------------------------------------
    def tick(self, now_ns: int, final: bool = False) -> Batch:
        """Everything produced since the last tick: raw points, scores, closed OEE windows."""
        return self.process(self.take_readings(), now_ns, final)

    def take_readings(self) -> Batch:
        """The readings handed over since the last call (the tick's first step), with series ids.

        Each device's readings are mapped from its collector's indexes here, in one pass for all
        devices rather than one per poll; :attr:`received` says what each device delivered. A
        reading whose index its device's profile does not have is counted lost
        (``bad_signal_index``) and logged, never stored under another series.
        """
        batches, devices = self.inbox.take_with_devices()
        self.received = _NONE_RECEIVED
        if not batches:
            return Batch.empty()
        raw = Batch.concat(batches)
        sizes = np.fromiter((len(b) for b in batches), np.intp, len(batches))
        device = np.repeat(np.asarray(devices, np.intp), sizes)
        local = np.flatnonzero(device >= 0)
        if local.shape[0] == 0:
            return raw.flag_not_finite()
        dev, index = device[local], raw.signal[local].astype(np.int64)
        inside = (index >= 0) & (index < self._table_len[dev])
        signal = raw.signal.copy()
        signal[local[inside]] = self._tables[self._table_start[dev[inside]] + index[inside]]
        raw = Batch(raw.ts, signal, raw.value, raw.quality).flag_not_finite()
        if not inside.all():
            lost = local[~inside]
            names = sorted({self.layout.labels[d][0] for d in device[lost].tolist()})
            log.error(
                "%d readings of %s have a signal index their profile does not have: not stored (a collector bug)",
                lost.shape[0],
                ", ".join(names),
            )
            self.inbox.drop("bad_signal_index", int(lost.shape[0]))
            keep = np.ones(len(raw), bool)
            keep[lost] = False
            raw, device = raw.take(keep), device[keep]
            local = np.flatnonzero(device >= 0)
            dev = device[local]
        n_devices = self._table_len.shape[0]
        good = np.bincount(dev, weights=raw.quality[local] == QUALITY_GOOD, minlength=n_devices)
        newest = np.full(n_devices, -1, np.int64)
        np.maximum.at(newest, dev, raw.ts[local])
        got = np.flatnonzero(good > 0)
        self.received = (got, newest[got], good[got].astype(np.int64))
        return raw

    def process(self, raw: Batch, now_ns: int, final: bool = False) -> Batch:
        """``raw`` and what the analytics make of it: scores, alarms, closed OEE windows, states."""
        self.last_raw = raw
        self.latest.update(raw)
        scores = self.anomaly.score_readings(raw, now_ns if final else now_ns - self.settle_ns, hold=not final)
        for view, score in zip(self.oee.machines, self.anomaly.machine_scores(len(self.oee.machines)), strict=True):
            view.anomaly = float(score)
        out = [raw, scores]
        if final:
            out.append(self.anomaly.flush())
        out.append(self.oee.process(raw, now_ns, final))
        return Batch.concat(out)

    def summary(self) -> list[dict[str, float | str]]:
        """Per OEE machine: state and KPIs over every window closed so far."""
        return self.oee.summary()
