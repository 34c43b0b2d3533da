"""The durable local store (SQLite, WAL mode): every point is written here first.

Points are kept as columnar chunks (one row per pipeline tick, arrays as blobs), so a million
points cost a few hundred rows, not a million. Each sink has a cursor: the id of the last chunk
it acknowledged. A chunk is deleted once every sink has acknowledged it; with no sink at all the
store keeps everything up to ``max_points``. When full, the oldest chunks are dropped and counted
under the reason ``buffer_full``: nothing leaves silently.

Series (measurement, tags and field of a point) are registered here too, so the integer ids
stored in chunks mean the same thing after a restart; :meth:`Buffer.catalog` hands sinks an
immutable snapshot of them (:mod:`edge_agent.store.catalog`).

A full disk: a write that fails is rolled back whole (the store stays consistent) and raises
:class:`sqlite3.Error` to the caller, which holds its points. The store keeps a reserve file of
``RESERVE_BYTES`` beside it; an acknowledgement that cannot be written frees the reserve and
tries again, so the store keeps draining (and deleting what was sent) while the disk is full.
Drop counts that cannot be written are kept in memory and written with the next write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collectors.batch import Batch
from edge_agent.store.catalog import Series, SeriesCatalog, parse_line_protocol_key

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog (id INTEGER PRIMARY KEY, measurement TEXT NOT NULL, tags TEXT NOT NULL,
                                    field TEXT NOT NULL, UNIQUE (measurement, tags, field));
CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, created_ns INTEGER NOT NULL,
                                   n INTEGER NOT NULL, oldest_ts INTEGER NOT NULL,
                                   ts BLOB NOT NULL, signal BLOB NOT NULL, value BLOB NOT NULL,
                                   quality BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, acked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS drops (reason TEXT PRIMARY KEY, points INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS texts (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
"""


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    batch: Batch
    #: When the chunk was stored (wall clock, UTC ns).
    created_ns: int = 0


@dataclass(frozen=True, slots=True)
class BufferStats:
    pending_points: int
    chunks: int
    oldest_ts: int | None
    dropped: dict[str, int]


#: Bytes set aside beside the store for writes that must succeed on a full disk (acknowledgements).
RESERVE_BYTES = 8 * 1024 * 1024


