"""The file the local store lives in (SQLite, WAL mode): opened, checked, set aside when damaged.

Every part of the store (points, series, small state) shares this one connection and its lock;
a write is a transaction that commits whole or not at all.

A damaged file (not a database, truncated, a bad page: ``PRAGMA quick_check``) never stops the
agent: at opening, the file and its write-ahead log are renamed beside it with the time
(``NAME.damaged-YYYYmmddTHHMMSSZ``), a new store is made, and :meth:`StoreFile.damage_notices`
reports it (with the points the damaged file still says it held) until the operator deletes or
moves the kept file. Damage met while running marks the file (``damaged``); the agent then
restarts on it, which sets it aside the same way.

A full disk: a write that fails is rolled back whole and raises :class:`sqlite3.Error` to the
caller, which holds its points. A reserve file of ``RESERVE_BYTES`` is kept beside the store; a
write that must succeed (an acknowledgement) folds the write-ahead log in, then gives the reserve
up and tries again, so the store keeps draining while the disk is full.

Durability: ``synchronous`` is SQLite's setting. ``normal`` (the default) in WAL mode loses nothing
when the process dies; a power cut or an OS crash may lose the last transactions (about a second
of points) but never corrupts the store. ``full`` makes every transaction durable at the cost of a
disk flush per write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("edge_agent.store")

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
#: Bytes set aside beside the store for writes that must succeed on a full disk (acknowledgements).
RESERVE_BYTES = 8 * 1024 * 1024


class StoreDamaged(sqlite3.DatabaseError):
    """The store file is damaged; the agent sets it aside at its next start."""


class _CheckFailed(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found a problem in the file."""


def is_damage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database file is damaged (not merely busy or full)."""
    if isinstance(exc, StoreDamaged | _CheckFailed):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _DAMAGE_CODES:
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text)


class StoreFile:
    """One SQLite file, one connection, one lock (thread-safe through the lock)."""

    def __init__(self, path: Path, synchronous: str = "normal") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.reserve = path.with_name(path.name + ".reserve")
        self.lock = threading.Lock()
        #: Set when damage is seen while running: the agent restarts on a fresh file.
        self.damaged = False
        #: Points a damaged file set aside at opening still said it held (None: it could not say).
        self.lost_at_open: int | None = None
        self._synchronous = synchronous.upper()
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            if not is_damage(exc):
                raise
            self.db = self._replace_damaged(exc)
        self.make_reserve()

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
        self.lost_at_open = lost = _readable_points(kept)
        db = self._open()
        notice = {"file": str(kept), "at_ns": time.time_ns(), "error": str(exc), "lost_points": lost}
        notices = [*_damage_notices(db), notice]
        db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (DAMAGE_KEY, json.dumps(notices)))
        log.error(
            "local store %s was damaged (%s): kept as %s, a new store started; %s points it held are lost. "
            "Inspect the kept file, then delete or move it to clear this from /health",
            self.path,
            exc,
            kept,
            "its" if lost is None else f"{lost:,}",
        )
        return db

    def damage_notices(self) -> list[dict[str, object]]:
        """Damaged files set aside whose kept file is still there (the operator has not cleared them)."""
        with self.lock:
            notices = _damage_notices(self.db)
        return [n for n in notices if Path(str(n["file"])).exists()]

    def watch(self, exc: BaseException) -> None:
        """Note damage seen while running (the agent restarts on a fresh file)."""
        if is_damage(exc) and not self.damaged:
            self.damaged = True
            log.error("local store %s is damaged (%s): the agent restarts on a fresh file", self.path, exc)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back whole when anything in it fails (hold the lock)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise

    # -- a full disk -------------------------------------------------------------------------
    def make_reserve(self) -> None:
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

    def with_room(self, work: Callable[[], None], reserve: bool = False) -> None:
        """Run a write (hold the lock); when it fails (disk full, file too large), make room once and retry."""
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
            busy, frames, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error:
            return False
        return not busy and frames > 0

    def close(self) -> None:
        with self.lock:
            self.db.close()


def _damage_notices(db: sqlite3.Connection) -> list[dict[str, object]]:
    row = db.execute("SELECT value FROM state WHERE key = ?", (DAMAGE_KEY,)).fetchone()
    return list(json.loads(row[0])) if row else []


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


__all__ = ["RESERVE_BYTES", "StoreDamaged", "StoreFile", "is_damage"]
