"""Fault tests with exact counts: the agent as a process, a counting Modbus server, a real InfluxDB.

Every poll reads the counting server's reply number (``seq``), so what landed in InfluxDB can be
checked reply by reply: none missing from the middle of a device's sequence, none twice (InfluxDB
keeps one point per series and time stamp: a re-sent point is a duplicate only in transit).
Figures for the issue notes are appended to ``$EDGE_FAULT_REPORT`` when it is set.
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from edge_agent.schema import KPI_FIELDS
from tests.conftest import InfluxServer, free_port
from tests.faults.agent_process import AgentProcess
from tests.faults.counting_server import CountingServer, Unit, profile_yaml

DB = "faults"


def report(fault: str, **figures: Any) -> None:
    """Append a fault's figures to ``$EDGE_FAULT_REPORT`` (for the notes; nothing in CI)."""
    path = os.environ.get("EDGE_FAULT_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"fault": fault, **figures}) + "\n")


def agent_config(
    tmp: Path,
    influx_url: str,
    port: int,
    units: list[int],
    poll: str = "100ms",
    extra_registers: int = 0,
    oee: bool = False,
    readings: bool = False,
    **agent: Any,
) -> dict[str, Any]:
    profiles = tmp / "profiles"
    profiles.mkdir(exist_ok=True)
    (profiles / "counting.yaml").write_text(profile_yaml(extra_registers, readings), encoding="utf-8")
    devices = []
    for u in units:
        device: dict[str, Any] = {
            "name": f"u{u}",
            "profile": "counting-device",
            "endpoint": f"modbus://127.0.0.1:{port}",
            "unit_id": u,
            "line": "l1",
            "poll_interval": poll,
            "timeout": "1s",
        }
        if oee:
            device["oee"] = {
                "state": {"signal": "state", "map": {1: "running"}},
                "counters": {"total": {"signal": "parts", "modulus": 65536}},
                "ideal_cycle_time": poll,
            }
        devices.append(device)
    return {
        "agent": {
            "id": "fault-agent",
            "site": "lab",
            "workshop": "w1",
            "buffer": {"path": str(tmp / "store.sqlite3")},
            "drain": "5s",
            **agent,
        },
        "sinks": [
            {
                "type": "influxdb_v1",
                "url": influx_url,
                "database": DB,
                "rejected_file": str(tmp / "rejected.lp"),
                "retry_max": "2s",
            }
        ],
        "profile_dirs": [str(profiles)],
        "analytics": {"oee_window": "10s", "settle": "0.5s"},
        "devices": devices,
    }


def landed_seqs(influx: InfluxServer, device: str) -> np.ndarray:
    series = influx.query(f'SELECT "value" FROM "raw" WHERE "signal" = \'seq\' AND "device" = \'{device}\'', DB)
    if not series:
        return np.empty(0, np.int64)
    return np.array([v[1] for v in series[0]["values"]], np.int64)


def assert_no_gap(influx: InfluxServer, devices: list[str]) -> dict[str, int]:
    """Each device's landed reply numbers are consecutive (none missing from the middle, none twice)."""
    counts = {}
    for d in devices:
        seqs = np.sort(landed_seqs(influx, d))
        assert seqs.shape[0] > 0, f"nothing landed for {d}"
        assert np.unique(seqs).shape[0] == seqs.shape[0], f"{d}: a reply landed twice"
        missing = int(seqs[-1] - seqs[0] + 1 - seqs.shape[0])
        assert missing == 0, f"{d}: {missing} replies missing between {seqs[0]} and {seqs[-1]}"
        counts[d] = int(seqs.shape[0])
    return counts


def stored_seqs(store: Path) -> dict[str, set[int]]:
    """The reply numbers in the local store (read after the agent is gone), per device."""
    db = sqlite3.connect(store)
    catalog = {}
    for sid, tags, field in db.execute("SELECT id, tags, field FROM catalog WHERE measurement = 'raw'"):
        t = json.loads(tags)
        if t.get("signal") == "seq" and field == "value":
            catalog[int(sid)] = t["device"]
    out: dict[str, set[int]] = {d: set() for d in catalog.values()}
    for sig, val in db.execute("SELECT signal, value FROM chunks"):
        s = np.frombuffer(sig, "<i4")
        v = np.frombuffer(val, "<f8")
        for sid, device in catalog.items():
            out[device].update(v[s == sid].astype(np.int64).tolist())
    db.close()
    return out


def pending(h: dict[str, Any]) -> int:
    return int(h["buffer"]["pending_points"])


def stopped_line(agent: AgentProcess) -> dict[str, Any]:
    """The agent's last words: points produced, left in the store, dropped by reason."""
    m = re.search(
        r"agent stopped: (\d+) points produced this run, (\d+) left in the local store, dropped (.*)", agent.log_text()
    )
    assert m, agent.tail()
    dropped = {} if m.group(3).strip() == "none" else ast.literal_eval(m.group(3).strip())
    return {"produced": int(m.group(1)), "left": int(m.group(2)), "dropped": dropped}


#: Points a forwarder sends before it records their acknowledgement (a step: 50,000, up to a
#: batch more): what a kill -9 may make it send again.
STEP_POINTS = 55_000


def points_written(influx: InfluxServer) -> int:
    """Points the server accepted since it started, duplicates included (``SHOW STATS``)."""
    reply = requests.get(f"{influx.url}/query", params={"q": "SHOW STATS FOR 'httpd'"}, timeout=30).json()
    (series,) = reply["results"][0]["series"]
    return int(series["values"][0][series["columns"].index("pointsWrittenOK")])


def total_points(influx: InfluxServer) -> int:
    total = 0
    for series in influx.query("SELECT count(*) FROM /.*/", DB):
        total += sum(v for v in series["values"][0][1:] if v is not None)
    return total


# -- the faults ----------------------------------------------------------------------------------


def test_influxdb_down_60s_then_back(fresh_influxdb: InfluxServer, server: CountingServer, tmp_path: Path) -> None:
    """Every stored point delivered once InfluxDB is back, none twice."""
    agent = AgentProcess(tmp_path, agent_config(tmp_path, fresh_influxdb.url, server.port, [1, 2, 3]))
    agent.start()
    agent.wait_for("the first points acknowledged", lambda h: h["sinks"][0]["written"] > 100)
    fresh_influxdb.stop()
    down_at = time.monotonic()
    agent.wait_for("the sink to notice", lambda h: not h["sinks"][0]["ok"])
    while time.monotonic() - down_at < 60:
        time.sleep(1)
    backlog = pending(agent.wait_for("health", lambda h: True))
    fresh_influxdb.start()
    back_at = time.monotonic()
    agent.wait_for("the backlog to drain", lambda h: h["sinks"][0]["ok"] and pending(h) < 1000)
    recovered_s = time.monotonic() - back_at
    code, _ = agent.terminate()
    assert code == 0
    last = stopped_line(agent)
    assert last["left"] == 0 and last["dropped"] == {}
    counts = assert_no_gap(fresh_influxdb, ["u1", "u2", "u3"])
    assert total_points(fresh_influxdb) == last["produced"]
    report(
        "InfluxDB down 60 s",
        expected=last["produced"],
        landed=total_points(fresh_influxdb),
        duplicated=0,
        lost=0,
        dropped=last["dropped"],
        backlog_at_return=backlog,
        recover_s=round(recovered_s, 1),
        replies_per_device=counts,
    )


def test_kill_9_with_a_backlog_then_restart(
    fresh_influxdb: InfluxServer, server: CountingServer, tmp_path: Path
) -> None:
    """Everything in the local store when the agent is killed arrives after the restart."""
    fresh_influxdb.stop()
    agent = AgentProcess(tmp_path, agent_config(tmp_path, fresh_influxdb.url, server.port, [1, 2]))
    agent.start()
    agent.wait_for("a backlog", lambda h: pending(h) > 2000)
    agent.kill()
    stored = stored_seqs(tmp_path / "store.sqlite3")
    fresh_influxdb.start()
    agent.start()
    agent.wait_for(
        "the backlog to drain", lambda h: h["sinks"][0]["ok"] and h["sinks"][0]["written"] > 0 and pending(h) < 500
    )
    assert agent.terminate()[0] == 0
    for device, seqs in stored.items():
        landed = set(landed_seqs(fresh_influxdb, device).tolist())
        assert seqs <= landed, f"{device}: {len(seqs - landed)} stored replies never arrived"
    report("kill -9 with a backlog", stored_replies={d: len(s) for d, s in stored.items()}, lost=0)


def test_kill_9_while_millions_drain(fresh_influxdb: InfluxServer, tmp_path: Path) -> None:
    """kill -9 in the middle of sending a backlog of millions: no loss, no duplicate in effect."""
    units = list(range(1, 11))
    server = CountingServer(free_port(), {u: Unit() for u in units})
    server.start()
    try:
        fresh_influxdb.stop()
        cfg = agent_config(tmp_path, fresh_influxdb.url, server.port, units, poll="10ms", extra_registers=122)
        for d in cfg["devices"]:
            d["anomaly_signals"] = []
        agent = AgentProcess(tmp_path, cfg)
        agent.start()
        agent.wait_for("a backlog of two million", lambda h: pending(h) > 2_000_000, timeout_s=300)
        for d in units:
            server.units[d].silent = True  # no new points: the backlog only drains
        fresh_influxdb.start()
        at_start = pending(agent.wait_for("health", lambda h: True))
        agent.wait_for("draining", lambda h: pending(h) < at_start - 300_000, timeout_s=300)
        agent.kill()
        stored = stored_seqs(tmp_path / "store.sqlite3")
        for d in units:
            server.units[d].silent = False
        agent.start()
        agent.wait_for("the backlog to drain", lambda h: h["sinks"][0]["ok"] and pending(h) < 20_000, timeout_s=600)
        assert agent.terminate()[0] == 0
        for device, seqs in stored.items():
            landed = landed_seqs(fresh_influxdb, device)
            assert seqs <= set(landed.tolist()), f"{device}: stored replies never arrived"
        # InfluxDB keeps one point per series and time stamp, so a point sent twice cannot be seen
        # in the data: count what it was sent (its own statistics) against what it holds. Only
        # what was on the wire, unacknowledged, at the kill may go twice: one step of the forwarder.
        sent = points_written(fresh_influxdb)
        held = total_points(fresh_influxdb)
        assert held <= sent <= held + STEP_POINTS, f"{sent - held} points sent twice (at most {STEP_POINTS} may be)"
        report("kill -9 while 2 M points drain", backlog=at_start, lost=0, sent_twice=sent - held)
    finally:
        server.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, int | None]]:
    """A 16 MB file system for the store (tmpfs, where mounting is permitted: the agent runs as
    root in CI); else a folder with a 3 MB limit on each file the agent writes (RLIMIT_FSIZE)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode == 0:
        yield disk, None
        subprocess.run(["umount", "-l", str(disk)], check=False)
    else:
        yield disk, 3 * 1024 * 1024


def test_disk_full(
    fresh_influxdb: InfluxServer, server: CountingServer, tmp_path: Path, small_disk: tuple[Path, int | None]
) -> None:
    """The store's disk fills while InfluxDB is down: a clear error, points held in memory up to
    the bound, the rest dropped and counted, acknowledgements still written once InfluxDB is back
    (the store drains and takes writes again), every point landed or counted, no corruption."""
    disk, file_limit = small_disk
    fresh_influxdb.stop()
    cfg = agent_config(tmp_path, fresh_influxdb.url, server.port, [1, 2, 3, 4, 5], poll="20ms", extra_registers=20)
    cfg["agent"]["buffer"] = {"path": str(disk / "store.sqlite3"), "memory_points": 20_000}
    agent = AgentProcess(tmp_path, cfg)
    agent.start(file_size_limit=file_limit)
    full = agent.wait_for("the store to fill", lambda h: not h["buffer"]["store_writable"], timeout_s=300)
    assert full["buffer"]["held_in_memory"] <= 20_000
    agent.wait_for("drops counted", lambda h: h["buffer"]["dropped"].get("store_unwritable", 0) > 0, timeout_s=120)
    fresh_influxdb.start()
    back_at = time.monotonic()
    if file_limit is None:  # a full disk: the reserve makes room for the acknowledgements
        agent.wait_for(
            "the store to drain and take writes again",
            lambda h: h["buffer"]["store_writable"] and h["sinks"][0]["written"] > 0 and pending(h) < 5000,
            timeout_s=300,
        )
    else:  # a file size limit the log itself hits: sending goes on, deleting waits for a restart
        agent.wait_for("sending again", lambda h: h["sinks"][0]["written"] > 0, timeout_s=300)
    recovered_s = time.monotonic() - back_at
    code, _ = agent.terminate()
    assert code == 0
    first = stopped_line(agent)
    log = agent.log_text()
    assert re.search(r"cannot write to the local store .*store\.sqlite3", log), log[-3000:]
    assert len(re.findall(r"dropping the oldest held points", log)) <= 2, "no log flood"
    db = sqlite3.connect(disk / "store.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    agent.start()  # no limit now: whatever is left drains
    agent.wait_for("the rest to drain", lambda h: h["sinks"][0]["ok"] and pending(h) < 2000)
    assert agent.terminate()[0] == 0
    second = stopped_line(agent)
    dropped = sum(second["dropped"].values())
    assert dropped > 0
    landed = total_points(fresh_influxdb)
    produced = first["produced"] + second["produced"]
    # Every point landed or was counted as dropped. The one exception is by design: the KPI
    # interval open at the stop is written then and again, whole, after the restart, under the
    # same timestamp (InfluxDB keeps one point per field).
    assert 0 <= produced - landed - dropped <= len(KPI_FIELDS)
    # The raw readings: each reply missing from a device's sequence had its seq point dropped (and
    # counted). Drops take the oldest held points, which may cut through one poll's points, so the
    # exact account is the one above, not missing replies x points per poll.
    missing = sum(int(np.ptp(q) + 1 - q.shape[0]) for q in (landed_seqs(fresh_influxdb, f"u{u}") for u in range(1, 6)))
    assert 0 < missing <= dropped
    report(
        "disk full (16 MB tmpfs)" if file_limit is None else "disk full (3 MB file size limit)",
        expected=produced,
        landed=landed,
        rewritten_kpi_fields=produced - landed - dropped,
        dropped=second["dropped"],
        lost=0,
        recover_s=round(recovered_s, 1),
    )


def test_many_devices_at_10ms_no_reply_missing(influxdb: InfluxServer, tmp_path: Path) -> None:
    """20 devices on 20 connections at a 10 ms poll for a minute: no reply missing from any sequence."""
    units = list(range(1, 21))
    server = CountingServer(free_port(), {u: Unit() for u in units})
    server.start()
    try:
        cfg = agent_config(tmp_path, influxdb.url, server.port, units, poll="10ms")
        for d in cfg["devices"]:
            d["anomaly_signals"] = []
        agent = AgentProcess(tmp_path, cfg)
        agent.start()
        agent.wait_for("all devices polling", lambda h: all(d["polls"] > 10 for d in h["devices"]))
        started = time.monotonic()
        while time.monotonic() - started < 60:
            time.sleep(1)
        assert agent.terminate()[0] == 0
        counts = assert_no_gap(influxdb, [f"u{u}" for u in units])
        for u in units:
            answered = server.units[u].answered
            landed = set(landed_seqs(influxdb, f"u{u}").tolist())
            inside = [s for s in answered if min(landed) <= s <= max(landed)]
            assert set(inside) <= landed
        report("20 devices x 10 ms x 60 s", replies=sum(counts.values()), missing=0)
    finally:
        server.close()
        influxdb.query(f'DROP DATABASE "{DB}"', DB)


class HungDatabase:
    """Accepts connections and reads requests, never answers (a hung InfluxDB)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("sink_type", ["influxdb_v1", "influxdb_v2"])
