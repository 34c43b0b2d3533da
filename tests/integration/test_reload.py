"""SIGHUP and ``edge-agent reload`` on a real agent process: a device added on the fly, no reply
lost or written twice across the reload (the counting server numbers every reply), and an
invalid configuration refused with its problems while the running agent carries on."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from edge_agent.cli import main
from tests.conftest import InfluxServer
from tests.faults.agent_process import AgentProcess
from tests.faults.counting_server import CountingServer, Unit
from tests.faults.test_faults import DB, agent_config, assert_no_gap
from tests.influx_server import free_port


def test_reload_adds_a_device_without_losing_a_reply_and_refuses_a_broken_config(
    influxdb: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    influxdb.query(f'DROP DATABASE "{DB}"', DB)  # other tests' agents write to the same database name
    server = CountingServer(free_port(), {1: Unit(), 2: Unit()})
    server.start()
    try:
        config = agent_config(tmp_path, influxdb.url, server.port, [1], poll="100ms")
        agent = AgentProcess(tmp_path, config)
        agent.start()
        try:
            agent.wait_for("u1 polling", lambda h: h["devices"][0]["polls"] > 10)
            bigger = agent_config(tmp_path, influxdb.url, server.port, [1, 2], poll="100ms")
            bigger["agent"]["health_listen"] = config["agent"]["health_listen"]
            agent.path.write_text(yaml.safe_dump(bigger, sort_keys=False), encoding="utf-8")
            assert main(["reload", "-c", str(agent.path)]) == 0
            capsys.readouterr()
            agent.wait_for(
                "two devices after the reload",
                lambda h: len(h["devices"]) == 2 and all(d["polls"] > 10 for d in h["devices"]),
            )
            # A broken file: `reload` refuses it itself; a bare SIGHUP is refused by the agent.
            broken = yaml.safe_dump(bigger, sort_keys=False).replace("unit_id: 2", "unit_id: 999")
            agent.path.write_text(broken, encoding="utf-8")
            assert main(["reload", "-c", str(agent.path)]) == 2
            assert "devices[1].unit_id" in capsys.readouterr().err
            assert agent.process is not None
            before = agent.wait_for("health", lambda h: True)["devices"][1]["polls"]
            os.kill(agent.process.pid, signal.SIGHUP)
            agent.wait_for(
                "still polling u2", lambda h: len(h["devices"]) == 2 and h["devices"][1]["polls"] > before + 10
            )
        finally:
            code, _ = agent.terminate()
        assert code == 0
        log = agent.log_text()
        assert "reload refused, the running configuration stays" in log
        assert "devices[1].unit_id" in log
        counts = assert_no_gap(influxdb, ["u1", "u2"])
        assert counts["u1"] > 20
    finally:
        server.close()
        influxdb.query(f'DROP DATABASE "{DB}"', DB)
