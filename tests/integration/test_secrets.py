"""Secrets stay secret: ``${VAR}`` and ``password_file`` in agent.yaml, and a failing run (a
database that refuses the login and echoes the credentials back, a device whose endpoint URL
carries a password) whose every output is searched for the secrets: the agent's log, its
``/health`` answers, ``config check`` and the local store's files."""

from __future__ import annotations

import base64
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_agent.cli import main
from edge_agent.config import load_config
from edge_agent.config.yaml_source import ConfigError
from tests.conftest import dead_port
from tests.faults.agent_process import AgentProcess

PASSWORD = "Plant-Secret-7731"  # noqa: S105 - a test secret to search for
FILE_PASSWORD = "From-A-File-2291"  # noqa: S105
URL_PASSWORD = "Url-Secret-5521"  # noqa: S105


class EchoingDatabase(BaseHTTPRequestHandler):
    """Refuses every write with 401 and, carelessly, echoes the credentials it was sent."""

    def do_POST(self) -> None:
        auth = self.headers.get("Authorization", "")
        sent = base64.b64decode(auth.removeprefix("Basic ")).decode() if auth.startswith("Basic ") else auth
        body = f'{{"error":"authorization failed for {sent} (query {self.path})"}}'.encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.do_POST()

    def log_message(self, *args: Any) -> None:
        pass


def test_secrets_appear_in_no_output_of_a_failing_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_TEST_INFLUX_PASSWORD", PASSWORD)
    secret_file = tmp_path / "influx.pw"
    secret_file.write_text(FILE_PASSWORD + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    database = ThreadingHTTPServer(("127.0.0.1", 0), EchoingDatabase)
    threading.Thread(target=database.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{database.server_address[1]}"
    with dead_port() as dead_modbus, dead_port() as dead_opcua:
        config = {
            "agent": {"id": "t", "site": "s", "workshop": "w", "buffer": {"path": "store/buffer.sqlite3"}},
            "sinks": [
                {
                    "type": "influxdb_v1",
                    "url": url,
                    "database": "d1",
                    "username": "op",
                    "password": "${EDGE_TEST_INFLUX_PASSWORD}",
                },
                {
                    "type": "influxdb_v1",
                    "url": url,
                    "database": "d2",
                    "username": "op",
                    "password_file": str(secret_file),
                },
            ],
            "devices": [
                {
                    "name": "cnc",
                    "line": "l",
                    "profile": "demo-cnc-opcua",
                    "endpoint": f"opc.tcp://operator:{URL_PASSWORD}@127.0.0.1:{dead_opcua}/demo",
                    "params": {"machine": "A1"},
                    "poll_interval": "200ms",
                },
                {
                    "name": "press",
                    "line": "l",
                    "profile": "demo-press-modbus",
                    "endpoint": f"modbus://127.0.0.1:{dead_modbus}",
                    "unit_id": 1,
                    "poll_interval": "200ms",
                },
            ],
        }
        agent = AgentProcess(tmp_path, config)
        agent.start()
        try:
            health = agent.wait_for(
                "both sinks refused and the devices failing",
                lambda h: all(s["last_error"] for s in h["sinks"]) and all(d["failures"] > 1 for d in h["devices"]),
            )
            with urllib.request.urlopen(f"http://127.0.0.1:{agent.health_port}/health", timeout=10) as reply:
                raw_health = reply.read().decode()
        finally:
            code, _ = agent.terminate()
        database.shutdown()
    assert code == 0
    assert "authorization failed for op:***" in str(health["sinks"]), health["sinks"]  # the echo, redacted
    outputs = {"log": agent.log_text(), "/health": raw_health}
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            outputs[str(path)] = path.read_bytes().decode("latin-1")
    for where, text in outputs.items():
        for secret in (PASSWORD, FILE_PASSWORD, URL_PASSWORD):
            assert secret not in text, f"{secret} found in {where}"
            assert base64.b64encode(f"op:{secret}".encode()).decode() not in text, where


def test_missing_variables_and_open_secret_files_are_config_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("EDGE_TEST_NOT_SET", raising=False)
    loose = tmp_path / "loose.pw"
    loose.write_text("x-secret-x", encoding="utf-8")
    loose.chmod(0o644)
    text = (
        "agent: {id: t, site: s, workshop: w}\n"
        "sinks:\n"
        "  - {type: influxdb_v1, url: 'http://127.0.0.1:1', database: d, password: '${EDGE_TEST_NOT_SET}'}\n"
        f"  - {{type: influxdb_v1, url: 'http://127.0.0.1:1', database: e, password_file: {loose}}}\n"
        "  - {type: influxdb_v1, url: 'http://127.0.0.1:1', database: '${EDGE_TEST_NOT_SET:-fallback}'}\n"
        "devices:\n"
        "  - {name: p, line: l, profile: demo-press-modbus, endpoint: 'modbus://127.0.0.1:5020', unit_id: 1}\n"
    )
    path = tmp_path / "agent.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    first, second = info.value.problems
    assert first.startswith(f"{path}:3: sinks[0].password: environment variable EDGE_TEST_NOT_SET is not set")
    assert second.startswith(f"{path}:4: sinks[1].password_file:") and f"chmod 600 {loose}" in second
    assert main(["config", "check", str(path)]) == 2
    assert "x-secret-x" not in capsys.readouterr().err
    loose.chmod(0o600)
    path.write_text(text.replace("'${EDGE_TEST_NOT_SET}'", "'$${literal}'"), encoding="utf-8")
    loaded = load_config(path)
    assert [s.database for s in loaded.config.sinks] == ["d", "e", "fallback"]  # type: ignore[union-attr]
    assert loaded.config.sinks[0].password == "${literal}"  # type: ignore[union-attr]  # noqa: S105
    assert loaded.config.sinks[1].password == "x-secret-x"  # type: ignore[union-attr]  # noqa: S105
