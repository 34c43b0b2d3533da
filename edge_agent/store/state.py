"""Small state kept across restarts: values for collectors and the KPIs, blobs for the checkpoint."""

from __future__ import annotations

from edge_agent.store.file import StoreFile


class SmallState:
    """Text values and blobs by key (any thread); a collector sees it as its ``KeyValueStore``."""

    def __init__(self, file: StoreFile) -> None:
        self.file = file

    def get_state(self, key: str) -> str | None:
        """A small value kept across restarts (KPI history, a collector's), or None."""
        with self.file.lock:
            row = self.file.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_state(self, key: str, value: str) -> None:
        with self.file.lock:
            self.file.db.execute("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)", (key, value))

    def get_blob(self, key: str) -> bytes | None:
        """Bytes kept across restarts (the analytics checkpoint), or None."""
        with self.file.lock:
            row = self.file.db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_blob(self, key: str, value: bytes) -> None:
        with self.file.lock, self.file.transaction() as db:
            db.execute("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", (key, value))


__all__ = ["SmallState"]
