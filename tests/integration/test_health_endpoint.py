"""The agent's HTTP endpoint, on a real agent process: /health is 200 when ok and 503 with the
reasons when degraded, /metrics is Prometheus text, other paths are 404, and
``edge-agent health`` exits 1 when the agent is degraded."""

from __future__ import annotations

import platform
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent import __version__
from edge_agent.cli import main
from tests.conftest import InfluxServer, dead_port
from tests.faults.agent_process import AgentProcess
from tests.faults.counting_server import CountingServer, Unit
from tests.faults.test_faults import DB, agent_config
from tests.influx_server import free_port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - loopback http only
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_is_503_with_reasons_when_a_device_stays_down(
    influxdb: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = CountingServer(free_port(), {1: Unit()})
    server.start()
    try:
        with dead_port() as dead:
            config = agent_config(tmp_path, influxdb.url, server.port, [1], poll="100ms")
            config["devices"].append({**config["devices"][0], "name": "gone", "endpoint": f"modbus://127.0.0.1:{dead}"})
            config["agent"]["health"] = {"device_down_after": "2s", "sink_failing_after": "1m"}
            agent = AgentProcess(tmp_path, config)
            agent.start()
            base = f"http://127.0.0.1:{agent.health_port}"
            try:
                agent.wait_for("the live device polled", lambda h: h["devices"][0]["polls"] > 3)
                health = agent.wait_for("degraded", lambda h: h["status"] == "degraded")
                status, body = get(base + "/health")
                assert status == 503, body
                assert any(r.startswith("device gone unreachable for") for r in health["reasons"]), health["reasons"]
                assert main(["health", "--url", base + "/health"]) == 1
                assert "degraded: device gone unreachable" in capsys.readouterr().err
                assert get(base + "/nonexistent")[0] == 404
                status, text = get(base + "/metrics")
                assert status == 200
                metrics = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                }
                assert metrics[("edge_agent_up", ())] == 0.0
                assert metrics[("edge_agent_device_up", (("device", "u1"),))] == 1.0
                assert metrics[("edge_agent_device_up", (("device", "gone"),))] == 0.0
                assert metrics[("edge_agent_device_polls_total", (("device", "u1"), ("outcome", "ok")))] > 3
                assert metrics[("edge_agent_device_polls_total", (("device", "gone"), ("outcome", "failed")))] >= 1
                assert (
                    metrics[
                        ("edge_agent_build_info", (("python", platform.python_version()), ("version", __version__)))
                    ]
                    == 1
                )
                assert metrics[("edge_agent_process_resident_memory_bytes", ())] > 1e6
                assert metrics[("edge_agent_points_produced_total", ())] > 0
                assert ("edge_agent_buffer_backlog_points", ()) in metrics
            finally:
                agent.terminate()
        # Only the live device: ok, 200, exit 0.
        config = agent_config(tmp_path, influxdb.url, server.port, [1], poll="100ms")
        healthy = AgentProcess(tmp_path, config)
        healthy.start()
        try:
            healthy.wait_for("polling", lambda h: h["devices"][0]["polls"] > 3 and h["status"] == "ok")
            assert get(f"http://127.0.0.1:{healthy.health_port}/health")[0] == 200
            assert main(["health", "--url", f"http://127.0.0.1:{healthy.health_port}/health"]) == 0
        finally:
            healthy.terminate()
    finally:
        server.close()
        influxdb.query(f'DROP DATABASE "{DB}"', DB)