def test_shutdown_is_bounded_by_the_drain_whatever_the_sink_timeout(
    server: CountingServer, tmp_path: Path, sink_type: str
) -> None:
    """A database that never answers and a 120 s sink timeout: SIGTERM still ends within the drain,
    for every sink type (the v2 sink took 17 s with a 1 s drain when it used influxdb-client)."""
    hung = HungDatabase()
    try:
        cfg = agent_config(tmp_path, f"http://127.0.0.1:{hung.port}", server.port, [1, 2])
        if sink_type == "influxdb_v2":
            cfg["sinks"][0] = {
                "type": "influxdb_v2",
                "url": f"http://127.0.0.1:{hung.port}",
                "org": "plant",
                "bucket": DB,
                "token": "a-token",
            }
        cfg["sinks"][0]["timeout"] = "120s"
        cfg["agent"]["drain"] = "3s"
        agent = AgentProcess(tmp_path, cfg)
        agent.start()
        agent.wait_for("points waiting", lambda h: pending(h) > 200)
        code, took = agent.terminate()
        assert code == 0
        assert took < 60, f"the stop took {took:.1f} s (drain 3 s, sink timeout 120 s)"
        last = stopped_line(agent)
        assert last["left"] > 0  # kept for the next start
        report(
            f"SIGTERM with a hung database ({sink_type}, timeout 120 s, drain 3 s)",
            exit_s=round(took, 1),
            kept=last["left"],
        )
    finally:
        hung.close()


