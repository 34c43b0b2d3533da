"""The poll -> tick hand-over under stress: many producers, a tick running all the while, no batch lost.

Producers are plain threads here (harsher than the agent's single event loop: more interleavings).
Every batch carries a unique sequence number in its values; whatever the tick took, the points it
returned, plus what is left in the pipeline after the producers stop, must hold every number once.
On the code before the Inbox (``raw = Batch.concat(self._incoming); self._incoming = []``) this
lost batches within seconds.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_agent.collectors.batch import QUALITY_BAD_DECODE, QUALITY_UNREACHABLE, Batch
from edge_agent.config import load_config
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.store.local import LocalStore

PRODUCERS = 16
BATCHES_EACH = 1500


def _pipeline(tmp_path: Path) -> Pipeline:
    devices = [
        {
            "name": f"m{i}",
            "line": "l",
            "profile": "demo-energy-meter",
            "endpoint": "modbus://127.0.0.1:1502",
            "unit_id": i + 1,
            "anomaly_signals": [],
        }
        for i in range(PRODUCERS)
    ]
    doc = {"agent": {"id": "a", "site": "s", "workshop": "w"}, "devices": devices}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return Pipeline(load_config(path), LocalStore(tmp_path / "store.sqlite3").series)


def test_no_batch_is_lost_between_two_ticks(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    width = pipeline.layout.device_tables[0].shape[0]
    done = threading.Event()
    seen: list[np.ndarray] = []

    def produce(device: int) -> None:
        for k in range(BATCHES_EACH):
            seq = float(device * BATCHES_EACH + k)
            pipeline.ingest(device, Batch.of(k, np.arange(width, dtype=np.int32), np.full(width, seq)))

    def tick() -> None:
        now = 0
        while not done.is_set():
            now += 1
            seen.append(pipeline.tick(now).value)
        seen.append(pipeline.tick(now + 1, final=True).value)

    ticker = threading.Thread(target=tick)
    ticker.start()
    producers = [threading.Thread(target=produce, args=(d,)) for d in range(PRODUCERS)]
    for p in producers:
        p.start()
    for p in producers:
        p.join()
    done.set()
    ticker.join()
    values = np.concatenate(seen)
    numbers, counts = np.unique(values, return_counts=True)
    assert numbers.shape[0] == PRODUCERS * BATCHES_EACH, "batches were lost in the hand-over"
    assert (counts == width).all(), "a batch arrived in part or twice"


def test_the_tick_maps_every_devices_readings_and_counts_a_bad_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Readings are mapped to series ids by the tick for all devices at once; a reading whose
    index its profile does not have is counted lost and logged, never stored under another
    device's series; what each device delivered is reported per device."""
    doc = {
        "agent": {"id": "edge-1", "site": "s", "workshop": "w", "buffer": {"path": "store.sqlite3"}},
        "devices": [
            {"name": f"press{d}", "line": "l", "profile": "demo-press-modbus", "unit_id": d + 1,
             "endpoint": "modbus://127.0.0.1:1502"}
            for d in range(3)
        ],
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    pipeline = Pipeline(load_config(path), LocalStore(tmp_path / "store.sqlite3").series)
    tables = pipeline.layout.device_tables
    width = tables[0].shape[0]
    pipeline.ingest(2, Batch.of(5, [0, 1], [1.0, float("nan")]))
    pipeline.inbox.put(Batch.of(6, [tables[1][0]], [2.0], [QUALITY_UNREACHABLE]))  # already series ids
    pipeline.ingest(0, Batch.of(7, [width - 1, width, 0], [3.0, 4.0, 5.0], [0, 0, 1]))
    with caplog.at_level(logging.ERROR):
        raw = pipeline.take_readings()
    assert raw.signal.tolist() == [
        tables[2][0],
        tables[2][1],
        tables[1][0],
        tables[0][width - 1],
        tables[0][0],
    ]
    assert raw.value[[0, 3, 4]].tolist() == [1.0, 3.0, 5.0]
    assert raw.quality.tolist() == [0, QUALITY_BAD_DECODE, QUALITY_UNREACHABLE, 0, 1]
    assert pipeline.inbox.take_drops() == {"bad_signal_index": 1}
    assert "press0" in caplog.text and "not stored" in caplog.text
    devices, newest, good = pipeline.received
    # press2: one good reading (a NaN is no value), press0: one good of the two kept; a batch
    # handed over with series ids is not a device's delivery.
    assert devices.tolist() == [0, 2] and newest.tolist() == [7, 5] and good.tolist() == [1, 1]
    assert len(pipeline.take_readings()) == 0 and len(pipeline.received[0]) == 0
