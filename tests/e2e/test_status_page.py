"""The status page (``GET /``) as a person sees it: Debian's Chromium, headless, renders the page of
an agent polling the demo plant, and the test reads what it rendered (the DOM after parsing)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.faults.agent_process import AgentProcess

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Tables(HTMLParser):
    """Every table's rows (cell texts) by the table's id, and the text of elements by id."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}
        self.tags: list[str] = []
        self._table: str | None = None
        self._ids: list[str | None] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        ident = dict(attrs).get("id")
        self._ids.append(ident)
        if ident is not None:
            self.texts[ident] = ""
        if tag == "table" and ident:
            self._table = ident
            self.tables[ident] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._ids:
            self._ids.pop()
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for ident in self._ids:
            if ident is not None:
                self.texts[ident] += data


def rendered(url: str) -> Tables:
    """What Chromium renders at ``url`` (its DOM, serialised after parsing)."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: 'make test' installs it (scripts/ensure-test-servers.sh)"
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    tables = Tables()
    tables.feed(done.stdout)
    return tables


def test_the_status_page_shows_devices_values_and_oee(plant: tuple[int, int], tmp_path: Path) -> None:
    modbus, _ = plant
    config: dict[str, Any] = {
        "agent": {
            "id": "<b>bench</b> 1",  # a name with markup: shown as text, never as markup
            "site": "s",
            "workshop": "w",
            "buffer": {"path": str(tmp_path / "store.sqlite3")},
        },
        "devices": [
            {
                "name": "press-1",
                "profile": "demo-press-modbus",
                "endpoint": f"modbus://127.0.0.1:{modbus}",
                "unit_id": 1,
                "line": "b",
                "poll_interval": "200ms",
                "oee": {
                    "state": {"signal": "state", "map": {1: "running", 2: "idle", 3: "down"}},
                    "counters": {"good": {"signal": "good", "modulus": 65536}},
                    "ideal_cycle_time": "2s",
                },
            },
            {
                "name": "gone",
                "profile": "demo-energy-meter",
                "endpoint": f"modbus://127.0.0.1:{free_port()}",
                "unit_id": 10,
                "line": "u",
            },
        ],
    }
    agent = AgentProcess(tmp_path, config)
    agent.start()
    try:
        agent.wait_for("readings", lambda h: h["devices"][0]["polls"] > 10)
        deadline = time.monotonic() + 60
        while True:  # the tick publishes its view once a second
            page = rendered(f"http://127.0.0.1:{agent.health_port}/")
            if len(page.tables.get("readings", [])) > 1 or time.monotonic() > deadline:
                break
    finally:
        assert agent.terminate()[0] == 0
    assert page.texts["agent"] == "<b>bench</b> 1" and "b" not in page.tags
    assert page.texts["status"] in ("ok", "degraded")
    devices = {row[0]: row for row in page.tables["devices"][1:]}
    assert devices["press-1"][2] == "answering" and devices["gone"][2] == "not answering"
    readings = {(row[0], row[1]): row for row in page.tables["readings"][1:]}
    temp = readings[("press-1", "spindle_temp")]
    assert 20 < float(temp[2]) < 120 and temp[3] == "degC" and temp[4] == "good"
    (machine,) = page.tables["oee"][1:]
    assert machine[0] == "press-1" and machine[2].split()[0] in ("running", "idle", "down", "setup", "unknown")
    assert machine[6].endswith("%") or machine[6] == "-"
    assert any(row[0] == "backlog (points)" for row in page.tables["store"])


def test_the_machine_state_is_the_agents_mapped_state() -> None:
    """A device whose code 1 means running shows running, not the agent's code 1 (idle)."""
    from edge_agent.runtime.status_page import StatusView, render  # noqa: PLC0415

    page = Tables()
    page.feed(render({"agent": "a"}, StatusView(oee=[{"machine": "m", "line": "l", "state": 0, "oee": 0.5}])))
    assert page.tables["oee"][1][2].startswith("running") and page.tables["oee"][1][6] == "50.0 %"


@pytest.mark.parametrize("path", ["/nothing", "/health/x"])
def test_other_paths_are_not_found(path: str) -> None:
    from edge_agent.runtime.health import _route  # noqa: PLC0415

    status, _, _ = _route("GET", path, lambda: {"status": "ok"}, lambda: "<html></html>")
    assert status == 404
