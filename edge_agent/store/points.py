"""Points and cursors: the store-and-forward part of the local store.

Points are kept as columnar chunks (one row per pipeline tick, arrays as blobs), so a million
points cost a few hundred rows, not a million. Each sink has a cursor: the id of the last chunk
it acknowledged. A chunk is deleted once every sink has acknowledged it; with no sink at all the
store keeps everything up to ``max_points``. When full, the oldest chunks are dropped and counted
under the reason ``buffer_full``: nothing leaves silently. Drop counts that cannot be written (a
full disk) are kept in memory and written with the next write.

A chunk that a sink cannot take (it cannot be encoded, or fails the same way again and again) is
set aside for that sink in the dead-letter table with the error (:meth:`PointStore.set_aside`),
so the points behind it flow; so are points a destination refused when the sink cannot keep them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from edge_agent.collectors.batch import Batch
from edge_agent.store.file import StoreFile

log = logging.getLogger("edge_agent.store")


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    batch: Batch
    #: When the chunk was stored (wall clock, UTC ns).
    created_ns: int = 0


@dataclass(frozen=True, slots=True)
class PointStats:
    pending_points: int
    chunks: int
    oldest_ts: int | None
    dropped: dict[str, int]
    #: Points set aside per sink (dead letter): kept in the store, not sent.
    set_aside: dict[str, int] = field(default_factory=dict)


class PointStore:
    """Chunks of points, the sinks' cursors, drop counts and the dead-letter table (any thread)."""

    def __init__(self, file: StoreFile, max_points: int = 50_000_000) -> None:
        self.file, self.max_points = file, max_points
        #: Drops not written yet (the store could not be written): reason -> points.
        self._unwritten_drops: dict[str, int] = {}
        if file.lost_at_open:
            self._unwritten_drops["store_damaged"] = file.lost_at_open
        self._points = int(file.db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction of the file that also writes the drop counts held in memory."""
        with self.file.transaction() as db:
            yield db
            drops = self._unwritten_drops
            if drops:
                _write_drops(db, drops)
        self._unwritten_drops = {}

    def append(self, batch: Batch, state: dict[str, str] | None = None) -> None:
        """Store ``batch`` durably as one chunk (drops the oldest chunks when full), and the small
        values ``state`` (:class:`~edge_agent.store.state.SmallState`) that depend on it in the
        same transaction.

        Raises :class:`sqlite3.Error` when it cannot be written, with nothing of it stored.
        """
        if len(batch) == 0 and not state:
            return
        try:
            with self.file.lock:
                self.file.with_room(lambda: self._append_locked(batch, state or {}))
        except sqlite3.Error as exc:
            self.file.watch(exc)
            raise
        if not self.file.reserve.exists():
            self.file.make_reserve()

    def _append_locked(self, batch: Batch, state: dict[str, str]) -> None:
        n = len(batch)
        with self._transaction() as db:
            if state:
                db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", list(state.items()))
            if n == 0:
                return
            db.execute(
                "INSERT INTO chunks (created_ns, n, oldest_ts, ts, signal, value, quality)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time_ns(), n, int(batch.ts.min()), *_blobs(batch)),
            )
            excess = self._points + n - self.max_points
            dropped = self._drop_oldest(db, excess) if excess > 0 else 0
        self._points += n - dropped

    def _drop_oldest(self, db: sqlite3.Connection, excess: int) -> int:
        """Delete the oldest chunks holding at least ``excess`` points; the points deleted."""
        dropped = 0
        ids: list[int] = []
        for chunk_id, n in db.execute("SELECT id, n FROM chunks ORDER BY id"):
            if dropped >= excess:
                break
            ids.append(chunk_id)
            dropped += n
        db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in ids])
        _write_drops(db, {"buffer_full": dropped})
        log.error(
            "local store full (%d points): dropped the oldest %d points; raise buffer.max_points "
            "or fix the sink so the backlog drains",
            self.max_points,
            dropped,
        )
        return dropped

    def count_drop(self, reason: str, points: int) -> None:
        """Count points that will never reach a sink (rejected by the database, for example);
        kept in memory until the store can be written when it cannot."""
        with self.file.lock:
            self._unwritten_drops[reason] = self._unwritten_drops.get(reason, 0) + points
            with contextlib.suppress(sqlite3.Error), self._transaction():
                pass

    def cursor(self, sink: str) -> int:
        """``sink``'s cursor (made at the oldest chunk still stored for a new sink)."""
        with self.file.lock:
            db = self.file.db
            row = db.execute("SELECT acked FROM cursors WHERE sink = ?", (sink,)).fetchone()
            if row is not None:
                return int(row[0])
            first = db.execute("SELECT COALESCE(MIN(id), 0) - 1 FROM chunks").fetchone()[0]
            seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()
            acked = int(first) if first >= 0 else (int(seq[0]) if seq else 0)
            db.execute("INSERT INTO cursors (sink, acked) VALUES (?, ?)", (sink, acked))
            return acked

    def read(self, after: int, max_points: int) -> list[Chunk]:
        """Chunks with id > ``after``, oldest first, up to about ``max_points`` (at least one)."""
        try:
            with self.file.lock:
                # Choose by size first, then read only the blobs that will be used.
                db = self.file.db
                sizes = db.execute("SELECT id, n FROM chunks WHERE id > ? ORDER BY id LIMIT 1024", (after,)).fetchall()
                last, total = None, 0
                for chunk_id, n in sizes:
                    if last is not None and total + n > max_points:
                        break
                    last, total = chunk_id, total + n
                if last is None:
                    return []
                rows = db.execute(
                    "SELECT id, ts, signal, value, quality, created_ns FROM chunks"
                    " WHERE id > ? AND id <= ? ORDER BY id",
                    (after, last),
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            self.file.watch(exc)
            raise
        return [Chunk(chunk_id, _batch(ts, sig, val, q), created) for chunk_id, ts, sig, val, q, created in rows]

    def ack(self, sink: str, upto: int) -> None:
        """``sink`` has acknowledged every chunk up to id ``upto``; delete what all sinks have.

        On a full disk room is made (write-ahead log folded in, then the reserve given up) and
        the write tried again; raises if it still fails.
        """
        with self.file.lock:
            self.file.with_room(lambda: self._ack_locked(sink, upto), reserve=True)

    def _ack_locked(self, sink: str, upto: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE cursors SET acked = MAX(acked, ?) WHERE sink = ?", (upto, sink))
            low = db.execute("SELECT MIN(acked) FROM cursors").fetchone()[0]
            gone = 0
            if low is not None:
                gone = int(db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks WHERE id <= ?", (low,)).fetchone()[0])
                db.execute("DELETE FROM chunks WHERE id <= ?", (low,))
        self._points -= gone

    def set_aside(self, sink: str, batch: Batch, error: str, chunk: int | None = None) -> None:
        """Keep ``batch`` in the dead-letter table for ``sink`` with ``error``; when it is a whole
        stored chunk (``chunk``), the sink's cursor moves past it, so the points behind it flow."""
        row = (sink, chunk, time.time_ns(), len(batch), error[:2000], *_blobs(batch))

        def insert() -> None:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO dead_letter (sink, chunk, created_ns, n, error, ts, signal, value, quality)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        with self.file.lock:
            self.file.with_room(insert, reserve=True)
        if chunk is not None:
            self.ack(sink, chunk)

    def forget_sinks_except(self, sinks: list[str]) -> None:
        """Remove cursors of sinks no longer configured, so they do not pin the store."""
        with self.file.lock:
            marks = ",".join("?" * len(sinks))
            self.file.db.execute(f"DELETE FROM cursors WHERE sink NOT IN ({marks})", sinks)  # noqa: S608

    def stats(self, sink: str | None = None) -> PointStats:
        with self.file.lock:
            db = self.file.db
            after = -1
            if sink is not None:
                row = db.execute("SELECT acked FROM cursors WHERE sink = ?", (sink,)).fetchone()
                after = int(row[0]) if row else -1
            n, chunks, oldest = db.execute(
                "SELECT COALESCE(SUM(n), 0), COUNT(*), MIN(oldest_ts) FROM chunks WHERE id > ?", (after,)
            ).fetchone()
            dropped = dict(db.execute("SELECT reason, points FROM drops"))
            for reason, points in self._unwritten_drops.items():
                dropped[reason] = dropped.get(reason, 0) + points
            aside = dict(db.execute("SELECT sink, SUM(n) FROM dead_letter GROUP BY sink"))
        return PointStats(int(n), int(chunks), oldest, dropped, {k: int(v) for k, v in aside.items()})

    def flush_drops(self) -> None:
        """Write the drop counts held in memory (at the end); logged when even that fails."""
        with self.file.lock:
            if self._unwritten_drops:
                with contextlib.suppress(sqlite3.Error), self._transaction():
                    pass
            if self._unwritten_drops:
                log.error(
                    "local store %s: drop counts not written (disk full): %s", self.file.path, self._unwritten_drops
                )


def _write_drops(db: sqlite3.Connection, drops: dict[str, int]) -> None:
    db.executemany(
        "INSERT INTO drops (reason, points) VALUES (?, ?)"
        " ON CONFLICT (reason) DO UPDATE SET points = points + excluded.points",
        list(drops.items()),
    )


def _blobs(batch: Batch) -> tuple[bytes, bytes, bytes, bytes]:
    """A batch's four columns as stored (little-endian)."""
    return (
        batch.ts.astype("<i8").tobytes(),
        batch.signal.astype("<i4").tobytes(),
        batch.value.astype("<f8").tobytes(),
        batch.quality.tobytes(),
    )


def _batch(ts: bytes, sig: bytes, val: bytes, q: bytes) -> Batch:
    return Batch(
        np.frombuffer(ts, "<i8"), np.frombuffer(sig, "<i4"), np.frombuffer(val, "<f8"), np.frombuffer(q, np.uint8)
    )


__all__ = ["Chunk", "PointStats", "PointStore"]