def answered_while_pending(healthy: Unit, windows: list[tuple[float, float]]) -> list[bool]:
    """For each window (server clock) in which another unit's request was pending, whether the
    healthy unit was answered inside it: had the other unit held the healthy one up, it was not."""
    times = np.array(healthy.answered_at)
    return [bool(((times > a) & (times < b)).any()) for a, b in windows]


def test_a_device_that_always_fails_backs_off_and_is_logged_once(influxdb: InfluxServer, tmp_path: Path) -> None:
    units = {1: Unit(), 2: Unit(silent=True), 3: Unit(cut=True), 4: Unit(exception=11)}
    server = CountingServer(free_port(), units)
    server.start()
    try:
        agent = AgentProcess(tmp_path, agent_config(tmp_path, influxdb.url, server.port, [1, 2, 3, 4], poll="100ms"))
        agent.start()
        # Six failures each: past the doubling (0.5, 1, 2, 4 s) into the longest backoff.
        h = agent.wait_for("six failures each", lambda h: all(d["failures"] >= 6 for d in h["devices"][1:]))
        assert agent.terminate()[0] == 0
        log = agent.log_text()
        by_name = {d["name"]: d for d in h["devices"]}
        for name in ("u2", "u3", "u4"):
            assert by_name[name]["connected"] is False
            assert len(re.findall(rf"device {name} unreachable", log)) == 1, log[-3000:]
            # Backing off, not retrying every poll: the healthy device, on the same schedule, was
            # polled many times more often in the same time (counts of one run, whatever the box).
            assert by_name["u1"]["polls"] > 4 * by_name[name]["failures"], (by_name["u1"], by_name[name])
        # The silent device's requests (each waits 3 s for its timeout) never held the healthy one up.
        timeout_s = 1.0 * 2 + 1
        windows = [(t, t + timeout_s - 0.5) for t in units[2].requested_at[:-1]]
        held_up = answered_while_pending(units[1], windows)
        assert windows and all(held_up), (
            f"the healthy device waited during {held_up.count(False)} of its neighbour's timeouts"
        )
        report(
            "failing devices (silent, cut mid-reply, exception 11)",
            failures={n: by_name[n]["failures"] for n in ("u2", "u3", "u4")},
            log_lines_each=1,
            healthy_polls=by_name["u1"]["polls"],
            uptime_s=round(h["uptime_s"], 1),
        )
    finally:
        server.close()
        influxdb.query(f'DROP DATABASE "{DB}"', DB)


