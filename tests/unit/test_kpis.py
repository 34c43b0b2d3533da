"""Workshop KPIs: the agent's KPI stage on a scripted workshop (no network; real store and pipeline)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edge_agent.collectors.batch import Batch
from edge_agent.config import LoadedConfig, load_config
from edge_agent.config.yaml_source import ConfigError
from edge_agent.runtime.kpi_stage import KpiStage
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.store.local import LocalStore
from edge_agent.store.points import Chunk

NS = 1_000_000_000
T0 = int(dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC).timestamp())


def _config(tmp_path: Path, kpis: dict[str, Any]) -> LoadedConfig:
    press_oee = {
        "state": {"signal": "state", "map": {1: "running", 3: "down"}},
        "counters": {"good": {"signal": "good", "modulus": 65536}, "reject": {"signal": "rejects"}},
        "ideal_cycle_time": "2s",
    }
    doc = {
        "agent": {"id": "edge-1", "site": "s", "workshop": "w", "buffer": {"path": "store.sqlite3"}},
        "analytics": {"oee_window": "60s", "settle": "0s"},
        "kpis": kpis,
        "devices": [
            {"name": "press", "line": "l", "profile": "demo-press-modbus", "endpoint": "modbus://127.0.0.1:1502",
             "oee": press_oee},
            {"name": "meter", "line": "l", "profile": "demo-energy-meter", "endpoint": "modbus://127.0.0.1:1502",
             "unit_id": 9},
            {"name": "ghost", "line": "l", "profile": "demo-press-modbus", "endpoint": "modbus://127.0.0.1:1503"},
        ],
    }  # fmt: skip
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_config(path)


class Shop:
    """A press making one part every 2 s (a reject every 20 s), a meter at 36 kW, a silent device."""

    def __init__(self, tmp_path: Path, kpis: dict[str, Any]) -> None:
        self.loaded = _config(tmp_path, kpis)
        self.store = LocalStore(tmp_path / "store.sqlite3")
        self.pipeline = Pipeline(self.loaded, self.store.series)
        self.now = T0 * NS
        store = self.store
        self.stage = KpiStage(self.loaded, store.points, store.series, store.state, self.pipeline, lambda: self.now)
        self.reports: list[dict[str, float]] = []

    def run(self, seconds: range, ack_every_s: int = 0) -> None:
        for s in seconds:
            self.now = (T0 + s) * NS
            press = Batch.of(self.now, list(range(7)), [1, s // 2, s // 20, 60.0, 1.0, 10.0, 1])
            meter = Batch.of(self.now, [0, 1], [0.01 * s, 36.0])
            for device, batch in ((0, press), (1, meter)):
                self.pipeline.ingest(device, batch)
                self.stage.shop.received(device, self.now, len(batch))
            points = self.pipeline.tick(self.now)
            if ack_every_s and s % ack_every_s == 0:
                signals = self.pipeline.layout.device_tables[0].astype(np.int32)
                chunk = Chunk(1, Batch.of(self.now, signals, np.zeros(7)), self.now - NS // 2)
                self.stage.acknowledged([chunk], self.now)
            out = self.stage.tick(self.now, len(points))
            if len(out):
                self.reports.append(dict(self.stage.latest))


def test_interval_counts_and_ratios(tmp_path: Path) -> None:
    shop = Shop(tmp_path, {"every": "60s", "seen_within": "2m", "energy_meters": ["meter.energy"]})
    shop.run(range(0, 361), ack_every_s=10)
    r = shop.reports[2]  # a steady interval
    assert r["devices_in_scope"] == 3 and r["devices_seen"] == 2
    assert r["networking_rate"] == pytest.approx(2 / 3, abs=1e-6)
    # press 7 + meter 2 samples per second received, 7 + 2 + 7 expected (the ghost sends nothing)
    assert r["samples_expected"] == pytest.approx(16 * 60) and r["samples_valid"] == pytest.approx(9 * 60)
    assert r["collection_completeness"] == pytest.approx(9 / 16, abs=1e-6)
    # Only the press's points were acknowledged by the database.
    assert r["devices_on_cloud"] == 1 and r["device_on_cloud_ratio"] == pytest.approx(1 / 3, abs=1e-6)
    assert r["upload_latency_p50_s"] == pytest.approx(0.5) and r["continuous_cloud_days"] == 1
    # One closed OEE minute of production: 30 parts, 3 rejects; 0.6 kWh in the same minute.
    assert r["produced"] == 33 and r["reject"] == 3
    assert r["energy_per_good_kwh"] == pytest.approx(0.6 / 30, rel=1e-6)
    assert r["defect_rate"] == pytest.approx(3 / 33, rel=1e-6)
    assert r["throughput_per_h"] == pytest.approx(33 * 60, rel=1e-6)
    assert "energy_reduction" not in r  # no baseline configured


def test_devices_drop_out_of_the_networking_rate_after_t(tmp_path: Path) -> None:
    shop = Shop(tmp_path, {"every": "60s", "seen_within": "90s"})
    shop.run(range(0, 121))
    shop.now += 200 * NS  # nothing for 200 s: longer than T
    report = shop.stage.report(shop.now - 60 * NS, shop.now)
    assert report["devices_seen"] == 0 and report["networking_rate"] == 0


def test_baseline_window_freezes_and_survives_a_restart(tmp_path: Path) -> None:
    start = dt.datetime.fromtimestamp(T0, dt.UTC)
    kpis = {
        "every": "60s",
        "energy_meters": ["meter.energy"],
        "baseline": {"start": start.isoformat(), "end": (start + dt.timedelta(minutes=3)).isoformat()},
    }
    shop = Shop(tmp_path, kpis)
    shop.run(range(0, 170))
    assert all("baseline_energy_per_good_kwh" not in r for r in shop.reports), "not frozen before its end"
    shop.run(range(170, 400))
    last = shop.reports[-1]
    assert last["baseline_energy_per_good_kwh"] == pytest.approx(0.02, rel=0.05)
    # The same steady process after the baseline: no reduction, no gain.
    assert abs(last["energy_reduction"]) < 0.05 and abs(last["throughput_gain"]) < 0.05
    frozen = last["baseline_energy_per_good_kwh"]
    # A restart on the same store keeps the baseline sums and the days with acknowledged writes.
    shop.stage.acknowledged([], shop.now)
    shop.stage.take_acknowledgements()
    shop.store.close()
    again = Shop(tmp_path, kpis)
    again.now = shop.now
    assert again.stage.baseline()["energy_per_good_kwh"] == pytest.approx(frozen)
    assert dt.datetime.fromtimestamp(shop.now / NS, dt.UTC).date() in again.stage.days


def test_fixed_baseline_values_and_bad_sections(tmp_path: Path) -> None:
    shop = Shop(tmp_path, {"baseline": {"energy_per_good_kwh": 0.025, "defect_rate": 0.1}})
    assert shop.stage.baseline()["energy_per_good_kwh"] == 0.025
    with pytest.raises(ConfigError) as bad:
        _config(tmp_path, {"scope": ["press", "nobody"], "energy_meters": ["meter.volts"], "baseline": {}})
    text = "\n".join(bad.value.problems)
    assert "give a baseline window" in text
    with pytest.raises(ConfigError) as bad:
        _config(tmp_path, {"scope": ["press", "nobody"], "energy_meters": ["meter.volts"]})
    text = "\n".join(bad.value.problems)
    assert "agent.yaml:" in text and "no device 'nobody'" in text and "has no signal 'volts'" in text
