"""``edge-agent dashboards push``, through grafana-client, against a stand-in for Grafana.

No Grafana server can run here. This test serves a small HTTP server that checks every request
against Grafana's documented HTTP API (paths, methods, the bearer token, and the fields of each
body: /api/datasources, /api/datasources/uid/:uid, /api/folders, /api/dashboards/db) and keeps
what it was given, so a second push can be seen to update rather than duplicate. It stands in
for Grafana; it is not Grafana.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from edge_agent.cli import main

TOKEN = "glsa_test_token_0123456789abcdef"  # noqa: S105 - a test token to search for
INFLUX_PASSWORD = "Influx-Reader-Secret-99"  # noqa: S105


class FakeGrafana(BaseHTTPRequestHandler):
    """Grafana's API as documented, as far as the push uses it; any other request fails the test."""

    datasources: ClassVar[dict[str, dict[str, Any]]] = {}
    folders: ClassVar[dict[str, dict[str, Any]]] = {}
    dashboards: ClassVar[dict[str, dict[str, Any]]] = {}
    errors: ClassVar[list[str]] = []
    calls: ClassVar[list[str]] = []

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0"))
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            self.errors.append(f"{self.command} {self.path}: Content-Type {self.headers.get('Content-Type')}")
        data = json.loads(self.rfile.read(length) or b"{}")
        assert isinstance(data, dict)
        return data

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"message": "Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:
        self.calls.append(f"GET {self.path}")
        if not self._authorized():
            return
        if self.path.startswith("/api/datasources/uid/"):
            uid = self.path.rsplit("/", 1)[1]
            if uid in self.datasources:
                self._send(200, self.datasources[uid])
            else:
                self._send(404, {"message": "Data source not found"})
        elif self.path.split("?")[0] == "/api/folders":
            self._send(
                200, [{"id": i, "uid": f["uid"], "title": f["title"]} for i, f in enumerate(self.folders.values())]
            )
        else:
            self.errors.append(f"unexpected GET {self.path}")
            self._send(404, {"message": "Not found"})

    def do_POST(self) -> None:
        self.calls.append(f"POST {self.path}")
        if not self._authorized():
            return
        body = self._body()
        if self.path == "/api/datasources":
            self._check_datasource(body)
            if body["uid"] in self.datasources:
                self._send(409, {"message": "data source with the same uid already exists"})
                return
            self.datasources[body["uid"]] = body
            self._send(200, {"datasource": body, "id": 1, "message": "Datasource added", "name": body["name"]})
        elif self.path == "/api/folders":
            if not isinstance(body.get("title"), str) or not body["title"]:
                self.errors.append(f"POST /api/folders without a title: {body}")
            uid = body.get("uid") or f"folder{len(self.folders) + 1}"
            self.folders[uid] = {"uid": uid, "title": body["title"]}
            self._send(200, {"id": len(self.folders), "uid": uid, "title": body["title"], "version": 1})
        elif self.path == "/api/dashboards/db":
            board = body.get("dashboard")
            if not isinstance(board, dict) or not board.get("uid") or not board.get("title"):
                self.errors.append("POST /api/dashboards/db: dashboard without uid or title")
            elif board.get("id") is not None:
                self.errors.append("POST /api/dashboards/db: id must be null to create or overwrite by uid")
            elif any(k.startswith("__") for k in board):
                self.errors.append("POST /api/dashboards/db: import-only keys (__inputs) in an API call")
            elif body.get("folderUid") not in self.folders:
                self.errors.append(f"POST /api/dashboards/db: unknown folderUid {body.get('folderUid')}")
            uid = board["uid"]
            if uid in self.dashboards and not body.get("overwrite"):
                self._send(
                    412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
                )
                return
            version = self.dashboards.get(uid, {}).get("version", 0) + 1
            self.dashboards[uid] = {"dashboard": board, "folderUid": body.get("folderUid"), "version": version}
            self._send(200, {"id": 1, "uid": uid, "url": f"/d/{uid}", "status": "success", "version": version})
        else:
            self.errors.append(f"unexpected POST {self.path}")
            self._send(404, {"message": "Not found"})

    def do_PUT(self) -> None:
        self.calls.append(f"PUT {self.path}")
        if not self._authorized():
            return
        body = self._body()
        if self.path.startswith("/api/datasources/uid/"):
            uid = self.path.rsplit("/", 1)[1]
            self._check_datasource(body)
            if uid not in self.datasources:
                self._send(404, {"message": "Data source not found"})
                return
            self.datasources[uid] = body
            self._send(200, {"datasource": body, "id": 1, "message": "Datasource updated", "name": body["name"]})
        else:
            self.errors.append(f"unexpected PUT {self.path}")
            self._send(404, {"message": "Not found"})

    def _check_datasource(self, body: dict[str, Any]) -> None:
        for key in ("name", "type", "access", "url", "uid"):
            if not isinstance(body.get(key), str):
                self.errors.append(f"datasource body without {key}: {body}")
        if body.get("type") != "influxdb" or body.get("access") not in ("proxy", "direct"):
            self.errors.append(f"datasource type/access: {body}")
        if "password" in body or "password" in body.get("jsonData", {}):
            self.errors.append("a datasource password outside secureJsonData")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def grafana() -> Any:
    FakeGrafana.datasources, FakeGrafana.folders, FakeGrafana.dashboards = {}, {}, {}
    FakeGrafana.errors, FakeGrafana.calls = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_creates_then_updates_by_uid(grafana: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n", encoding="utf-8")
    token.chmod(0o600)
    password = tmp_path / "influx.pw"
    password.write_text(INFLUX_PASSWORD, encoding="utf-8")
    password.chmod(0o600)
    args = ["dashboards", "push", "--grafana", grafana, "--token-file", str(token), "--folder", "Plant 工厂"]
    args += ["--influx-url", "http://influxdb:8086", "--influx-db", "edge", "--influx-user", "grafana"]
    args += ["--influx-password-file", str(password)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "datasource edge-influxdb: created" in first and "folder 'Plant 工厂': created" in first
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "datasource edge-influxdb: updated" in second and "folder" not in second
    assert FakeGrafana.errors == []
    assert list(FakeGrafana.datasources) == ["edge-influxdb"]
    assert FakeGrafana.datasources["edge-influxdb"]["secureJsonData"] == {"password": INFLUX_PASSWORD}
    assert [f["title"] for f in FakeGrafana.folders.values()] == ["Plant 工厂"]
    assert set(FakeGrafana.dashboards) == {"edge-plant-overview", "edge-fleet", "edge-enterprise"}
    board = FakeGrafana.dashboards["edge-plant-overview"]
    assert board["version"] == 2  # overwritten in place, by uid
    panels = board["dashboard"]["panels"]
    assert all(t["datasource"]["uid"] == "${datasource}" for p in panels for t in p["targets"])
    assert "dashboard edge-plant-overview (plant-overview.json): success, version 2" in second


def test_a_wrong_token_fails_without_showing_it(
    grafana: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("glsa_wrong_token_XYZ", encoding="utf-8")
    token.chmod(0o600)
    assert main(["dashboards", "push", "--grafana", grafana, "--token-file", str(token)]) == 1
    err = capsys.readouterr().err
    assert "push failed" in err and "glsa_wrong_token_XYZ" not in err


def test_secret_files_are_checked_like_agent_yamls(
    grafana: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token file others can read is refused with the fix; one systemd handed over
    ($CREDENTIALS_DIRECTORY, as with LoadCredential=) is taken whatever its mode."""
    token = tmp_path / "token"
    token.write_text(TOKEN, encoding="utf-8")
    token.chmod(0o644)
    assert main(["dashboards", "push", "--grafana", grafana, "--token-file", str(token)]) == 2
    err = capsys.readouterr().err
    assert f"--token-file: {token} is readable by other users (mode 644): run chmod 600 {token}" in err
    assert TOKEN not in err and FakeGrafana.calls == []
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert main(["dashboards", "push", "--grafana", grafana, "--token-file", str(token)]) == 0
    assert FakeGrafana.errors == []


def test_an_influxdb_2_datasource_keeps_its_token_encrypted(
    grafana: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token, influx_token = tmp_path / "token", tmp_path / "influx.token"
    for path, value in ((token, TOKEN), (influx_token, "influx-read-token-42")):
        path.write_text(value, encoding="utf-8")
        path.chmod(0o600)
    args = [
        "dashboards",
        "push",
        "--grafana",
        grafana,
        "--token-file",
        str(token),
        "--influx-url",
        "http://influx:8086",
    ]
    assert main([*args, "--influx-db", "plant-bucket", "--influx-token-file", str(influx_token)]) == 0
    body = FakeGrafana.datasources["edge-influxdb"]
    assert body["jsonData"]["dbName"] == "plant-bucket" and body["jsonData"]["httpHeaderName1"] == "Authorization"
    assert body["secureJsonData"] == {"httpHeaderValue1": "Token influx-read-token-42"}
    assert "influx-read-token-42" not in capsys.readouterr().out