def test_slow_and_cut_devices_do_not_slow_the_others(influxdb: InfluxServer, tmp_path: Path) -> None:
    """While the slow device's request is pending (0.8 s each), both healthy devices are answered."""
    units = {1: Unit(), 2: Unit(), 3: Unit(delay_s=0.8), 4: Unit(cut=True)}
    server = CountingServer(free_port(), units)
    server.start()
    try:
        agent = AgentProcess(tmp_path, agent_config(tmp_path, influxdb.url, server.port, [1, 2, 3, 4], poll="50ms"))
        agent.start()
        agent.wait_for("ten slow replies", lambda h: h["devices"][2]["polls"] >= 10)
        last = agent.wait_for("health", lambda h: True)
        assert agent.terminate()[0] == 0
        slow = units[3]
        windows = list(zip(slow.requested_at, slow.answered_at, strict=False))
        for healthy in (units[1], units[2]):
            answered = answered_while_pending(healthy, windows)
            assert len(windows) >= 10 and all(answered), f"held up during {answered.count(False)} slow replies"
        report(
            "a slow (0.8 s) and a cutting device beside two healthy ones (50 ms polls)",
            slow_replies=len(windows),
            healthy_polls=[last["devices"][i]["polls"] for i in (0, 1)],
            uptime_s=round(last["uptime_s"], 1),
        )
    finally:
        server.close()
        influxdb.query(f'DROP DATABASE "{DB}"', DB)


