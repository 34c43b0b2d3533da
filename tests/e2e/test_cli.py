"""The command line as a user meets it: real processes, real servers, real InfluxDB."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from edge_agent import __version__
from tests.conftest import InfluxServer, free_port

REPO = Path(__file__).parents[2]


def cli(*args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=kw.pop("cwd", REPO),
        check=False,
        **kw,
    )  # type: ignore[call-overload]


def test_version_and_usage_errors() -> None:
    assert cli("--version").stdout.strip() == f"edge-agent {__version__}"
    bad = cli("frobnicate")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_shipped_configs_check_ok() -> None:
    for path in ("examples/agent.yaml", "docker/agent.yaml"):
        result = cli("config", "check", path)
        assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


def test_demo_stops_by_itself_and_prints_a_summary(tmp_path: Path) -> None:
    env = {**os.environ, "INFLUX_URL": ""}
    result = cli("demo", "--duration", "10", "--speed", "30", "--workdir", str(tmp_path), timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for machine in ("A1", "A2", "A3", "B1", "B2", "B3"):
        assert machine in result.stdout
    assert "true OEE" in result.stdout
    assert "sinks: none (embedded store only)" in result.stdout
    assert "summary:" in result.stdout
    assert (tmp_path / "demo-agent.yaml").exists()
    # Not a terminal: a progress line every few seconds, with the time left.
    assert re.search(r"plant time \d+ s, \d+ s left: \d+ polls, OEE", result.stdout), result.stdout[:2000]


def test_demo_labels_in_chinese(tmp_path: Path) -> None:
    env = {**os.environ, "INFLUX_URL": ""}
    result = cli("demo", "--duration", "3", "--lang", "zh", "--workdir", str(tmp_path), timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "时间开动率" in result.stdout and "合格品" in result.stdout


def test_demo_streams_to_the_influxdb_named_in_the_environment(influxdb: InfluxServer, tmp_path: Path) -> None:
    env = {**os.environ, "INFLUX_URL": influxdb.url, "INFLUX_API": "v1", "INFLUX_DB": "demo_env"}
    result = cli("demo", "--duration", "8", "--speed", "30", "--workdir", str(tmp_path), timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "influxdb_v1:" in result.stdout
    measurements = {
        s["values"][i][0] for s in influxdb.query("SHOW MEASUREMENTS", "demo_env") for i in range(len(s["values"]))
    }
    assert measurements == {"agent", "anomaly", "kpi", "machine_state", "oee", "raw"}
    # Plant time ends at about now: the data lands in Grafana's default range (the last 6 hours).
    first_ns = influxdb.query('SELECT first("value") FROM "raw"', "demo_env")[0]["values"][0][0]
    last_ns = influxdb.query('SELECT last("value") FROM "raw"', "demo_env")[0]["values"][0][0]
    now = time.time_ns()
    assert now - 6 * 3600 * 10**9 < first_ns and last_ns < now + 60 * 10**9, (first_ns, last_ns, now)


def test_demo_refuses_an_unknown_influx_api(tmp_path: Path) -> None:
    env = {**os.environ, "INFLUX_URL": "http://127.0.0.1:9", "INFLUX_API": "v3"}
    result = cli("demo", "--duration", "1", "--workdir", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "INFLUX_API='v3': use v1" in result.stderr


def test_run_streams_to_influxdb_and_exits_0_on_sigterm(influxdb: InfluxServer, tmp_path: Path) -> None:
    opcua, modbus, health = free_port(), free_port(), free_port()
    plant = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "plant",
            "--opcua-port",
            str(opcua),
            "--modbus-port",
            str(modbus),
            "--speed",
            "10",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        config = yaml.safe_load((REPO / "examples" / "agent.yaml").read_text(encoding="utf-8"))
        config["agent"]["health_listen"] = f"127.0.0.1:{health}"
        config["agent"]["buffer"]["path"] = str(tmp_path / "buffer.sqlite3")
        config["sinks"] = [{"type": "influxdb_v1", "url": influxdb.url, "database": "cli"}]
        for device in config["devices"]:
            device["endpoint"] = device["endpoint"].replace(":4840", f":{opcua}").replace(":5020", f":{modbus}")
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        report = None
        while time.monotonic() < deadline:
            probe = cli("health", "--url", f"http://127.0.0.1:{health}/health", timeout=30)
            if probe.returncode == 0:
                report = json.loads(probe.stdout)
                if all(d["polls"] > 3 for d in report["devices"]):
                    break
            time.sleep(0.5)
        assert report is not None and all(d["connected"] for d in report["devices"]), report
        agent.send_signal(signal.SIGTERM)
        out, _ = agent.communicate(timeout=60)
        assert agent.returncode == 0, out[-3000:]
        series = influxdb.query('SELECT count("value") FROM "raw" GROUP BY "device"', "cli")
        assert {s["tags"]["device"] for s in series} == {"press-1", "cnc-1", "energy-meter"}
        # Any field: in a break (00:00-00:30 in Shanghai, where CI may run) the OEE ratio itself is undefined.
        assert influxdb.query('SELECT count(*) FROM "oee"', "cli"), "the last OEE window was flushed on exit"
    finally:
        plant.send_signal(signal.SIGTERM)
        plant.communicate(timeout=30)
    assert cli("health", "--url", f"http://127.0.0.1:{health}/health").returncode == 1


def test_the_readme_names_every_command_protocol_and_type() -> None:
    """The README's command table, protocol and Modbus type lists follow the code, not memory."""
    import argparse  # noqa: PLC0415
    import typing  # noqa: PLC0415

    from edge_agent.cli import _parser  # noqa: PLC0415
    from edge_agent.collectors.modbus.profile import RegisterType  # noqa: PLC0415
    from edge_agent.collectors.plugin import plugins  # noqa: PLC0415

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| command |") : readme.index("A problem reads like this")]

    def leaves(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += leaves(sub, f"{prefix} {name}") or [f"{prefix} {name}"]
        return found

    commands = leaves(_parser(), "edge-agent")
    assert len(commands) >= 14
    for command in commands:
        assert f"`{command}" in table, f"the README's command table lacks {command}"
    for plugin in plugins().values():
        for scheme in plugin.schemes:
            if scheme != "modbus-tcp":  # an alias of modbus://
                assert f"{scheme}://" in readme, f"the README does not name {scheme}://"
    types_said = readme[readme.index("`type`: int16") :][:600]
    for name in typing.get_args(RegisterType):
        assert name in types_said, f"the README's Modbus type list lacks {name}"
