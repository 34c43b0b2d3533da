"""The local store: one SQLite file (:mod:`.file`) holding three things, each with its own small
interface: points and the sinks' cursors (:mod:`.points`), the series catalog (:mod:`.series`),
and small state for collectors, KPIs and the checkpoint (:mod:`.state`). Every point is written
here first."""

from __future__ import annotations

from pathlib import Path

from edge_agent.store.file import StoreFile
from edge_agent.store.points import PointStore
from edge_agent.store.series import SeriesRegistry
from edge_agent.store.state import SmallState


class LocalStore:
    def __init__(self, path: Path, max_points: int = 50_000_000, synchronous: str = "normal") -> None:
        self.file = StoreFile(path, synchronous)
        self.path = path
        self.points = PointStore(self.file, max_points)
        self.series = SeriesRegistry(self.file)
        self.state = SmallState(self.file)

    @property
    def damaged(self) -> bool:
        """Damage was met while running: the agent restarts on a fresh file."""
        return self.file.damaged

    def damage_notices(self) -> list[dict[str, object]]:
        return self.file.damage_notices()

    def close(self) -> None:
        self.points.flush_drops()
        self.file.close()


__all__ = ["LocalStore"]
