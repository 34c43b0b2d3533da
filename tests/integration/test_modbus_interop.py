"""Interop with a Modbus stack that is not ours: modbus-serial (npm) serving a meter and a
controller behind one gateway (tests/interop/meter.js, values encoded by Node's Buffer).

The map is a real meter's: float32 ABCD voltages, a gap the device refuses (exception 2), a
uint64 and a float64 energy, a string serial number, an enum status, an int64 in CDAB order; a
dead unit behind the gateway answers exception 11."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edge_agent.collectors.batch import QUALITY_GOOD
from edge_agent.collectors.plugin import CollectorContext, DeviceUnreachable
from edge_agent.config import load_config, load_profile
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.clock import ScaledClock
from tests.conftest import free_port
from tests.integration.meter import CONTROLLER, CONTROLLER_PROFILE, METER, METER_PROFILE
from tests.integration.test_modbus_bus import Texts, collector, until

PEER = Path(__file__).parents[1] / "interop"
PEER_METER_PROFILE = (
    METER_PROFILE
    + "  - {name: balance, table: holding, address: 30, type: int64, byte_order: CDAB}\n"
    + "  - {name: power_factor, table: holding, address: 34, type: float32, byte_order: CDAB}\n"
)
PEER_METER = {**METER, "status": "overvoltage", "balance": -9_876_543_210, "power_factor": 0.98}


@pytest.fixture
def peer() -> Iterator[int]:
    node = shutil.which("node")
    if node is None or not (PEER / "node_modules" / "modbus-serial").is_dir():
        pytest.fail("the modbus-serial peer is not installed: run make test (it runs npm ci in tests/interop)")
    port = free_port()
    process = subprocess.Popen([node, str(PEER / "meter.js"), str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"listening {port}"
        with socket.create_connection(("127.0.0.1", port), timeout=30):
            pass
        yield port
    finally:
        process.terminate()
        process.wait(30)


def test_every_type_and_order_reads_exactly_from_modbus_serial(peer: int, tmp_path: Path) -> None:
    (tmp_path / "meter.yaml").write_text(PEER_METER_PROFILE, encoding="utf-8")
    (tmp_path / "controller.yaml").write_text(CONTROLLER_PROFILE, encoding="utf-8")
    meter_profile, controller_profile = (
        load_profile(tmp_path / "meter.yaml"),
        load_profile(tmp_path / "controller.yaml"),
    )

    async def body() -> None:
        texts = Texts()
        context = CollectorContext(now_ns=time.time_ns, intern_text=texts.intern)
        endpoint = f"modbus://127.0.0.1:{peer}"
        meter = collector(meter_profile, endpoint, 2, context)
        press = collector(controller_profile, endpoint, 3, context)
        dead = collector(controller_profile, endpoint, 9, context)
        for c in (meter, press, dead):
            await c.connect()
        for _ in range(2):
            batch = await meter.collect()
            assert (batch.quality == QUALITY_GOOD).all(), meter.last_error
            got = {
                f.name: texts.by_id[int(v)] if f.signal_kind == "text" else v
                for f, v in zip(meter.profile.fields, batch.value.tolist(), strict=True)
            }
            assert got == pytest.approx(PEER_METER)
        assert "holding 0..7 (8 registers)" in meter.health()["reads"]
        assert dict(zip(["state", "good_parts"], (await press.collect()).value.tolist(), strict=True)) == CONTROLLER
        with pytest.raises(DeviceUnreachable, match=r"exception 11 \(gateway target device failed") as info:
            await dead.collect()
        assert info.value.link_ok
        for c in (meter, press, dead):
            await c.close()

    asyncio.run(body())


def test_a_dead_unit_is_down_in_health_and_its_neighbours_keep_polling(peer: int, tmp_path: Path) -> None:
    """The unit the gateway answers with exception 11 is not connected in /health, its failures
    count, and the two live units on the same connection keep polling."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "meter.yaml").write_text(PEER_METER_PROFILE, encoding="utf-8")
    (tmp_path / "profiles" / "controller.yaml").write_text(CONTROLLER_PROFILE, encoding="utf-8")
    endpoint = f"modbus://127.0.0.1:{peer}"
    devices = [
        {"name": n, "line": "l", "profile": p, "endpoint": endpoint, "unit_id": u, "connection": "shared"}
        | {"poll_interval": "100ms"}
        for n, p, u in (
            ("meter", "three-phase-meter", 2),
            ("press", "machine-controller", 3),
            ("dead", "machine-controller", 9),
        )
    ]
    config = {
        "agent": {"id": "t", "site": "s", "workshop": "w", "buffer": {"path": str(tmp_path / "b.sqlite3")}},
        "profile_dirs": ["profiles"],
        "sinks": [],
        "devices": devices,
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    report: dict[str, dict[str, object]] = {}

    async def body() -> None:
        agent = Agent(load_config(tmp_path / "agent.yaml"), ScaledClock(speed=1.0))
        task = asyncio.create_task(agent.run(drain_s=1))
        try:
            await until(lambda: agent.health[2].failures >= 3 and agent.health[0].polls >= 50, "dead unit retried")
            report.update({d["name"]: d for d in agent.health_report()["devices"]})
        finally:
            agent.stop()
            await task

    asyncio.run(body())
    assert report["dead"]["connected"] is False
    assert "exception 11" in str(report["dead"]["last_error"])
    assert report["dead"]["polls"] == 0
    for name in ("meter", "press"):
        assert report[name]["connected"] is True
        assert report[name]["failures"] == 0
