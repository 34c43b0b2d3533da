"""OPC UA data changes, from asyncua's handler calls into columnar batches for the agent.

asyncua calls :meth:`Changes.datachange_notification` once per monitored item per change, on the
event loop. Each change is written into preallocated columns (no Python object is kept per
change); the first change after a hand-over schedules one more hand-over, which runs after every
change of the same publish response, so the agent receives one batch per publish, within the
publishing interval, whatever the poll interval. With no one to hand them to (``deliver`` None)
the changes wait for the next :meth:`drain` (a poll).

The columns hold ``capacity`` changes: when they are full (the agent is not taking them), the
oldest are dropped and counted (``count_drop("subscription_overflow", n)``), never silently; a
value the server flags as following an overflow of its own queue is counted too
(``count_drop("device_queue_overflow", 1)``: the server does not say how many it dropped).
The latest value and quality of every item is kept too, for nodes that are subscribed only.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from edge_agent.collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, QUALITY_GOOD, Batch

#: How many changes are held at least (they are handed over once per publish).
MIN_CAPACITY = 65_536


def to_number(value: Any) -> float:
    """A float for numbers and booleans; NaN for anything else."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return math.nan


#: A value's StatusCode with InfoType "data value" (bits 10-11 = 01) and the Overflow bit (bit 7)
#: set: the server's monitored-item queue overflowed (OPC UA Part 4, 7.39 StatusCode, and 5.12.1.5).
_OVERFLOW_MASK, _OVERFLOW = 0x0C80, 0x0480


class Changes:
    """asyncua subscription handler: the changes of ``n_nodes`` nodes (indexed by ``index_of``)."""

    def __init__(
        self,
        index_of: dict[str, int],
        n_nodes: int,
        now_ns: Callable[[], int],
        deliver: Callable[[Batch], None] | None = None,
        count_drop: Callable[[str, int], None] | None = None,
        capacity: int = MIN_CAPACITY,
    ) -> None:
        self.index_of, self.now_ns = index_of, now_ns
        self.deliver, self.count_drop = deliver, count_drop
        # The first notification reports the value with the time it last *changed*, possibly
        # long before we were watching; we only know it from now on (no counter baseline
        # exists before, and during an outage the value is unknown, not held).
        self.since_ns = now_ns()
        self.ts = np.empty(capacity, np.int64)
        self.index = np.empty(capacity, np.int32)
        self.value = np.empty(capacity, np.float64)
        self.quality = np.empty(capacity, np.uint8)
        self.n = 0
        #: Changes dropped because the columns were full.
        self.dropped = 0
        #: Changes the server flagged as following an overflow of its queue (changes lost there).
        self.server_overflows = 0
        #: The latest value, quality and time of each node (NaN / 255 / 0 before its first change).
        self.last_value = np.full(n_nodes, np.nan)
        self.last_quality = np.full(n_nodes, 255, np.uint8)
        #: Agent time minus the server's clock (s; + the server is behind): the smallest lag of a
        #: notification behind its ServerTimestamp since the last drain, kept until the next one.
        self.skew_s: float | None = None
        self._lag_min = math.inf
        #: Items whose first notification came: that one carries the time the value last changed,
        #: possibly hours ago, so it says nothing about the server's clock.
        self._reported = np.zeros(n_nodes, bool)
        self._handing_over = False

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        index = self.index_of.get(node.nodeid.to_string())
        if index is None:
            return
        dv = data.monitored_item.Value
        stamp = dv.SourceTimestamp or dv.ServerTimestamp
        now = self.now_ns()
        ts = int(stamp.timestamp() * 1e9) if stamp is not None else now
        if not self._reported[index]:
            self._reported[index] = True
        elif dv.ServerTimestamp is not None:
            self._lag_min = min(self._lag_min, (now - dv.ServerTimestamp.timestamp() * 1e9) / 1e9)
        if dv.StatusCode is not None and dv.StatusCode.value & _OVERFLOW_MASK == _OVERFLOW:
            # The server's queue for this item overflowed: it dropped changes before this one (how
            # many it does not say). Counted, so that the loss is not silent.
            self.server_overflows += 1
            if self.count_drop is not None:
                self.count_drop("device_queue_overflow", 1)
        good = dv.StatusCode is None or dv.StatusCode.is_good()
        number = to_number(val)
        quality = QUALITY_BAD_DEVICE if not good else (QUALITY_GOOD if math.isfinite(number) else QUALITY_BAD_DECODE)
        self.add(max(ts, self.since_ns), index, number, quality)

    def add(self, ts: int, index: int, value: float, quality: int) -> None:
        """Keep one change (on the event loop); hand the changes over once this burst is done."""
        if self.n == self.ts.shape[0]:
            self._drop_oldest()
        n = self.n
        self.ts[n], self.index[n], self.value[n], self.quality[n] = ts, index, value, quality
        self.n = n + 1
        self.last_value[index], self.last_quality[index] = value, quality
        if self.deliver is not None and not self._handing_over:
            self._handing_over = True
            asyncio.get_running_loop().call_soon(self.hand_over)

    def _drop_oldest(self) -> None:
        """Make room: the oldest tenth of the held changes goes, counted."""
        gone = max(self.n // 10, 1)
        keep = slice(gone, self.n)
        for column in (self.ts, self.index, self.value, self.quality):
            column[: self.n - gone] = column[keep]
        self.n -= gone
        self.dropped += gone
        if self.count_drop is not None:
            self.count_drop("subscription_overflow", gone)

    def hand_over(self) -> None:
        """Give the held changes to ``deliver`` (scheduled after a burst of notifications)."""
        self._handing_over = False
        batch = self.drain()
        if len(batch) and self.deliver is not None:
            self.deliver(batch)

    def status_change_notification(self, status: Any) -> None:
        # The session or subscription died; the next collect() notices through the read.
        return

    def drain(self) -> Batch:
        """The changes held, oldest first, and the columns emptied."""
        if math.isfinite(self._lag_min):
            self.skew_s, self._lag_min = self._lag_min, math.inf
        n = self.n
        if not n:
            return Batch.empty()
        self.n = 0
        return Batch(self.ts[:n].copy(), self.index[:n].copy(), self.value[:n].copy(), self.quality[:n].copy())


__all__ = ["MIN_CAPACITY", "Changes", "to_number"]
