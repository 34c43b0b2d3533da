"""Readings polled every second, ticks four times a second: scored in dense blocks, as a replay.

The scorer's block is time-major: each row is a step of the row clock for every signal, and a
signal without a reading in a row has a gap there. Scored at every tick, signals polled once a
second had three gaps per reading, so the live agent's chunks, hold times and learning rates
ran on quarter seconds, not on samples as in a replay, and each block cost four times what its
readings needed. The anomaly stage therefore gathers due readings until there are two per scored
signal or the oldest has waited ``score_wait``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import yaml

from edge_agent.analytics.anomaly import AnomalyScorer
from edge_agent.collectors.batch import Batch
from edge_agent.config import load_config
from edge_agent.runtime.anomaly_stage import written
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.store.local import LocalStore

NS = 1_000_000_000
T0 = int(dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC).timestamp()) * NS
DEVICES = 8
SECONDS = 900
TICK_NS = NS // 4
SETTLE_NS = 2 * NS  # the default analytics.settle
POWER = 5  # the power reading's place in the demo press profile
SHIFTED = 2  # press2's power rises by 15 sd from 400 s to 700 s


def _pipeline(tmp_path: Path, wait: str) -> Pipeline:
    doc = {
        "agent": {"id": "edge-1", "site": "s", "workshop": "w", "buffer": {"path": "store.sqlite3"}},
        "analytics": {"anomaly": {"score_wait": wait, "score_interval": 0}},
        "devices": [
            {"name": f"press{d}", "line": "l", "profile": "demo-press-modbus", "poll_interval": "1s",
             "endpoint": "modbus://127.0.0.1:1502", "unit_id": d + 1, "anomaly_signals": ["power"]}
            for d in range(DEVICES)
        ],
    }  # fmt: skip
    path = tmp_path / wait / "agent.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return Pipeline(load_config(path), LocalStore(path.parent / "store.sqlite3").series)


def _readings() -> tuple[np.ndarray, np.ndarray]:
    """``[second, device]`` values and times: device d is polled at d/8 s past each second."""
    rng = np.random.default_rng(3)
    k = np.arange(SECONDS)[:, None]
    ts = T0 + k * NS + np.arange(DEVICES)[None, :] * (NS // DEVICES)
    values = 15.0 + 0.2 * rng.standard_normal((SECONDS, DEVICES))
    values[400:700, SHIFTED] += 3.0
    return values, ts


def _live(pipeline: Pipeline) -> tuple[np.ndarray, list[int], int]:
    """Scores ``[second, device]`` as the pipeline writes them, each score's delay from its
    reading to the tick that made it (ns), and how many blocks the scorer was given."""
    calls = 0
    update = pipeline.anomaly.scorer.update

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return update(*args, **kwargs)

    pipeline.anomaly.scorer.update = counting  # type: ignore[method-assign]
    values, ts = _readings()
    device_of = {int(sid): d for d, sid in enumerate(pipeline.anomaly.score_ids.tolist())}
    scores = np.full(values.shape, np.nan)
    delays: list[int] = []

    def collect(out: Batch, now: int) -> None:
        for t, sid, value in zip(out.ts.tolist(), out.signal.tolist(), out.value.tolist(), strict=True):
            if sid in device_of:
                scores[(t - T0) // NS, device_of[sid]] = value
                delays.append(now - t)

    # A reading polled during a tick is handed in before the next one.
    arrives = (ts - T0) // TICK_NS + 1
    last = int(arrives.max())
    for tick in range(last + 1):
        now = T0 + tick * TICK_NS
        for k, d in zip(*np.nonzero(arrives == tick), strict=True):
            pipeline.ingest(int(d), Batch.of(int(ts[k, d]), [POWER], [float(values[k, d])]))
        collect(pipeline.tick(now), now)
    collect(pipeline.tick(T0 + (last + 1) * TICK_NS, final=True), T0 + (last + 1) * TICK_NS)
    return scores, delays, calls


def test_gathered_readings_are_scored_as_a_replay_scores_them(tmp_path: Path) -> None:
    gathered = _pipeline(tmp_path, "2s")
    scores, delays, calls = _live(gathered)
    assert not np.isnan(scores).any(), "every reading is scored once"
    # Eight signals read once a second: sixteen readings every two seconds, one block for them.
    assert calls <= SECONDS // 2 + 2
    # No reading waits longer than settle + score_wait (+ the tick it waits for).
    assert max(delays) <= SETTLE_NS + 2 * NS + TICK_NS
    # The same readings replayed, one row per second.
    values, ts = _readings()
    replay = AnomalyScorer(
        DEVICES,
        gathered.anomaly.scorer.settings,
        np.full(DEVICES, np.nan),
        np.full(DEVICES, np.nan),
        machines=np.zeros(DEVICES, np.intp),
    )
    replayed, _, events = replay.update(values, ts)
    # The live blocks mix seconds (a reading waits for others), so scores differ a little.
    assert float(np.abs(scores - written(replayed)).mean()) < 0.01
    ended = [(e.signal, e.start_ns, e.end_ns) for e in events if e.end_ns is not None]
    live = [(e.signal, e.start_ns, e.end_ns) for e in gathered.anomaly.events if e.end_ns is not None]
    assert [s for s, _, _ in live] == [s for s, _, _ in ended] == [SHIFTED]
    (_, start, end), (_, replay_start, replay_end) = live[0], ended[0]
    assert abs(start - replay_start) <= 2 * NS and abs(end - replay_end) <= 2 * NS
    assert T0 + 400 * NS <= start <= T0 + 402 * NS and end >= T0 + 700 * NS, "the alarm lasts the shift"


def test_scoring_at_every_tick_stays_available(tmp_path: Path) -> None:
    """``score_wait: 0`` scores what is due at every tick (blocks with gaps, as before)."""
    every_tick = _pipeline(tmp_path, "0s")
    scores, delays, calls = _live(every_tick)
    assert not np.isnan(scores).any()
    assert calls >= 3 * SECONDS
    assert max(delays) <= SETTLE_NS + TICK_NS
