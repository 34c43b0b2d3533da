"""Smart-workshop and cloud-adoption KPIs of one workshop (docs/kpis.md has every formula).

Per device (vectorised): when a valid reading was last received and when the database last
acknowledged a point of the device; per reporting interval: valid samples received against
samples expected, points produced and acknowledged, upload latencies. :meth:`ShopFloor.report`
returns one interval's counts (summable across intervals, workshops and plants) and ratios::

    networking rate          = devices seen within T / devices in scope
    collection completeness  = valid samples received / samples expected (per device at most 1)
    device-on-cloud ratio    = devices with a database-acknowledged point within T / devices in scope
    cloud completeness       = points acknowledged by the database / points produced at the edge

>>> import numpy as np
>>> shop = ShopFloor(expected_per_s=np.array([2.0, 1.0, 1.0]), in_scope=np.array([True, True, False]),
...                  seen_within_ns=3600 * NS)
>>> shop.received(0, 10 * NS, 120)   # device 0: 120 valid samples, last one at 10 s
>>> shop.acknowledged(np.array([0]), 11 * NS, points=120, latencies_s=[0.4, 0.6])
>>> r = shop.report(now_ns=60 * NS, every_s=60.0)
>>> r["devices_seen"], r["networking_rate"], r["collection_completeness"], r["device_on_cloud_ratio"]
(1.0, 0.5, 0.666667, 0.5)
"""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
from numpy.typing import NDArray

NS = 1_000_000_000


def _ratio(num: float, den: float, digits: int | None = 6) -> float:
    """``num / den`` (rounded to ``digits`` unless None), NaN when ``den`` is not positive."""
    if den <= 0:
        return float("nan")
    return num / den if digits is None else round(num / den, digits)


class ShopFloor:
    """Counters for the shop-floor and cloud KPIs; thread-safe (pollers, the tick thread and sink threads)."""

    def __init__(self, expected_per_s: NDArray[np.float64], in_scope: NDArray[np.bool_], seen_within_ns: int) -> None:
        n = expected_per_s.shape[0]
        self.expected_per_s, self.in_scope, self.seen_within_ns = expected_per_s, in_scope, seen_within_ns
        self.last_seen = np.full(n, -1, np.int64)
        self.last_acked = np.full(n, -1, np.int64)
        self._valid = np.zeros(n, np.float64)
        self._acked_points = 0
        self._produced_points = 0
        self._latencies: list[float] = []
        self._lock = threading.Lock()

    def received(self, device: int, newest_ts: int, valid: int) -> None:
        """A device delivered ``valid`` good-quality samples, the newest at ``newest_ts`` (ns)."""
        if valid > 0:
            self.received_many(
                np.array([device], np.intp), np.array([newest_ts], np.int64), np.array([valid], np.int64)
            )

    def received_many(self, devices: NDArray[np.intp], newest_ts: NDArray[np.int64], valid: NDArray[np.int64]) -> None:
        """Several distinct ``devices`` delivered ``valid`` good-quality samples each, the newest
        at ``newest_ts`` (ns)."""
        if devices.shape[0]:
            with self._lock:
                self._valid[devices] += valid
                self.last_seen[devices] = np.maximum(self.last_seen[devices], newest_ts)

    def produced(self, points: int) -> None:
        """Points the edge produced (handed to the local store)."""
        with self._lock:
            self._produced_points += points

    def acknowledged(self, devices: NDArray[np.intp], ack_ns: int, points: int, latencies_s: list[float]) -> None:
        """The database acknowledged ``points`` points, some of ``devices``, at ``ack_ns``."""
        with self._lock:
            self.last_acked[devices] = ack_ns
            self._acked_points += points
            self._latencies += latencies_s

    def report(self, now_ns: int, every_s: float) -> dict[str, float]:
        """One interval's counts and ratios (NaN when a denominator is 0); interval counters restart."""
        with self._lock:
            latencies, self._latencies = self._latencies, []
            acked, self._acked_points = self._acked_points, 0
            received, self._valid = self._valid, np.zeros_like(self._valid)
            produced, self._produced_points = self._produced_points, 0
        scope = self.in_scope
        expected = self.expected_per_s * every_s
        valid = np.minimum(received, expected)
        since = now_ns - self.seen_within_ns
        in_scope = float(scope.sum())
        seen = float((scope & (self.last_seen >= 0) & (self.last_seen >= since)).sum())
        on_cloud = float((scope & (self.last_acked >= 0) & (self.last_acked >= since)).sum())
        p50, p95 = np.percentile(latencies, [50, 95]).tolist() if latencies else (float("nan"), float("nan"))
        return {
            "devices_in_scope": in_scope,
            "devices_seen": seen,
            "networking_rate": _ratio(seen, in_scope),
            "samples_expected": round(float(expected[scope].sum()), 6),
            "samples_valid": round(float(valid[scope].sum()), 6),
            "collection_completeness": _ratio(float(valid[scope].sum()), float(expected[scope].sum())),
            "devices_on_cloud": on_cloud,
            "device_on_cloud_ratio": _ratio(on_cloud, in_scope),
            "points_produced": float(produced),
            "points_acked": float(acked),
            "cloud_completeness": _ratio(float(acked), float(produced)),
            "upload_latency_p50_s": p50,
            "upload_latency_p95_s": p95,
        }


def production_figures(sums: dict[str, float]) -> dict[str, float]:
    """Energy per good unit (kWh; absent without energy), defect rate (0..1) and throughput
    (units per hour of actual production time) from summed kWh, GQ, reject, PQ and APT (s).

    >>> production_figures({"energy_kwh": 6.0, "good": 300.0, "reject": 6.0, "produced": 306.0,
    ...                     "actual_production_s": 3600.0})["energy_per_good_kwh"]
    0.02
    """
    return {
        "energy_per_good_kwh": _ratio(sums["energy_kwh"], sums["good"], None)
        if sums["energy_kwh"] > 0
        else float("nan"),
        "defect_rate": _ratio(sums["reject"], sums["produced"], None),
        "throughput_per_h": _ratio(sums["produced"] * 3600.0, sums["actual_production_s"], None),
    }


def continuous_days(days: set[dt.date], today: dt.date) -> int:
    """Consecutive days with a database-acknowledged write, ending today (or yesterday, when
    today has none yet: the run is not broken before a whole day has passed without one).

    >>> d = dt.date(2026, 3, 10)
    >>> continuous_days({d, d - dt.timedelta(1), d - dt.timedelta(2), d - dt.timedelta(4)}, d)
    3
    >>> continuous_days({d - dt.timedelta(1)}, d), continuous_days({d - dt.timedelta(2)}, d)
    (1, 0)
    """
    day = today if today in days else today - dt.timedelta(days=1)
    count = 0
    while day in days:
        count += 1
        day -= dt.timedelta(days=1)
    return count


def change(current: float, baseline: float, lower_is_better: bool) -> float:
    """Reduction (``1 - current / baseline``) or gain (``current / baseline - 1``); NaN without both.

    >>> change(0.8, 1.0, lower_is_better=True), change(130.0, 100.0, lower_is_better=False)
    (0.2, 0.3)
    """
    if not (np.isfinite(current) and np.isfinite(baseline)) or baseline <= 0:
        return float("nan")
    ratio = current / baseline
    return round(1.0 - ratio if lower_is_better else ratio - 1.0, 6)
