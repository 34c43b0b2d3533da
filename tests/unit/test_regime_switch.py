"""A machine's state change seen one poll after its other readings already show it.

A device is read in several requests (a Modbus holding block for the state, an input block for
power): the state may be read just before the machine changes, power just after. The poll that
shows the new power still says the old state; only the next poll says the new state. Power's
sample must not then be scored against the old state's normal.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import yaml

from edge_agent.collectors.batch import Batch
from edge_agent.config import load_config
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.store.local import LocalStore

NS = 1_000_000_000
T0 = int(dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC).timestamp())
RUNNING, SETUP = 1, 4
POWER_KW = {RUNNING: 15.0, SETUP: 4.0}


def _pipeline(tmp_path: Path) -> Pipeline:
    doc = {
        "agent": {"id": "edge-1", "site": "s", "workshop": "w", "buffer": {"path": "store.sqlite3"}},
        "analytics": {"oee_window": "60s"},  # the default settle (2 s) outlasts a poll
        "devices": [
            {"name": "press", "line": "l", "profile": "demo-press-modbus", "endpoint": "modbus://127.0.0.1:1502",
             "poll_interval": "1s", "anomaly_signals": ["power"],
             "oee": {"state": {"signal": "state", "map": {1: "running", 4: "setup"}}, "ideal_cycle_time": "2s",
                     "counters": {"good": {"signal": "good", "modulus": 65536}}}},
        ],
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return Pipeline(load_config(path), LocalStore(tmp_path / "store.sqlite3").series)


def test_a_state_change_read_one_poll_late_raises_no_alarm(tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path)
    rng = np.random.default_rng(5)
    # Running, then setup, then running again: both states have a normal of their own (power 15
    # and 4 kW, noise 0.2). Then the machine enters setup between the state read and the power
    # read of one poll: that poll says "running" with setup's power.
    script = [RUNNING] * 900 + [SETUP] * 900 + [RUNNING] * 900
    late = len(script)
    script += [SETUP] * 60
    for s, state in enumerate(script):
        now = (T0 + s) * NS
        shown = RUNNING if s == late else state
        power = POWER_KW[state] + 0.2 * rng.standard_normal()
        pipeline.ingest(0, Batch.of(now, [0, 5], [float(shown), power]))
        pipeline.tick(now)
    assert pipeline.anomaly.events == []
