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

A damaged file (not a database, truncated, a bad page) never stops the agent: at opening, the
file and its write-ahead log are renamed beside it with the time (``NAME.damaged-YYYYmmddTHHMMSSZ``),
a new store is made, the points the damaged file held (where it can still be read) are counted as
dropped under ``store_damaged``, and :meth:`Buffer.damage_notices` reports it until the operator
deletes or moves the kept file. Damage found while running marks the store (``damaged``); the
agent then restarts on it, which sets the file aside the same way.

A chunk that a sink cannot take (it cannot be encoded, or fails the same way again and again) is
set aside for that sink in the dead-letter table with the error (:meth:`Buffer.set_aside`), so the
points behind it flow; so are points a database refused when they cannot be written to the
rejected-points file.

Durability: ``synchronous`` is SQLite's setting. ``normal`` (the default) in WAL mode loses nothing
when the process dies; a power cut or an OS crash may lose the last transactions (about a second
of points) but never corrupts the store. ``full`` makes every transaction durable at the cost of a
disk flush per tick.
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_agent.collectors.batch import Batch
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
CREATE TABLE IF NOT EXISTS dead_letter (id INTEGER PRIMARY KEY AUTOINCREMENT, sink TEXT NOT NULL, chunk INTEGER,
                                        created_ns INTEGER NOT NULL, n INTEGER NOT NULL, error TEXT NOT NULL,
                                        ts BLOB NOT NULL, signal BLOB NOT NULL, value BLOB NOT NULL,
                                        quality BLOB NOT NULL);
"""

#: SQLite result codes (primary) that mean the file is damaged: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES = frozenset({11, 26})
#: Where the notices of damaged files set aside are kept (JSON list).
DAMAGE_KEY = "store-damaged"


class StoreDamaged(sqlite3.DatabaseError):
    """The store file is damaged; the agent sets it aside at its next start."""


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database file is damaged (not merely busy or full)."""
    if isinstance(exc, StoreDamaged):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _DAMAGE_CODES:
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text)


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
    #: Points set aside per sink (dead letter): kept in the store, not sent.
    set_aside: dict[str, int] = field(default_factory=dict)


#: Bytes set aside beside the store for writes that must succeed on a full disk (acknowledgements).
RESERVE_BYTES = 8 * 1024 * 1024