class Buffer:
    """Store-and-forward buffer; thread-safe (the pipeline appends, sink threads read and ack)."""

    def __init__(self, path: Path, max_points: int = 50_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_points = path, max_points
        self.reserve = path.with_name(path.name + ".reserve")
        #: Drops not written yet (the store could not be written): reason -> points.
        self._unwritten_drops: dict[str, int] = {}
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only an OS crash may lose the last commits.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate_series_keys()
        self._points = int(self._db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])
        self._catalog = self._read_catalog()
        self._make_reserve()

    # -- a full disk -------------------------------------------------------------------------
    def _make_reserve(self) -> None:
        """Set the reserve aside again (best effort: on a full disk it waits for room)."""
        if self.reserve.exists():
            return
        try:
            with self.reserve.open("wb") as fh:
                fh.truncate(0)
                fh.write(b"\0" * RESERVE_BYTES)
        except OSError:
            with contextlib.suppress(OSError):
                self.reserve.unlink()

    def _free_reserve(self) -> bool:
        """Give the reserve's space back to the disk; True if there was one."""
        try:
            self.reserve.unlink()
        except OSError:
            return False
        log.error("local store %s: the disk is full; using the reserved space to record acknowledgements", self.path)
        return True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back whole when anything in it fails."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            drops = self._unwritten_drops
            if drops:
                self._write_drops(drops)
            self._db.execute("COMMIT")
            if drops:
                self._unwritten_drops = {}
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    def _write_drops(self, drops: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO drops (reason, points) VALUES (?, ?)"
            " ON CONFLICT (reason) DO UPDATE SET points = points + excluded.points",
            list(drops.items()),
        )

    def _migrate_series_keys(self) -> None:
        """Stores written before 0.2 keep series as line-protocol keys: move them to the catalog, ids kept."""
        old = self._db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='series'").fetchone()
        if old is None:
            return
        rows = []
        for sid, key, field in self._db.execute("SELECT id, key, field FROM series"):
            measurement, tags = parse_line_protocol_key(key)
            rows.append((sid, measurement, Series.of(measurement, tags, field).tags_json(), field))
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany("INSERT OR IGNORE INTO catalog (id, measurement, tags, field) VALUES (?, ?, ?, ?)", rows)
        self._db.execute("DROP TABLE series")
        self._db.execute("COMMIT")
        log.info("local store %s: %d series moved to the structured catalog", self.path, len(rows))

    def _read_catalog(self) -> SeriesCatalog:
        catalog = self._catalog_after(SeriesCatalog(), -1)
        texts = dict(self._db.execute("SELECT id, text FROM texts"))
        return catalog.with_texts(texts) if texts else catalog

    def _catalog_after(self, known: SeriesCatalog, last_id: int) -> SeriesCatalog:
        """``known`` extended by the catalog rows with id above ``last_id``.

        Series of one device share their tag set: each distinct tag set is parsed once, and its
        strings are shared by every series that has it.
        """
        parsed: dict[str, tuple[tuple[str, str], ...]] = {}
        more: dict[int, Series] = {}
        for sid, measurement, tags, field in self._db.execute(
            "SELECT id, measurement, tags, field FROM catalog WHERE id > ? ORDER BY id", (last_id,)
        ):
            pairs = parsed.get(tags)
            if pairs is None:
                pairs = parsed[tags] = tuple(
                    sorted((sys.intern(k), sys.intern(v)) for k, v in json.loads(tags).items())
                )
            more[int(sid)] = Series(sys.intern(measurement), pairs, sys.intern(field))
        return known.with_entries(more) if more else known

    # -- series ------------------------------------------------------------------------------
    def register(self, series: list[Series]) -> np.ndarray:
        """Ids (int32) of ``series``, creating those not yet known (the catalog snapshot is renewed)."""
        rows = [(s.measurement, s.tags_json(), s.field) for s in series]
        ids: list[int] = []
        with self._lock:
            with self._transaction() as db:
                for row in rows:
                    found = db.execute(
                        "SELECT id FROM catalog WHERE measurement = ? AND tags = ? AND field = ?", row
                    ).fetchone()
                    if found is None:
                        found = db.execute(
                            "INSERT INTO catalog (measurement, tags, field) VALUES (?, ?, ?) RETURNING id", row
                        ).fetchone()
                    ids.append(int(found[0]))
            self._catalog = self._catalog_after(self._catalog, self._catalog.size - 1)
        return np.array(ids, np.int32)

    def intern_text(self, text: str) -> int:
        """The id of ``text`` (a string reading: a serial number, a recipe name), stored once and
        kept across restarts; points of text series carry it as their value. Any thread."""
        with self._lock:
            known = self._catalog.text_ids.get(text)
            if known is not None:
                return known
            box: list[int] = []

            def insert() -> None:
                with self._transaction() as db:
                    row = db.execute("INSERT INTO texts (text) VALUES (?) RETURNING id", (text,)).fetchone()
                    box.append(int(row[0]))

            self._with_room(insert, reserve=True)
            self._catalog = self._catalog.with_texts({box[0]: text})
            return box[0]

    def catalog(self) -> SeriesCatalog:
        """The series known so far (an immutable snapshot: safe to hand to another thread)."""
        with self._lock:
            return self._catalog

    # -- chunks ------------------------------------------------------------------------------
    def append(self, batch: Batch) -> None:
        """Store ``batch`` durably as one chunk (drops the oldest chunks when full).

        Raises :class:`sqlite3.Error` when it cannot be written, with nothing of it stored.
        """
        if len(batch) == 0:
            return
        with self._lock:
            self._with_room(lambda: self._append_locked(batch))
        if not self.reserve.exists():
            self._make_reserve()

    def _append_locked(self, batch: Batch) -> None:
        n = len(batch)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO chunks (created_ns, n, oldest_ts, ts, signal, value, quality)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time_ns(),
                    n,
                    int(batch.ts.min()),
                    batch.ts.astype("<i8").tobytes(),
                    batch.signal.astype("<i4").tobytes(),
                    batch.value.astype("<f8").tobytes(),
                    batch.quality.tobytes(),
                ),
            )
            excess = self._points + n - self.max_points
            dropped = self._drop_oldest_locked(excess) if excess > 0 else 0
        self._points += n - dropped

    def _drop_oldest_locked(self, excess: int) -> int:
        """Delete the oldest chunks holding at least ``excess`` points; the points deleted."""
        dropped = 0
        ids: list[int] = []
        for chunk_id, n in self._db.execute("SELECT id, n FROM chunks ORDER BY id"):
            if dropped >= excess:
                break
            ids.append(chunk_id)
            dropped += n
        self._db.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in ids])
        self._write_drops({"buffer_full": dropped})
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
        with self._lock:
            self._unwritten_drops[reason] = self._unwritten_drops.get(reason, 0) + points
            with contextlib.suppress(sqlite3.Error), self._transaction():
                pass

    def cursor(self, sink: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT acked FROM cursors WHERE sink = ?", (sink,)).fetchone()
            if row is None:
                # A new sink starts at the oldest chunk still stored.
                first = self._db.execute("SELECT COALESCE(MIN(id), 0) - 1 FROM chunks").fetchone()[0]
                seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()
                acked = int(first) if first >= 0 else (int(seq[0]) if seq else 0)
                self._db.execute("INSERT INTO cursors (sink, acked) VALUES (?, ?)", (sink, acked))
                return acked
            return int(row[0])

    def read(self, after: int, max_points: int) -> list[Chunk]:
        """Chunks with id > ``after``, oldest first, up to about ``max_points`` (at least one)."""
        with self._lock:
            # Choose by size first, then read only the blobs that will be used.
            sizes = self._db.execute(
                "SELECT id, n FROM chunks WHERE id > ? ORDER BY id LIMIT 1024", (after,)
            ).fetchall()
            last, total = None, 0
            for chunk_id, n in sizes:
                if last is not None and total + n > max_points:
                    break
                last, total = chunk_id, total + n
            if last is None:
                return []
            rows = self._db.execute(
                "SELECT id, ts, signal, value, quality, created_ns FROM chunks WHERE id > ? AND id <= ? ORDER BY id",
                (after, last),
            ).fetchall()
        return [
            Chunk(
                chunk_id,
                Batch(
                    np.frombuffer(ts, "<i8"),
                    np.frombuffer(sig, "<i4"),
                    np.frombuffer(val, "<f8"),
                    np.frombuffer(q, np.uint8),
                ),
                created,
            )
            for chunk_id, ts, sig, val, q, created in rows
        ]

    def ack(self, sink: str, upto: int) -> None:
        """``sink`` has acknowledged every chunk up to id ``upto``; delete what all sinks have.

        On a full disk room is made (write-ahead log folded in, then the reserve given up) and
        the write tried again; raises if it still fails.
        """
        with self._lock:
            self._with_room(lambda: self._ack_locked(sink, upto), reserve=True)

    def _with_room(self, work: Callable[[], None], reserve: bool = False) -> None:
        """Run a write; when it fails (disk full, file too large), make room once and retry."""
        try:
            work()
        except sqlite3.OperationalError:
            if not (self._fold_log() or (reserve and self._free_reserve())):
                raise
            work()

    def _fold_log(self) -> bool:
        """Fold the write-ahead log into the database and truncate it; True if it held frames.

        The log only grows until a checkpoint; on a full disk it is where room runs out first.
        """
        try:
            busy, frames, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return False
        return not busy and frames > 0

    def _ack_locked(self, sink: str, upto: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE cursors SET acked = MAX(acked, ?) WHERE sink = ?", (upto, sink))
            low = db.execute("SELECT MIN(acked) FROM cursors").fetchone()[0]
            gone = 0
            if low is not None:
                gone = int(db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks WHERE id <= ?", (low,)).fetchone()[0])
                db.execute("DELETE FROM chunks WHERE id <= ?", (low,))
        self._points -= gone

    def forget_sinks_except(self, sinks: list[str]) -> None:
        """Remove cursors of sinks no longer configured, so they do not pin the store."""
        with self._lock:
            marks = ",".join("?" * len(sinks))
            self._db.execute(f"DELETE FROM cursors WHERE sink NOT IN ({marks})", sinks)  # noqa: S608

    def get_state(self, key: str) -> str | None:
        """A small value the agent keeps across restarts (KPI history), or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_state(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def get_blob(self, key: str) -> bytes | None:
        """Bytes the agent keeps across restarts (the analytics checkpoint), or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_blob(self, key: str, value: bytes) -> None:
        with self._lock, self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", (key, value))

    def stats(self, sink: str | None = None) -> BufferStats:
        with self._lock:
            after = -1
            if sink is not None:
                row = self._db.execute("SELECT acked FROM cursors WHERE sink = ?", (sink,)).fetchone()
                after = int(row[0]) if row else -1
            n, chunks, oldest = self._db.execute(
                "SELECT COALESCE(SUM(n), 0), COUNT(*), MIN(oldest_ts) FROM chunks WHERE id > ?",
                (after,),
            ).fetchone()
            dropped = dict(self._db.execute("SELECT reason, points FROM drops"))
            for reason, points in self._unwritten_drops.items():
                dropped[reason] = dropped.get(reason, 0) + points
        return BufferStats(int(n), int(chunks), oldest, dropped)

    def close(self) -> None:
        with self._lock:
            if self._unwritten_drops:
                with contextlib.suppress(sqlite3.Error), self._transaction():
                    pass
            if self._unwritten_drops:
                log.error("local store %s: drop counts not written (disk full): %s", self.path, self._unwritten_drops)
            self._db.close()
