"""Moves points from the local store to one sink, acknowledging only what the sink accepted.

Points a destination refuses as bad data (HTTP 400) are found by splitting the batch (by
measurement, then in halves) until the bad points stand alone; those go to the rejected-points
file (as line protocol, whatever the sink, with the destination's reason) and are counted under
``rejected``. Everything else is retried with backoff until it is written.
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
from pathlib import Path

import numpy as np

from collectors.batch import Batch
from edge_agent.sinks.base import RejectedPoints, Sink, SinkUnavailable, abort
from edge_agent.sinks.line_protocol import LineProtocol
from edge_agent.store.buffer import Buffer, Chunk
from edge_agent.store.catalog import SeriesCatalog

log = logging.getLogger(__name__)


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
    #: Seconds from a point's timestamp to its acknowledgement, recent samples.
    latencies_s: list[float] = field(default_factory=list)


class Forwarder:
    def __init__(
        self,
        buffer: Buffer,
        sink: Sink,
        rejected_file: Path,
        on_ack: Callable[[list[Chunk], int], None] | None = None,
        retry_max_s: float = 5.0,
    ) -> None:
        self.buffer, self.sink, self.rejected_file = buffer, sink, rejected_file
        self.retry_max_s = retry_max_s
        self._text: LineProtocol | None = None
        self.health = SinkHealth(sink.name)
        #: Called (in the sender's thread) with the chunks the database acknowledged and when (ns).
        self.on_ack = on_ack
        self.cursor = buffer.cursor(sink.name)
        self._sender = ThreadPoolExecutor(max_workers=sink.concurrency, thread_name_prefix=f"send-{sink.name}")
        self._reject_lock = threading.Lock()

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
        chunks = self.buffer.read(self.cursor, max_points)
        if not chunks:
            return 0
        catalog = self.buffer.catalog()
        size = self.sink.batch_size
        in_flight: list[tuple[Future[None], int]] = []  # (write, chunk index it completes or -1)
        done = -1  # index of the last chunk whose every batch was written

        def settle(keep: int) -> None:
            nonlocal done
            while len(in_flight) > keep:
                future, completes = in_flight.pop(0)
                future.result()  # raises SinkUnavailable: nothing after this is acknowledged
                done = max(done, completes)

        try:
            for index, chunk in enumerate(chunks):
                starts = range(0, len(chunk.batch), size)
                for lo in starts:
                    part = chunk.batch.take(slice(lo, lo + size))
                    last = lo == starts[-1]
                    in_flight.append((self._sender.submit(self._write, part, catalog), index if last else -1))
                    settle(keep=2 * self.sink.concurrency)
            settle(keep=0)
        finally:
            for future, _ in in_flight:
                future.cancel()
            for future, _ in in_flight:
                if not future.cancelled():
                    future.exception()  # wait: nothing may still be writing when we return
            # One acknowledgement for everything written, also when a later batch failed.
            if done >= 0:
                self.cursor = chunks[done].id
                self.buffer.ack(self.sink.name, self.cursor)
                self._latency(max(int(c.batch.ts.max()) for c in chunks[: done + 1] if len(c.batch)))
                if self.on_ack is not None:
                    self.on_ack(chunks[: done + 1], self.health.last_ack_ns)
        sent = sum(len(c.batch) for c in chunks[: done + 1])
        self.health.written += sent
        return sent

    def _latency(self, newest_ts: int) -> None:
        now = time.time_ns()
        self.health.last_ack_ns = now
        self.health.latencies_s.append((now - newest_ts) / 1e9)
        del self.health.latencies_s[:-1000]

    def _write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        try:
            self.sink.write(batch, catalog)
        except RejectedPoints as exc:
            if len(batch) == 1 or exc.dropped == len(batch):
                self._reject(batch, catalog, str(exc))
                return
            for part in _split(batch, catalog):
                self._write(part, catalog)

    def _reject(self, batch: Batch, catalog: SeriesCatalog, reason: str) -> None:
        text = self._text = LineProtocol(catalog) if self._text is None else self._text.follow(catalog)
        lines = text.lines(batch)
        self.rejected_file.parent.mkdir(parents=True, exist_ok=True)
        with self._reject_lock, self.rejected_file.open("a", encoding="utf-8") as fh:
            fh.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {reason}\n")
            fh.write("\n".join(lines) + "\n")
        self.buffer.count_drop("rejected", len(lines))
        self.health.rejected += len(lines)
        log.error(
            "%s refused %d point(s) as bad data; kept in %s: %s",
            self.sink.name,
            len(lines),
            self.rejected_file,
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
            if not self.health.ok:
                log.warning("%s is back; forwarding the backlog", self.sink.name)
            self.health.ok, self.health.last_error, backoff = True, "", 0.5
            self.health.failing_since_ns = 0
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
