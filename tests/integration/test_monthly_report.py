"""``edge-agent report``: a month read from a real InfluxDB holding points of known sums.

Two lines, three machines, OEE windows stamped around the month's edges in Asia/Shanghai (UTC+8),
so a month cut in UTC would count other points. Also: InfluxDB 1.x with authentication, the 2.x
token API (through a stand-in, see ``token_proxy``), agent.yaml's sink, a window length changed
during the month, and progress lines.
"""

from __future__ import annotations

import datetime as dt
import html
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from edge_agent.cli import main
from tests.conftest import InfluxServer

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
DB = "reportdb"
PASSWORD = "s3cret-pw"  # noqa: S105 - a test credential
TOKEN = "tok-3f9a1c"  # noqa: S105


def at(text: str) -> int:
    """Seconds since the epoch of a Shanghai wall time ``YYYY-MM-DD HH:MM``."""
    return int(dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI).timestamp())


def oee_line(line: str, machine: str, when: str, window: str = "1m", **fields: float) -> str:
    values = {
        "planned_busy_s": 60.0,
        "actual_production_s": 48.0,
        "ideal_produced_s": 36.0,
        "ideal_good_s": 30.0,
        "produced": 10.0,
        "good": 9.0,
        "reject": 1.0,
        "down_s": 6.0,
        "delay_s": 3.0,
        "microstop_s": 2.0,
        "setup_s": 1.0,
        "break_s": 0.0,
        "planned_stop_s": 0.0,
        "unknown_s": 0.0,
    } | fields
    body = ",".join(f"{k}={v}" for k, v in values.items())
    tags = f"site=suzhou,workshop=w1,line={line},machine={machine},window={window}"
    return f"oee,{tags} {body} {at(when)}"


def kpi_line(when: str, **fields: float) -> str:
    values = {
        "devices_seen": 3.0,
        "devices_in_scope": 4.0,
        "samples_valid": 90.0,
        "samples_expected": 100.0,
        "devices_on_cloud": 3.0,
        "points_acked": 99.0,
        "points_produced": 100.0,
        "energy_kwh": 2.0,
        "good": 9.0,
        "reject": 1.0,
        "produced": 10.0,
        "continuous_cloud_days": 5.0,
        "baseline_energy_per_good_kwh": 0.25,
        "baseline_defect_rate": 0.2,
    } | fields
    body = ",".join(f"{k}={v}" for k, v in values.items())
    return f"kpi,site=suzhou,workshop=w1 {body} {at(when)}"


#: Points of November 2026 in Shanghai, and two just outside it that a UTC month would take.
POINTS = [
    # 2026-11-01 00:30 Shanghai is 2026-10-31 16:30 UTC: inside the plant's November.
    oee_line("line-1", "M1", "2026-11-01 00:30", down_s=600.0),
    oee_line("line-1", "M1", "2026-11-15 10:00"),
    oee_line("line-1", "M2", "2026-11-15 10:00", planned_busy_s=120.0, ideal_good_s=90.0, delay_s=30.0),
    oee_line("line-2", "M3", "2026-11-20 10:00", produced=20.0, good=10.0, reject=10.0, break_s=900.0, unknown_s=5000),
    # 2026-12-01 01:00 Shanghai is 2026-11-30 17:00 UTC: December for the plant.
    oee_line("line-2", "M3", "2026-12-01 01:00", down_s=99_999.0, produced=1000.0, good=0.0),
    # 2026-10-31 23:00 Shanghai: October.
    oee_line("line-1", "M1", "2026-10-31 23:00", planned_busy_s=60.0, ideal_good_s=60.0),
    kpi_line("2026-11-01 00:30"),
    kpi_line("2026-11-20 10:00", devices_seen=4.0),
    kpi_line("2026-12-01 01:00", devices_seen=0.0, energy_kwh=500.0),
]


@pytest.fixture(scope="module")
def plant_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """An InfluxDB 1.x with authentication on, holding POINTS."""
    server = InfluxServer(tmp_path_factory.mktemp("influx-auth"), auth=True)
    server.start()
    server.write(DB, POINTS)
    server.query(f"CREATE USER \"reader\" WITH PASSWORD '{PASSWORD}'")
    server.query(f'GRANT READ ON "{DB}" TO "reader"')
    yield server
    server.stop()


def secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def report(tmp_path: Path, *args: str) -> tuple[int, str]:
    out = tmp_path / "report.html"
    code = main(["report", "--month", "2026-11", "--out", str(out), *args])
    return code, out.read_text(encoding="utf-8") if code == 0 else ""


