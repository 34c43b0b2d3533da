"""Moves points from the local store to one sink, acknowledging only what the sink accepted.

Points a destination refuses as bad data (HTTP 400) are found by splitting the batch (by
measurement, then in halves) until the bad points stand alone; the sink keeps those its own way
(``keep_refused``: the InfluxDB sinks append line protocol to their rejected-points file), and
they are counted under ``rejected``. A sink that keeps nothing itself, or cannot (the file cannot
be written), has them kept in the store's dead-letter table instead; they are counted and logged
either way. Refusals are logged at most once a minute (with a count);
a destination that has refused every point for ``agent.health.sink_failing_after`` makes the sink
failing in ``/health``.

A destination that is unavailable (:class:`SinkUnavailable`) is retried with backoff until it
takes the points. Any other failure of a chunk (it cannot be encoded, the sink raises something
unexpected) that repeats ``POISON_AFTER`` times with the same error sets that chunk aside for this
sink (the dead-letter table, counted in ``/health`` and ``/metrics``), and the points behind it flow.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from edge_agent.collectors.batch import Batch
from edge_agent.runtime.logs import Throttled
from edge_agent.sinks.base import RejectedPoints, Sink, SinkUnavailable, abort
from edge_agent.store.catalog import SeriesCatalog
from edge_agent.store.points import Chunk, PointStore

log = logging.getLogger(__name__)

#: A chunk that fails this many times in a row with the same unexpected error is set aside.
POISON_AFTER = 3


class _ChunkFailed(Exception):
    """A write of chunk ``index`` (of one step's chunks) failed with ``error``."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


#: Upper bounds (s) of the latency histogram's buckets (``/metrics``).
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


@dataclass
class SinkHealth:
    name: str
    ok: bool = True
    last_error: str = ""
    written: int = 0
    rejected: int = 0
    last_ack_ns: int = 0
    #: When the sink started failing (wall clock, UTC ns); 0 while it works.
    failing_since_ns: int = 0
    #: Points set aside (dead letter) for this sink since start.
    set_aside: int = 0
    #: Why the destination last refused points (empty if it never did).
    last_refusal: str = ""
    #: Seconds from a point's timestamp to its acknowledgement, recent samples.
    latencies_s: list[float] = field(default_factory=list)
    #: The same since start, as a histogram: acknowledgements at most ``LATENCY_BUCKETS_S[i]``
    #: old (cumulative, the last for any age), their sum (s) and count.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0


class Forwarder:
    def __init__(
        self,
        points: PointStore,
        catalog: Callable[[], SeriesCatalog],
        sink: Sink,
        on_ack: Callable[[list[Chunk], int, int], None] | None = None,
        retry_max_s: float = 5.0,
    ) -> None:
        self.points, self.catalog, self.sink = points, catalog, sink
        self.retry_max_s = retry_max_s
        self.health = SinkHealth(sink.name)
        #: Called (in the sender's thread) with the chunks the database acknowledged and when (ns).
        self.on_ack = on_ack
        self.cursor = points.cursor(sink.name)
        self._sender = ThreadPoolExecutor(max_workers=sink.concurrency, thread_name_prefix=f"send-{sink.name}")
        self._reject_lock = threading.Lock()
        self._refusals = Throttled(log)
        #: Points the destination took and refused in the current step (sender threads add).
        self._took = self._refused = 0
        self._refusal = ""
        #: Since when the destination has refused every point it was sent (wall ns; 0: it has not).
        self.refusing_since_ns = 0
        #: (chunk id, error) of the latest unexpected failure, and how many times in a row.
        self._strike: tuple[int, str] = (-1, "")
        self._strikes = 0

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        self.sink.close()

    def abort(self) -> None:
        """Break off writes in flight (their points stay in the store) and refuse new ones."""
        self._sender.shutdown(wait=False, cancel_futures=True)
        abort(self.sink)

    def step(self, max_points: int = 50_000) -> int:
        """Send the oldest pending chunks; returns points acknowledged (0 when idle).

        Line protocol for the next batches is built while earlier ones are on the wire, with up
        to ``sink.concurrency`` writes in flight (InfluxDB serves each connection one request at
        a time, so one connection leaves the server idle while we format). A chunk is
        acknowledged only after every one of its batches, and of all chunks before it, was written.
        """
        chunks = self.points.read(self.cursor, max_points)
        if not chunks:
            return 0
        catalog = self.catalog()
        size = self.sink.batch_size
        # (write, its chunk's index, whether it is the chunk's last batch)
        in_flight: list[tuple[Future[None], int, bool]] = []
        done = -1  # index of the last chunk whose every batch was written
        with self._reject_lock:
            self._took = self._refused = 0

        def settle(keep: int) -> None:
            nonlocal done
            while len(in_flight) > keep:
                future, index, last = in_flight.pop(0)
                try:
                    future.result()
                except Exception as exc:  # nothing after this is acknowledged
                    raise _ChunkFailed(index, exc) from exc
                if last:
                    done = max(done, index)

        failed: _ChunkFailed | None = None
        try:
            for index, chunk in enumerate(chunks):
                starts = range(0, len(chunk.batch), size)
                for lo in starts:
                    part = chunk.batch.take(slice(lo, lo + size))
                    future = self._sender.submit(self._write, part, catalog)
                    in_flight.append((future, index, lo == starts[-1]))
                    settle(keep=2 * self.sink.concurrency)
            settle(keep=0)
        except _ChunkFailed as exc:
            failed = exc
        finally:
            for future, _, _ in in_flight:
                future.cancel()
            for future, _, _ in in_flight:
                if not future.cancelled():
                    future.exception()  # wait: nothing may still be writing when we return
            # One acknowledgement for everything written, also when a later batch failed.
            if done >= 0:
                self.cursor = chunks[done].id
                self.points.ack(self.sink.name, self.cursor)
                self._latency(max(int(c.batch.ts.max()) for c in chunks[: done + 1] if len(c.batch)))
                if self.on_ack is not None:
                    with self._reject_lock:
                        refused = self._refused  # kept aside, not taken: not on the cloud
                    self.on_ack(chunks[: done + 1], self.health.last_ack_ns, refused)
        sent = sum(len(c.batch) for c in chunks[: done + 1])
        self.health.written += sent
        self._judge_refusals()
        if failed is not None:
            self._failed_chunk(chunks[failed.index], failed.error)
        else:
            self._strike, self._strikes = (-1, ""), 0
        return sent

    def _failed_chunk(self, chunk: Chunk, error: Exception) -> None:
        """A write of ``chunk`` failed: retried later when the sink is unavailable; set aside when
        it fails the same unexpected way ``POISON_AFTER`` times in a row; raised either way until then."""
        if isinstance(error, SinkUnavailable):
            self._strike, self._strikes = (-1, ""), 0
            raise error
        message = f"{error.__class__.__name__}: {error}"
        if self._strike == (chunk.id, message):
            self._strikes += 1
        else:
            self._strike, self._strikes = (chunk.id, message), 1
        if self._strikes < POISON_AFTER:
            raise error
        self.points.set_aside(self.sink.name, chunk.batch, message, chunk=chunk.id)
        self.cursor = max(self.cursor, chunk.id)
        self.health.set_aside += len(chunk.batch)
        self._strike, self._strikes = (-1, ""), 0
        log.error(
            "%s failed %d times on the same %d points (%s): they are set aside in the local store's "
            "dead-letter table, and the points behind them flow",
            self.sink.name,
            POISON_AFTER,
            len(chunk.batch),
            message,
            exc_info=error,
        )

    def _judge_refusals(self) -> None:
        """A destination that took nothing and refused points in this step is refusing everything."""
        with self._reject_lock:
            took, refused, reason = self._took, self._refused, self._refusal
        if refused and not took:
            if not self.refusing_since_ns:
                self.refusing_since_ns = time.time_ns()
            self.health.last_error = f"the destination refuses every point it is sent: {reason}"
        elif took:
            self.refusing_since_ns = 0

    def _latency(self, newest_ts: int) -> None:
        now = time.time_ns()
        self.health.last_ack_ns = now
        age = (now - newest_ts) / 1e9
        self.health.latencies_s.append(age)
        del self.health.latencies_s[:-1000]
        counts = self.health.latency_counts
        for i, bound in enumerate(LATENCY_BUCKETS_S):
            if age <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.health.latency_sum_s += age

    def _write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        try:
            self.sink.write(batch, catalog)
        except RejectedPoints as exc:
            if exc.refused is not None and 0 < exc.refused.shape[0] < len(batch):
                with self._reject_lock:
                    self._took += len(batch) - exc.refused.shape[0]
                self._reject(batch.take(exc.refused), catalog, str(exc))
                return
            if len(batch) == 1 or exc.dropped == len(batch):
                self._reject(batch, catalog, str(exc))
                return
            if exc.dropped is not None:
                with self._reject_lock:
                    self._took += len(batch) - exc.dropped
            for part in _split(batch, catalog):
                self._write(part, catalog)
            return
        with self._reject_lock:
            self._took += len(batch)

    def _reject(self, batch: Batch, catalog: SeriesCatalog, reason: str) -> None:
        """Keep points the destination refused: in the rejected-points file, else in the store."""
        n = len(batch)
        keep = getattr(self.sink, "keep_refused", None)
        try:
            if keep is None:
                raise ValueError("the sink keeps no refused points itself")
            where = str(keep(batch, catalog, reason))
        except (OSError, ValueError) as exc:
            self.points.set_aside(self.sink.name, batch, f"refused: {reason}; not kept by the sink: {exc}")
            where = f"the local store's dead-letter table ({exc})"
            with self._reject_lock:
                self.health.set_aside += n
        self.points.count_drop("rejected", n)
        with self._reject_lock:
            self.health.rejected += n
            self.health.last_refusal = reason
            self._refused += n
            self._refusal = reason
        self._refusals.event(
            logging.ERROR,
            "%s refused %d point(s) (bad data or not allowed; not retried); kept in %s: %s",
            self.sink.name,
            n,
            where,
            reason,
        )

    async def run(self, stop: asyncio.Event, idle_s: float = 0.2) -> None:
        """Forward until ``stop`` is set, then drain what is left (bounded by the caller); while
        the sink is unavailable, retry after 0.5 s doubling up to ``retry_max_s``."""
        backoff, max_backoff_s = 0.5, self.retry_max_s
        while True:
            try:
                sent = await asyncio.to_thread(self.step)
            except Exception as exc:  # a sink must never stop forwarding for good
                expected = isinstance(exc, SinkUnavailable)
                message = str(exc) if expected else f"unexpected {exc.__class__.__name__}: {exc}"
                if self.health.ok or self.health.last_error != message:
                    log.warning(
                        "%s unavailable, keeping points in the local store and retrying: %s",
                        self.sink.name,
                        message,
                        exc_info=not expected,
                    )
                if self.health.ok:
                    self.health.failing_since_ns = time.time_ns()
                self.health.ok, self.health.last_error = False, message
                if stop.is_set():
                    return
                await _wait(stop, backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, max_backoff_s)
                continue
            if self.refusing_since_ns:
                # It answers, but takes nothing: failing once that lasts (agent.health).
                self.health.ok = False
                self.health.failing_since_ns = self.health.failing_since_ns or self.refusing_since_ns
            else:
                if not self.health.ok:
                    log.warning("%s is back; forwarding the backlog", self.sink.name)
                self.health.ok, self.health.last_error, self.health.failing_since_ns = True, "", 0
            backoff = 0.5
            if sent == 0:
                if stop.is_set():
                    return
                await _wait(stop, idle_s)


def _split(batch: Batch, catalog: SeriesCatalog) -> list[Batch]:
    """By measurement when the batch holds several (a bad field type is per measurement), else halves."""
    names = np.array([catalog[int(s)].measurement for s in np.unique(batch.signal).tolist()], dtype=object)
    if np.unique(names).shape[0] > 1:
        by_id = {int(s): m for s, m in zip(np.unique(batch.signal).tolist(), names.tolist(), strict=True)}
        measurement = np.array([by_id[int(s)] for s in batch.signal.tolist()], dtype=object)
        return [batch.take(np.flatnonzero(measurement == m)) for m in np.unique(names).tolist()]
    half = len(batch) // 2
    return [batch.take(slice(0, half)), batch.take(slice(half, None))]


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return
