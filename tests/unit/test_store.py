"""The durable local store: restart survival, per-sink acknowledgement, bounded size, stable series ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_agent.collectors.batch import Batch
from edge_agent.store.catalog import Series
from edge_agent.store.local import LocalStore
from edge_agent.store.points import PointStore


def points(path: Path, max_points: int = 50_000_000) -> PointStore:
    return LocalStore(path, max_points).points


def batch(n: int, start: int = 0) -> Batch:
    return Batch.of(
        np.arange(start, start + n, dtype=np.int64),
        np.zeros(n, np.int32),
        np.arange(n, dtype=float),
    )


def test_points_survive_a_restart_until_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    store = LocalStore(path)
    buf = store.points
    cursor = buf.cursor("sink")
    buf.append(batch(10))
    buf.append(batch(5, 100))
    store.close()
    buf = points(path)
    chunks = buf.read(buf.cursor("sink"), 1_000)
    assert [len(c.batch) for c in chunks] == [10, 5]
    assert chunks[1].batch.ts.tolist() == list(range(100, 105))
    buf.ack("sink", chunks[0].id)
    assert buf.stats().pending_points == 5
    assert cursor == 0


def test_a_chunk_goes_only_when_every_sink_acknowledged_it(tmp_path: Path) -> None:
    buf = points(tmp_path / "b.sqlite3")
    buf.cursor("a")
    buf.cursor("b")
    buf.append(batch(3))
    (chunk,) = buf.read(buf.cursor("a"), 100)
    buf.ack("a", chunk.id)
    assert buf.stats().pending_points == 3
    assert buf.read(buf.cursor("a"), 100) == []
    buf.ack("b", chunk.id)
    assert buf.stats().pending_points == 0


def test_full_store_drops_oldest_and_counts_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buf = points(tmp_path / "b.sqlite3", max_points=10_000)
    for i in range(5):
        buf.append(batch(3_000, i * 3_000))
    stats = buf.stats()
    assert stats.pending_points <= 10_000
    assert stats.dropped == {"buffer_full": 15_000 - stats.pending_points}
    assert "dropped the oldest" in caplog.text
    oldest = buf.read(0, 100_000)[0].batch.ts[0]
    assert oldest == 6_000


def test_series_ids_are_stable_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    a, b, c = (Series.of("raw", {"machine": m}, "value") for m in "abc")
    first = LocalStore(path).series.register([a, b])
    again = LocalStore(path).series.register([c, b])
    assert again[1] == first[1]
    assert again[0] not in first.tolist()