def cells(page: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for row in re.findall(r"<tr>(.*?)</tr>", page):
        found = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
        if found and found[0] == first:
            return found
    raise AssertionError(f"no row {first!r}")


def v1_args(server: InfluxServer, tmp_path: Path) -> list[str]:
    password = secret(tmp_path, "pw", PASSWORD)
    return ["--influx-url", server.url, "--db", DB, "--user", "reader", "--password-file", str(password)]


def test_month_and_days_in_the_plants_zone(
    plant_db: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, page = report(tmp_path, *v1_args(plant_db, tmp_path), "--timezone", "Asia/Shanghai")
    assert code == 0, capsys.readouterr().err
    # November in Shanghai: M1 twice, M2, M3 once. OEE = sum(ideal_good) / sum(planned_busy).
    oee = (30 + 30 + 90 + 30) / (60 + 60 + 120 + 60)
    assert cells(page, "OEE 设备综合效率")[1] == f"{100 * oee:.1f} %"
    # October's one point (M1 at 23:00 local) is the month before.
    assert cells(page, "OEE 设备综合效率")[2] == "100.0 %"
    # The networking rate: (3 + 4) / (4 + 4); the December point (0 seen) is not in it.
    assert cells(page, "Networking rate 设备联网率")[1] == f"{100 * 7 / 8:.1f} %"
    # Energy per good unit against its baseline: (2 + 2) / (9 + 9) vs 0.25.
    row = cells(page, "Energy per good unit 单位产品能耗 (kWh)")
    assert row[1] == f"{4 / 18:.4g}" and row[4] == "0.25" and row[5] == f"{100 * (4 / 18 / 0.25 - 1):+.1f} %"
    assert "Asia/Shanghai" in page and "2026-11-01T00:00:00+08:00" in page


def test_a_utc_month_is_another_month(plant_db: InfluxServer, tmp_path: Path) -> None:
    code, page = report(tmp_path, *v1_args(plant_db, tmp_path), "--timezone", "UTC")
    assert code == 0
    # In UTC, November holds the point of 12-01 01:00 in Shanghai (11-30 17:00 UTC) and loses the one of
    # 11-01 00:30 (10-31 16:30 UTC): line-2 made 20 + 1000 parts.
    produced = cells(page, "line-2")[-1]
    assert produced == "1020"


def test_by_line_by_machine_and_the_pareto(plant_db: InfluxServer, tmp_path: Path) -> None:
    code, page = report(tmp_path, *v1_args(plant_db, tmp_path), "--timezone", "Asia/Shanghai", "-q")
    assert code == 0
    # line-1: M1 x2 and M2. Availability = APT / PBT, performance = ideal produced / APT,
    # quality = good / produced, OEE = ideal good / PBT: each a ratio of the line's sums.
    apt, pbt, ideal_produced, ideal_good = 48 * 3, 60 + 60 + 120, 36 * 3, 30 + 30 + 90
    line1 = cells(page, "line-1")
    assert line1[1:5] == [f"{100 * x:.1f} %" for x in (apt / pbt, ideal_produced / apt, 27 / 30, ideal_good / pbt)]
    assert line1[5:] == ["27", "30"]
    m3 = cells(page, "line-2")  # one machine: the by-line row comes first, the machine's has it too
    assert m3[4] == f"{100 * 30 / 60:.1f} %" and m3[3] == "50.0 %"
    machine_rows = re.findall(r"<tr><td>line-\d</td><td>(M\d)</td>", page)
    assert machine_rows == ["M1", "M2", "M3"]
    # The Pareto: down (600 + 6 x 3 s), delay (3 x 3 + 30), micro-stops, setup, largest first; breaks and
    # unknown time apart, never in the cumulative share.
    order = re.findall(r"<tr><td>(\w[\w-]*) [^<]*</td><td>[\d.]+</td><td>[\d.]+ %</td></tr>", page)
    assert order == ["down", "delay", "micro-stops", "setup"]
    assert cells(page, "down 故障")[1] == f"{(600 + 18) / 3600:.2f}"
    assert cells(page, "planned breaks 计划休息")[1:] == [f"{900 / 3600:.2f}", "not a loss"]
    assert cells(page, "unknown 状态未知")[1:] == [f"{5000 / 3600:.2f}", "not a loss"]
    assert cells(page, "setup 换型")[2] == "100.0 %"
    assert page.count('src="data:image/png;base64,') == 4


def test_credentials_refused_and_never_shown(
    plant_db: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = secret(tmp_path, "wrong", "not-the-password")
    code, _ = report(
        tmp_path, "--influx-url", plant_db.url, "--db", DB, "--user", "reader", "--password-file", str(wrong)
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "refused the credentials (401): check --user and --password-file" in err
    assert "not-the-password" not in err
    loose = secret(tmp_path, "loose", PASSWORD)
    loose.chmod(0o644)
    code, _ = report(
        tmp_path, "--influx-url", plant_db.url, "--db", DB, "--user", "reader", "--password-file", str(loose)
    )
    assert code == 2
    assert f"readable by other users (mode 644): run chmod 600 {loose}" in capsys.readouterr().err


def test_progress_lines(plant_db: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = report(tmp_path, *v1_args(plant_db, tmp_path), "--timezone", "Asia/Shanghai")
    assert code == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("report: [")]
    assert len(lines) >= 8 and re.fullmatch(r"report: \[1\] OEE windows \(first\): \d+\.\d s", lines[0])
    assert PASSWORD not in "\n".join(lines)


@pytest.fixture
def token_proxy(plant_db: InfluxServer) -> Iterator[tuple[str, list[str]]]:
    """Stands in for InfluxDB 2.x, which cannot run here: its v1-compatible ``/query`` takes
    ``Authorization: Token ...`` and the bucket as ``db``. This server checks the token, then
    asks the real InfluxDB 1.x with the admin's login; what it saw is kept for the test."""
    seen: list[str] = []
    user, password = plant_db.admin or ("", "")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(f"{self.path} {self.headers.get('Authorization', '')}")
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                answer, code = b'{"code":"unauthorized","message":"unauthorized access"}', 401
            else:
                reply = requests.post(
                    plant_db.url + self.path,
                    data=body,
                    headers={"Content-Type": self.headers["Content-Type"]},
                    auth=(user, password),
                    timeout=30,
                )
                answer, code = reply.content, reply.status_code
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_influxdb_2_token_from_agent_yaml(
    token_proxy: tuple[str, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-c agent.yaml: the report reads through the config's v2 sink (token from token_file), in
    the time zone of its shifts."""
    url, seen = token_proxy
    secret(tmp_path, "token", TOKEN)
    config = {
        "agent": {"id": "a1", "site": "suzhou", "workshop": "w1"},
        "sinks": [{"type": "influxdb_v2", "url": url, "org": "plant", "bucket": DB, "token_file": "token"}],
        "analytics": {
            "shifts": {"timezone": "Asia/Shanghai", "schedule": [{"name": "day", "start": "00:00", "end": "00:00"}]}
        },
        "devices": [
            {
                "name": "m1",
                "profile": "demo-cnc-opcua",
                "endpoint": "opc.tcp://127.0.0.1:4840",
                "line": "line-1",
                "params": {"machine": "M1"},
            }
        ],
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code, page = report(tmp_path, "-c", str(tmp_path / "agent.yaml"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"{100 * 180 / 300:.1f} %" == cells(page, "OEE 设备综合效率")[1]  # Shanghai's November
    assert seen and all(s.endswith(f"Token {TOKEN}") and "db=reportdb" in s for s in seen)
    assert TOKEN not in page and TOKEN not in err
    # A wrong token: refused, named, not shown.
    secret(tmp_path, "token", "tok-wrong")
    code, _ = report(tmp_path, "-c", str(tmp_path / "agent.yaml"))
    err = capsys.readouterr().err
    assert code == 1 and "refused the credentials (401): check --token-file" in err and "tok-wrong" not in err


def test_a_window_length_changed_during_the_month(
    plant_db: InfluxServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1m windows until the 10th, 30s after: both are summed (they never cover the same time);
    two grids over the same time are refused unless --window chooses one."""
    db = "changed"
    plant_db.write(
        db,
        [
            oee_line("l", "M", "2026-11-05 10:00"),
            oee_line("l", "M", "2026-11-20 10:00", window="30s", planned_busy_s=30, ideal_good_s=30),
        ],
    )
    user, password = plant_db.admin or ("", "")
    args = [
        "--influx-url",
        plant_db.url,
        "--db",
        db,
        "--user",
        user,
        "--password-file",
        str(secret(tmp_path, "a", password)),
    ]
    code, page = report(tmp_path, *args, "--timezone", "Asia/Shanghai")
    assert code == 0, capsys.readouterr().err
    assert cells(page, "OEE 设备综合效率")[1] == f"{100 * 60 / 90:.1f} %"
    plant_db.write(db, [oee_line("l", "M", "2026-11-25 10:00", window="1m")])  # now they overlap
    code, _ = report(tmp_path, *args, "--timezone", "Asia/Shanghai")
    assert code == 1
    assert (
        "OEE windows that overlap: 1m (11-05 10:00..11-25 10:00), 30s (11-20 10:00..11-20 10:00)"
        in capsys.readouterr().err
    )
    code, page = report(tmp_path, *args, "--timezone", "Asia/Shanghai", "--window", "30s")
    assert code == 0 and cells(page, "OEE 设备综合效率")[1] == "100.0 %"


def test_says_where_to_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--month", "2026-11"]) == 2
    assert "say where to read: -c agent.yaml, or --influx-url" in capsys.readouterr().err
    assert main(["report", "--month", "2026-13", "--influx-url", "http://127.0.0.1:1"]) == 2
    assert "--month '2026-13': write YYYY-MM" in capsys.readouterr().err
    assert main(["report", "--month", "2026-11", "--influx-url", "http://127.0.0.1:1", "--timezone", "Mars/Base"]) == 2
    assert "time zone 'Mars/Base' is unknown" in capsys.readouterr().err
