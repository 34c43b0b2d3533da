"""The README's systemd steps, in the form that can run here (no systemd, no root-owned /etc).

The install is laid out under a temporary root as the README's commands lay it out: the shipped
examples/agent.yaml in ``/etc/edge-agent`` (pointed at the demo plant and a real InfluxDB with a
login, its password lines uncommented), the password in ``secrets.env`` or handed over as a
credential. The agent is started as the unit file starts it: its ExecStart arguments, the
variables of its EnvironmentFile, ``$STATE_DIRECTORY`` and the working directory of
StateDirectory=, ``$CREDENTIALS_DIRECTORY`` for LoadCredential=, its UMask, and no home. Then
``systemctl reload`` (SIGHUP) and ``systemctl stop`` (SIGTERM, within TimeoutStopSec). With
ProtectSystem=strict only the state directory is writable: the test checks that the agent wrote
nowhere else.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import InfluxServer, free_port

REPO = Path(__file__).parents[2]
UNIT_FILE = REPO / "deploy" / "systemd" / "edge-agent.service"
PASSWORD = "pw-of-the-edge-user"  # noqa: S105 - a test credential


def unit() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = UNIT_FILE.read_text(encoding="utf-8")
    # The commented LoadCredential= line is the README's second way: read it as a setting.
    parser.read_string(text.replace("#LoadCredential=", "LoadCredential="))
    return parser["Service"]


def files_under(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


@pytest.fixture
def influx_with_login(tmp_path: Path) -> Iterator[InfluxServer]:
    (tmp_path / "influx").mkdir()
    server = InfluxServer(tmp_path / "influx", auth=True)
    server.start()
    server.query(f"CREATE USER \"edge\" WITH PASSWORD '{PASSWORD}'")
    server.query('CREATE DATABASE "edge"')
    server.query('GRANT ALL ON "edge" TO "edge"')
    yield server
    server.stop()


@pytest.mark.parametrize("handover", ["environment_file", "load_credential"])
def test_the_readme_systemd_steps(
    plant: tuple[int, int], influx_with_login: InfluxServer, tmp_path: Path, handover: str
) -> None:
    modbus, opcua = plant
    service = unit()
    root = tmp_path / "root"

    def on_box(path: str) -> Path:
        return root / path.lstrip("/")

    # sudo install -d -m 750 /etc/edge-agent; install -m 640 examples/agent.yaml /etc/edge-agent/agent.yaml
    etc = on_box("/etc/edge-agent")
    etc.mkdir(parents=True, mode=0o750)
    example = (REPO / "examples" / "agent.yaml").read_text(encoding="utf-8")
    health_port = free_port()
    example = (
        example.replace("modbus://127.0.0.1:5020", f"modbus://127.0.0.1:{modbus}")
        .replace("opc.tcp://127.0.0.1:4840/demo", f"opc.tcp://127.0.0.1:{opcua}/demo")
        .replace("http://127.0.0.1:8086", influx_with_login.url)
        .replace("127.0.0.1:8089", f"127.0.0.1:{health_port}")
        .replace("# username: edge", "username: edge")
    )
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": "/nonexistent", "NO_PROXY": "127.0.0.1"}
    if handover == "environment_file":
        example = example.replace("# password: ${INFLUX_PASSWORD}", "password: ${INFLUX_PASSWORD}")
        # sudo install -m 600 /dev/null /etc/edge-agent/secrets.env, then INFLUX_PASSWORD=... in it
        (etc / "secrets.env").write_text(f"INFLUX_PASSWORD={PASSWORD}\n", encoding="utf-8")
        (etc / "secrets.env").chmod(0o600)
        path = service["EnvironmentFile"].lstrip("-")
        for line in on_box(path).read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    else:
        example = example.replace(
            "# password: ${INFLUX_PASSWORD}", "password_file: ${CREDENTIALS_DIRECTORY}/influx-password"
        )
        # LoadCredential=NAME:/etc/edge-agent/FILE: systemd copies it to $CREDENTIALS_DIRECTORY/NAME, read-only.
        name, source = service["LoadCredential"].split(":", 1)
        name, source = "influx-password", source.replace("influx-token", "influx-password")
        on_box(source).write_text(PASSWORD + "\n", encoding="utf-8")
        credentials = on_box("/run/credentials/edge-agent.service")
        credentials.mkdir(parents=True)
        shutil.copy(on_box(source), credentials / name)
        (credentials / name).chmod(0o440)  # as systemd hands it over: not the owner-only mode asked of others
        env["CREDENTIALS_DIRECTORY"] = str(credentials)
    (etc / "agent.yaml").write_text(example, encoding="utf-8")
    (etc / "agent.yaml").chmod(0o640)
    # StateDirectory=edge-agent: /var/lib/edge-agent, made by systemd, given as $STATE_DIRECTORY.
    state = on_box(f"/var/lib/{service['StateDirectory']}")
    state.mkdir(parents=True, mode=int(service["StateDirectoryMode"], 8))
    env["STATE_DIRECTORY"] = str(state)
    assert on_box(service["WorkingDirectory"]) == state
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/bin/edge-agent")
    args = [str(on_box(a)) if a.startswith("/etc/") else a for a in exec_start[1:]]
    umask = int(service["UMask"], 8)
    before = files_under(root)

    log = tmp_path / "journal.log"
    with log.open("wb") as journal:
        process = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", *args],
            cwd=state,
            env=env,
            stdout=journal,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: os.umask(umask),  # noqa: PLW1509 - sets the umask only
        )
    try:
        health = [sys.executable, "-m", "edge_agent", "health", "--url", f"http://127.0.0.1:{health_port}/health"]

        def every_device_in_influxdb() -> bool:
            series = influx_with_login.query('SELECT count("value") FROM "raw" GROUP BY "device"', "edge")
            return {s["tags"]["device"] for s in series} == {"press-1", "cnc-1", "energy-meter"}

        deadline = time.monotonic() + 180
        while not (
            every_device_in_influxdb()
            and subprocess.run(health, capture_output=True, check=False, env=env).returncode == 0
        ):
            assert process.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")[-3000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGHUP)  # systemctl reload: ExecReload=/bin/kill -HUP $MAINPID
        deadline = time.monotonic() + 180
        while log.read_text(encoding="utf-8").count("agent wuxi-machining-edge-1 started") < 2:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)  # systemctl stop
        assert process.wait(int(service["TimeoutStopSec"].removesuffix("s"))) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    journal_text = log.read_text(encoding="utf-8")
    assert PASSWORD not in journal_text
    assert "Traceback" not in journal_text, journal_text[-3000:]
    # ProtectSystem=strict: nothing written outside the state directory.
    after = files_under(root)
    outside = {p for p, t in after.items() if before.get(p) != t and not (root / p).is_relative_to(state)}
    assert outside == set(), f"written outside StateDirectory: {outside}"
    made = {p.name for p in state.iterdir()}
    assert "edge-buffer.sqlite3" in made, made
    assert all(not re.match(r"^\.|^var$", name) for name in made), made
    for written in state.rglob("*"):  # UMask=0077: for the service's user alone
        assert written.stat().st_mode & 0o077 == 0, f"{written} mode {written.stat().st_mode & 0o777:o}"