def test_sigterm_during_an_outage_keeps_the_backlog(
    fresh_influxdb: InfluxServer, server: CountingServer, tmp_path: Path
) -> None:
    fresh_influxdb.stop()
    agent = AgentProcess(tmp_path, agent_config(tmp_path, fresh_influxdb.url, server.port, [1, 2]))
    agent.start()
    agent.wait_for("a backlog", lambda h: pending(h) > 1000)
    code, took = agent.terminate()
    assert code == 0 and took < 60
    first = stopped_line(agent)
    assert first["left"] > 0
    stored = stored_seqs(tmp_path / "store.sqlite3")
    fresh_influxdb.start()
    agent.start()
    agent.wait_for(
        "the backlog to drain", lambda h: h["sinks"][0]["ok"] and h["sinks"][0]["written"] > 0 and pending(h) < 500
    )
    assert agent.terminate()[0] == 0
    for device, seqs in stored.items():
        assert seqs <= set(landed_seqs(fresh_influxdb, device).tolist())
    report("SIGTERM during an InfluxDB outage", exit_s=round(took, 1), kept=first["left"], lost=0)


def test_device_restart_with_counter_reset_and_agent_restart(fresh_influxdb: InfluxServer, tmp_path: Path) -> None:
    """The device goes away and comes back with its counter at 0; then the agent restarts. The
    outage is unknown time, every window stays plausible, and no part is counted twice."""
    server = CountingServer(free_port(), {1: Unit(part_every=2)})
    server.start()
    try:
        cfg = agent_config(tmp_path, fresh_influxdb.url, server.port, [1], poll="100ms", oee=True)
        cfg["devices"][0]["oee"]["ideal_cycle_time"] = "0.2s"
        agent = AgentProcess(tmp_path, cfg)
        agent.start()
        agent.wait_for("polling", lambda h: h["devices"][0]["polls"] > 50)
        made_before = server.units[1].parts
        server.stop()
        agent.wait_for("the device to be down", lambda h: not h["devices"][0]["connected"])
        time.sleep(3)  # the outage lasts a while (nothing is waited for: the device is simply away)
        server.reset_counts()
        server.start()
        agent.wait_for("the device back", lambda h: h["devices"][0]["connected"] and h["devices"][0]["polls"] > 120)
        assert agent.terminate()[0] == 0
        agent.start()  # the analytics checkpoint continues the windows
        agent.wait_for("polling again", lambda h: h["devices"][0]["connected"] and h["devices"][0]["polls"] > 60)
        assert agent.terminate()[0] == 0
        made = made_before + server.units[1].parts
        rows = fresh_influxdb.query('SELECT * FROM "oee" WHERE "window" = \'10s\'', DB)[0]
        cols = rows["columns"]
        windows = [dict(zip(cols, v, strict=True)) for v in rows["values"]]
        assert sum(w["unknown_s"] for w in windows) >= 2.0, "the outage is unknown time"
        for w in windows:
            assert w["oee"] is None or w["oee"] <= 1.0
            # A part counts in the window of the poll that saw it; in a window cut short (the
            # agent stopped, or started, a fraction of a cycle into it) one part may weigh more
            # than the running time, so the bound allows one ideal cycle more than 1.3 x APT.
            assert w["ideal_produced_s"] <= 1.3 * w["actual_production_s"] + 0.2 + 1e-9, w
        produced = sum(w["produced"] or 0 for w in windows)
        unattributed = sum(w["unattributed_parts"] or 0 for w in windows)
        assert produced + unattributed <= made
        assert any(int(w["flags"]) & 2 for w in windows), "the re-baseline is flagged"
        report(
            "device restart with counter reset, then agent restart",
            parts_made=made,
            produced=produced,
            unattributed=unattributed,
            unknown_s=round(sum(w["unknown_s"] for w in windows), 1),
        )
    finally:
        server.close()