class Buffer:
    """Store-and-forward buffer; thread-safe (the pipeline appends, sink threads read and ack)."""

    def __init__(self, path: Path, max_points: int = 50_000_000, synchronous: str = "normal") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.max_points = path, max_points
        self.reserve = path.with_name(path.name + ".reserve")
        #: Drops not written yet (the store could not be written): reason -> points.
        self._unwritten_drops: dict[str, int] = {}
        self._lock = threading.Lock()
        #: Set when damage is seen while running: the agent restarts on a fresh file.
        self.damaged = False
        self._synchronous = synchronous.upper()
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc) and not isinstance(exc, _CheckFailed):
                raise
            self._db = self._replace_damaged(exc)
        self._points = int(self._db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])
        self._catalog = self._read_catalog()
        self._make_reserve()

    def _open(self) -> sqlite3.Connection:
        """Connect, check the file (``quick_check``), set WAL and the schema."""
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                raise _CheckFailed(f"integrity check failed: {problem}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.executescript(_SCHEMA)
            self._migrate_series_keys(db)
        except BaseException:
            db.close()
            raise
        return db

    def _replace_damaged(self, exc: BaseException) -> sqlite3.Connection:
        """Rename the damaged file (and its log) beside it, count what it held, start a new one."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                source.rename(kept.with_name(kept.name + suffix))
        lost = _readable_points(kept)
        db = self._open()
        notice = {"file": str(kept), "at_ns": time.time_ns(), "error": str(exc), "lost_points": lost}
        notices = [*self._damage_notices(db), notice]
        db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (DAMAGE_KEY, json.dumps(notices)))
        if lost:
            self._unwritten_drops["store_damaged"] = lost
        log.error(
            "local store %s was damaged (%s): kept as %s, a new store started; %s points it held are lost. "
            "Inspect the kept file, then delete or move it to clear this from /health",
            self.path,
            exc,
            kept,
            "its" if lost is None else f"{lost:,}",
        )
        return db

    @staticmethod
    def _damage_notices(db: sqlite3.Connection) -> list[dict[str, object]]:
        row = db.execute("SELECT value FROM state WHERE key = ?", (DAMAGE_KEY,)).fetchone()
        return list(json.loads(row[0])) if row else []

    def damage_notices(self) -> list[dict[str, object]]:
        """Damaged files set aside whose kept file is still there (the operator has not cleared them)."""
        with self._lock:
            notices = self._damage_notices(self._db)
        return [n for n in notices if Path(str(n["file"])).exists()]

    def _watch(self, exc: BaseException) -> None:
        """Note damage seen while running (the agent restarts on a fresh file)."""
        if is_damage(exc) and not self.damaged:
            self.damaged = True
            log.error("local store %s is damaged (%s): the agent restarts on a fresh file", self.path, exc)

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

    def _migrate_series_keys(self, db: sqlite3.Connection) -> None:
        """Stores written before 0.2 keep series as line-protocol keys: move them to the catalog, ids kept."""
        old = db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='series'").fetchone()
        if old is None:
            return
        rows = []
        for sid, key, name in db.execute("SELECT id, key, field FROM series"):
            measurement, tags = parse_line_protocol_key(key)
            rows.append((sid, measurement, Series.of(measurement, tags, name).tags_json(), name))
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR IGNORE INTO catalog (id, measurement, tags, field) VALUES (?, ?, ?, ?)", rows)
        db.execute("DROP TABLE series")
        db.execute("COMMIT")
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
        for sid, measurement, tags, name in self._db.execute(
            "SELECT id, measurement, tags, field FROM catalog WHERE id > ? ORDER BY id", (last_id,)
        ):
            pairs = parsed.get(tags)
            if pairs is None:
                pairs = parsed[tags] = tuple(
                    sorted((sys.intern(k), sys.intern(v)) for k, v in json.loads(tags).items())
                )
            more[int(sid)] = Series(sys.intern(measurement), pairs, sys.intern(name))
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
    def append(self, batch: Batch, state: dict[str, str] | None = None) -> None:
        """Store ``batch`` durably as one chunk (drops the oldest chunks when full), and the small
        values ``state`` (see :meth:`put_state`) in the same transaction.

        Raises :class:`sqlite3.Error` when it cannot be written, with nothing of it stored.
        """
        if len(batch) == 0 and not state:
            return
        try:
            with self._lock:
                self._with_room(lambda: self._append_locked(batch, state or {}))
        except sqlite3.Error as exc:
            self._watch(exc)
            raise
        if not self.reserve.exists():
            self._make_reserve()

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
        try:
            return self._read(after, max_points)
        except sqlite3.DatabaseError as exc:
            self._watch(exc)
            raise

    def _read(self, after: int, max_points: int) -> list[Chunk]:
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

    def set_aside(self, sink: str, batch: Batch, error: str, chunk: int | None = None) -> None:
        """Keep ``batch`` in the dead-letter table for ``sink`` with ``error``; when it is a whole
        stored chunk (``chunk``), the sink's cursor moves past it, so the points behind it flow."""
        row = (
            sink,
            chunk,
            time.time_ns(),
            len(batch),
            error[:2000],
            batch.ts.astype("<i8").tobytes(),
            batch.signal.astype("<i4").tobytes(),
            batch.value.astype("<f8").tobytes(),
            batch.quality.tobytes(),
        )

        def insert() -> None:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO dead_letter (sink, chunk, created_ns, n, error, ts, signal, value, quality)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )

        with self._lock:
            self._with_room(insert, reserve=True)
        if chunk is not None:
            self.ack(sink, chunk)

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
            aside = dict(self._db.execute("SELECT sink, SUM(n) FROM dead_letter GROUP BY sink"))
        return BufferStats(int(n), int(chunks), oldest, dropped, {k: int(v) for k, v in aside.items()})

    def close(self) -> None:
        with self._lock:
            if self._unwritten_drops:
                with contextlib.suppress(sqlite3.Error), self._transaction():
                    pass
            if self._unwritten_drops:
                log.error("local store %s: drop counts not written (disk full): %s", self.path, self._unwritten_drops)
            self._db.close()


class _CheckFailed(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found a problem in the file."""


def _readable_points(path: Path) -> int | None:
    """Points a damaged store still shows it held (None: it cannot say)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return int(db.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])
    except sqlite3.Error:
        return None
    finally:
        db.close()
