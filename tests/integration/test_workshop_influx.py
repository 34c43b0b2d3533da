"""The agent on the demo workshop, streaming to a real InfluxDB (20 s wall, 10 min of plant time)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from edge_agent.demo.workshop import MICROSTOP_S
from tests.conftest import InfluxServer
from tests.integration.workshop import WorkshopRun, count_points, influx_sink, run_workshop

DB = "workshop"
REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def workshop(influxdb: InfluxServer, tmp_path_factory: pytest.TempPathFactory) -> WorkshopRun:
    tmp = tmp_path_factory.mktemp("workshop")
    return asyncio.run(run_workshop(tmp, [influx_sink(influxdb, DB, tmp)], wall_s=20.0))


def test_every_point_reached_influxdb_once(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    report = workshop.agent.health_report()
    assert report["buffer"]["pending_points"] == 0
    assert report["buffer"]["dropped"] == {}
    assert workshop.agent.points_produced > 10_000
    assert count_points(influxdb, DB) == workshop.agent.points_produced


def test_raw_values_of_every_device_are_there(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    series = influxdb.query('SELECT count("value") FROM "raw" GROUP BY "device", "signal"', DB)
    found = {(s["tags"]["device"], s["tags"]["signal"]) for s in series if s["values"][0][1] > 0}
    for name in ("A1", "A2", "A3", "B1", "B2", "B3"):
        for signal in ("state", "spindle_temp", "vibration", "power"):
            assert (name, signal) in found
    assert ("energy-meter", "energy") in found
    # The meter's float32 CDAB value is a plausible, rising energy reading.
    (energy,) = influxdb.query('SELECT first("value"), last("value") FROM "raw" WHERE "signal" = \'energy\'', DB)
    first, last = energy["values"][0][1:]
    assert 0 < first < last < 100


def test_uint16_counter_wrapped_and_oee_still_counted(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    (good,) = influxdb.query(
        'SELECT min("value"), max("value") FROM "raw" WHERE "device" = \'B1\' AND "signal" = \'good\'',
        DB,
    )
    low, high = good["values"][0][1:]
    assert low < 1000 and high > 65_000  # it passed 65535 during the run
    (made,) = influxdb.query('SELECT sum("good") FROM "oee" WHERE "machine" = \'B1\' AND "window" = \'1m\'', DB)
    engine = workshop.agent.pipeline.oee.engines["1m"]
    b1 = [m.name for m in workshop.agent.pipeline.machines].index("B1")
    span = (workshop.servers.plant_s(int(engine.first_ts[b1])), workshop.servers.plant_s(int(engine.accounted[b1])))
    truth = workshop.plant.truth("B1", *span)["good"]
    # Across the wrap the count stays right (a naive difference would lose 65,536 parts).
    assert truth > 50
    assert abs(made["values"][0][1] - truth) <= 2


def test_oee_matches_the_simulators_ground_truth(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    engine = workshop.agent.pipeline.oee.engines["1m"]
    names = [m.name for m in workshop.agent.pipeline.machines]
    rows = influxdb.query(
        'SELECT sum("actual_production_s"), sum("planned_busy_s"), sum("ideal_produced_s"), sum("ideal_good_s"), '
        'sum("good"), sum("produced"), sum("microstop_s"), sum("failures") FROM "oee" WHERE "window" = \'1m\' '
        'GROUP BY "machine"',
        DB,
    )
    assert sorted(r["tags"]["machine"] for r in rows) == sorted(names)
    microstops = failures = true_down = 0.0
    for r in rows:
        apt, pbt, ideal_produced, ideal_good, good, produced, micro, failed = r["values"][0][1:]
        microstops, failures = microstops + micro, failures + failed
        machine = r["tags"]["machine"]
        i = names.index(machine)
        span = workshop.servers.plant_s(int(engine.first_ts[i])), workshop.servers.plant_s(int(engine.accounted[i]))
        # States are seen to within a poll: an episode within a few seconds of the micro-stop
        # threshold may fall either side. The truth is taken both ways; the agent must agree
        # with one of them within 2 percentage points.
        truths = [workshop.plant.truth(machine, *span, MICROSTOP_S + d) for d in (-3.0, 0.0, 3.0)]
        agent = {
            "availability": apt / pbt,
            "performance": ideal_produced / apt,
            "quality": good / produced,
            "oee": ideal_good / pbt,
        }
        for k, v in agent.items():
            lo, hi = min(t[k] for t in truths), max(t[k] for t in truths)
            assert lo - 0.02 <= v <= hi + 0.02, f"{machine} {k}: agent {v:.4f}, truth {lo:.4f}..{hi:.4f}"
        assert truths[1]["produced"] > 50
        true_down += truths[1]["down_s"]
    # The demo's stops include micro-stops, and the agent sees them; failures when a machine broke down.
    assert microstops > 0
    assert (failures > 0) == (true_down > 0), (failures, true_down)


def test_agent_health_points(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    (series,) = influxdb.query(
        'SELECT last("devices_in_scope"), min("devices_connected"), last("dropped_points"), count("buffer_points") '
        'FROM "agent"',
        DB,
    )
    in_scope, connected_min, dropped, samples = series["values"][0][1:]
    assert in_scope == 7
    assert dropped == 0
    assert samples >= 20  # every 10 s of plant time over 10 minutes, and one at shutdown
    assert connected_min >= 0


def test_anomaly_scores_were_written_for_analog_signals(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    series = influxdb.query('SELECT count("score"), max("score") FROM "anomaly" GROUP BY "machine", "signal"', DB)
    found = {(s["tags"]["machine"], s["tags"]["signal"]): s["values"][0][1:] for s in series}
    assert set(found) == {
        (m, s)
        for m in ("A1", "A2", "A3", "B1", "B2", "B3")
        for s in ("spindle_temp", "vibration", "power", "_machine")  # _machine: the signals together
    }
    # The injected vibration spike on B1 (plant time 200 s to 203 s) stands out: five times the
    # alarm threshold (its score varies from run to run with the poll timing, 9 to 15 here).
    assert found[("B1", "vibration")][1] > 5


def test_an_alarm_for_each_injected_anomaly_and_none_elsewhere(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    """Each injected fault raises an alarm on its signal (and its machine's ``_machine`` alarm) that
    lasts until the fault ends and clears soon after; nothing else alarms."""
    series = influxdb.query('SELECT "active", "duration_s" FROM "alarm" GROUP BY "machine", "signal", "detector"', DB)
    plant_s = workshop.servers.plant_s
    alarms = []  # (machine, signal, detector, start plant s, end plant s or None while on)
    for s in series:
        tags = s["tags"]
        for t, active, duration in s["values"]:
            if active == 1:
                alarms.append([tags["machine"], tags["signal"], tags["detector"], plant_s(int(t)), None])
            else:  # the end of the alarm that started duration_s before
                start = plant_s(int(t) - int(duration * 1e9))
                match = [a for a in alarms if a[:3] == [tags["machine"], tags["signal"], tags["detector"]]]
                match = [a for a in match if a[4] is None and abs(a[3] - start) < 1.0] or [None]
                if match[0] is not None:
                    match[0][4] = plant_s(int(t))
                else:
                    alarms.append([tags["machine"], tags["signal"], tags["detector"], start, plant_s(int(t))])
    run_end = plant_s(workshop.end_ns)
    # Anomalies that began early enough for the detectors to see them in this run.
    expected = [a for a in workshop.plant.anomalies if a.start_s < run_end - 120]
    assert len(expected) >= 2, f"the run covers too few anomalies: {workshop.plant.anomalies}"

    def during(a: Any, x: list[Any]) -> bool:
        return x[0] == a.machine and x[1] in (a.signal, "_machine") and a.start_s <= x[3] <= a.end_s + 30

    for a in expected:
        caught = [x for x in alarms if during(a, x) and x[1] == a.signal]
        assert caught, f"no alarm for {a}; alarms: {alarms}"
        assert [x for x in alarms if during(a, x) and x[1] == "_machine"], f"no _machine alarm for {a}"
        if a.end_s - a.start_s >= 60:
            # A fault that lasts: its alarm holds to the fault's end (or the run's), and clears
            # within 90 s of it.
            last_end = max((x[4] if x[4] is not None else run_end) for x in caught)
            assert last_end >= min(a.end_s, run_end) - 30, f"{a}: alarm until {last_end:.0f} s; {caught}"
            assert last_end <= a.end_s + 90, f"{a}: alarm until {last_end:.0f} s; {caught}"
    for machine, signal, detector, at, _end in alarms:
        assert any(
            machine == a.machine and signal in (a.signal, "_machine") and a.start_s <= at <= a.end_s + 30
            for a in workshop.plant.anomalies
        ), f"false alarm: {detector} on {machine}.{signal} at plant time {at:.0f} s"


#: The dashboard's variables in the order Grafana resolves them (each may use the ones before).
VARIABLE_ORDER = ("site", "workshop", "line", "machine", "signal", "window")


def substitute(query: str, run: WorkshopRun, chosen: dict[str, str], interval: str = "1m") -> str:
    """A panel or variable query as Grafana sends it, for the run's time range (stands in for
    Grafana, which cannot run here)."""
    # A shift's point is stamped at the shift's start, hours before the run: its panel looks back 7 days.
    before = 7 * 86400 if "'shift'" in query else 60
    query = (
        query.replace("$timeFilter", f"time >= {run.start_ns - before * 10**9} AND time <= {run.end_ns + 60 * 10**9}")
        .replace("${__to}", str((run.end_ns + 60 * 10**9) // 10**6))
        .replace("$__interval", interval)
    )
    for name in VARIABLE_ORDER:
        query = query.replace(f"${name}", chosen.get(name, ".*"))
    assert "$" not in query.replace("$/", ""), f"a variable is left in {query}"
    return query


def dashboard() -> dict[str, Any]:
    return json.loads((REPO / "dashboards" / "plant-overview.json").read_text(encoding="utf-8"))


def resolve_variables(influxdb: InfluxServer, db: str, run: WorkshopRun) -> dict[str, list[str]]:
    """Every query variable's values, each resolved with the ones before it set to All."""
    found: dict[str, list[str]] = {}
    variables = {v["name"]: v for v in dashboard()["templating"]["list"] if v["type"] == "query"}
    assert list(variables) == list(VARIABLE_ORDER)
    for name in VARIABLE_ORDER:
        series = influxdb.query(substitute(variables[name]["query"], run, {}), db)
        found[name] = [value for s in series for _, value in s["values"]]
        assert found[name], f"variable {name} lists nothing"
    return found


def check_every_panel(influxdb: InfluxServer, db: str, run: WorkshopRun) -> dict[str, list[str]]:
    """Every panel query returns data (and no NaN) for All machines and for two of them, with the
    OEE window the variable offers; stats return intervals to draw their sparkline from."""
    values = resolve_variables(influxdb, db, run)
    (window,) = values["window"]  # one OEE grid: never two summed
    # Two machines chosen (Grafana sends (a|b)): one with an alarm that ended (an alarm lasts as
    # long as its fault: a drift still on at the end of the run has no end yet), one with OEE.
    ended = influxdb.query('SELECT "duration_s" FROM "alarm" WHERE "active" = 0 GROUP BY "machine"', db)
    alarmed = ended[0]["tags"]["machine"]
    with_oee = influxdb.query('SHOW TAG VALUES FROM "oee" WITH KEY = "machine"', db)[0]["values"][-1][1]
    panels = dashboard()["panels"]
    assert len(panels) >= 10
    for p in panels:
        interval = window if p.get("interval") == "$window" else p.get("interval", "1m")
        for t in p["targets"]:
            for machine in (".*", f"({alarmed}|{with_oee})"):
                signals = values["signal"] if p.get("repeat") == "signal" else [".*"]
                for signal in signals:
                    chosen = {"window": window, "machine": machine, "signal": signal}
                    query = substitute(t["query"], run, chosen, interval)
                    series = influxdb.query(query, db)
                    got = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
                    if p.get("repeat") and not got:
                        if machine != ".*":
                            continue  # a signal of other machines
                        # A text signal (a serial number) has no value to draw.
                        assert influxdb.query(f'SELECT count("text") FROM "raw" WHERE "signal" = \'{signal}\'', db), (
                            f"signal {signal} has neither values nor texts"
                        )
                        continue
                    if not got and "baseline_" in query and not run.config["kpis"].get("baseline"):
                        continue  # no baseline set: nothing to compare with
                    if not got and p["title"].startswith("Open alarms") and not open_alarms(influxdb, db, machine):
                        continue  # nothing abnormal at the end of the run (checked against the points below)
                    assert got, f"panel {p['title']!r} returned no data for {chosen}: {query}"
                    assert all(not (isinstance(v, float) and math.isnan(v)) for v in got), query
                    if p["type"] == "stat":
                        assert sum(len(s["values"]) for s in series) >= 2, f"{p['title']!r}: no sparkline"
    return values


def open_alarms(influxdb: InfluxServer, db: str, machine: str = ".*") -> set[tuple[str, str, str, int]]:
    """(machine, signal, detector, start ns) of the alarms whose latest point says active = 1,
    computed here from every alarm point."""
    latest: dict[tuple[str, str, str], tuple[int, float]] = {}
    series = influxdb.query('SELECT "active" FROM "alarm" GROUP BY "machine", "signal", "detector"', db)
    for s in series:
        key = (s["tags"]["machine"], s["tags"]["signal"], s["tags"]["detector"])
        for ts, active in s["values"]:
            if key not in latest or ts >= latest[key][0]:
                latest[key] = (ts, active)
    pattern = re.compile(f"^{machine}$")
    return {(*k, ts) for k, (ts, active) in latest.items() if active == 1 and pattern.match(k[0])}


def test_open_alarms_panel_lists_the_alarms_still_active(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    """The demo's drift is still on at the end of the run: its alarm is open. The panel lists
    exactly the alarms whose latest point is a start, each at its start time, and none that ended."""
    (panel,) = [p for p in dashboard()["panels"] if p["title"].startswith("Open alarms")]
    expected = open_alarms(influxdb, DB)
    assert expected, "no alarm open at the end of the demo run"
    query = substitute(panel["targets"][0]["query"], workshop, {})
    got = {
        (s["tags"]["machine"], s["tags"]["signal"], s["tags"]["detector"], row[0])
        for s in influxdb.query(query, DB)
        for row in s["values"]
    }
    assert got == expected
    # Seen from a range that ends before the first alarm started, nothing is open.
    first = min(ts for *_, ts in expected)
    early = panel["targets"][0]["query"].replace("${__to}", str((first - 10**9) // 10**6))
    early = substitute(early, workshop, {})
    before = {
        (s["tags"]["machine"], s["tags"]["signal"], s["tags"]["detector"], row[0])
        for s in influxdb.query(early, DB)
        for row in s["values"]
    }
    assert not before & expected


def test_every_dashboard_query_returns_data(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    values = check_every_panel(influxdb, DB, workshop)
    assert values["window"] == ["1m"]
    assert {"spindle_temp", "vibration", "power", "energy"} <= set(values["signal"])
    # The repeated signal panel's legend names each line's unit (the profile's, as a tag).
    (panel,) = [p for p in dashboard()["panels"] if p.get("repeat") == "signal"]
    assert panel["targets"][0]["alias"] == "$tag_machine $tag_unit"
    query = substitute(panel["targets"][0]["query"], workshop, {"signal": "vibration"})
    assert {s["tags"]["unit"] for s in influxdb.query(query, DB)} == {"mm/s"}
    query = substitute(panel["targets"][0]["query"], workshop, {"signal": "state"})
    assert {s["tags"]["unit"] for s in influxdb.query(query, DB)} == {""}  # no unit: an empty legend part


def test_dashboards_on_another_plant(influxdb: InfluxServer, tmp_path: Path) -> None:
    """The dashboards with settings other than the demo's: a 30 s OEE window, another site and
    line names with spaces and CJK, a signal renamed: every panel still returns data."""

    def edit(cfg: dict[str, Any]) -> None:
        cfg["agent"]["site"] = "Suzhou plant 2"
        cfg["analytics"]["oee_window"] = "30s"
        del cfg["kpis"]["baseline"]
        for device in cfg["devices"]:
            device["line"] = {"line-a": "装配 A", "line-b": "machining B"}.get(device["line"], device["line"])

    db = "otherplant"
    run = asyncio.run(run_workshop(tmp_path, [influx_sink(influxdb, db, tmp_path)], wall_s=12.0, edit=edit))
    values = check_every_panel(influxdb, db, run)
    assert values["window"] == ["30s"]
    assert values["site"] == ["Suzhou plant 2"]
    assert "装配 A" in values["line"]


def test_stats_have_units() -> None:
    """Every stat says what its number is (percent, seconds, kWh, a count)."""
    for p in dashboard()["panels"]:
        if p["type"] == "stat":
            assert p["fieldConfig"]["defaults"].get("unit"), f"stat {p['title']!r} has no unit"


def test_loss_pareto_counts_only_losses() -> None:
    """Breaks, planned stops and unknown time are outside planned busy time: not in the Pareto,
    shown apart."""
    (pareto,) = [p for p in dashboard()["panels"] if "Pareto" in p["title"]]
    query = pareto["targets"][0]["query"]
    for field in ("down_s", "delay_s", "microstop_s", "setup_s"):
        assert f'"{field}"' in query
    for field in ("break_s", "planned_stop_s", "unknown_s"):
        assert f'"{field}"' not in query
    apart = " ".join(t["query"] for p in dashboard()["panels"] for t in p["targets"] if "Pareto" not in p["title"])
    assert all(f'sum("{f}")' in apart for f in ("break_s", "planned_stop_s", "unknown_s"))


def test_no_panel_names_the_demos_settings() -> None:
    text = json.dumps(dashboard(), ensure_ascii=False)
    for demo in ("'1m'", "spindle_temp", "demo-site", "line-a", "celsius"):
        assert demo not in text, f"the dashboard names the demo's {demo}"


def test_dashboard_ratios_agree_with_the_agent(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    (oee_stat,) = [p for p in dashboard()["panels"] if p["title"].startswith("OEE 设备")]
    (series,) = influxdb.query(substitute(oee_stat["targets"][0]["query"], workshop, {"window": "1m"}), DB)
    plant_oee = series["values"][-1][1]  # the running ratio's last value: the whole range's
    summary = workshop.agent.pipeline.summary()
    ideal_good = sum(float(r["ideal_good_s"]) for r in summary)
    pbt = sum(float(r["planned_busy_s"]) for r in summary)
    assert plant_oee == pytest.approx(ideal_good / pbt, rel=1e-9)
    # Each line: its machines' time elements summed, then divided (never an average of ratios).
    (by_line,) = [p for p in dashboard()["panels"] if p["title"].startswith("OEE by line")]
    for series in influxdb.query(substitute(by_line["targets"][0]["query"], workshop, {"window": "1m"}), DB):
        line = series["tags"]["line"]
        oee = series["values"][0][series["columns"].index("oee")]
        rows = [r for r in summary if r["line"] == line]
        assert oee == pytest.approx(
            sum(float(r["ideal_good_s"]) for r in rows) / sum(float(r["planned_busy_s"]) for r in rows), rel=1e-9
        )


def test_committed_dashboard_json_is_current() -> None:
    from edge_agent.dashboards.build import DASHBOARDS, render  # noqa: PLC0415

    for name in DASHBOARDS:
        committed = (REPO / "dashboards" / name).read_text(encoding="utf-8")
        assert render(name) == committed, f"run 'python -m edge_agent.dashboards.build' and commit {name}"


def test_schema_doc_lists_every_oee_and_kpi_field() -> None:
    from edge_agent.schema import KPI_FIELDS, OEE_FIELDS  # noqa: PLC0415

    doc = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
    for name in OEE_FIELDS:
        assert re.search(rf"`{name}`", doc), f"docs/schema.md does not describe oee field {name}"
    kpis = doc[doc.index("## `kpi`") :]
    for name in KPI_FIELDS:
        assert re.search(rf"`{name}`", kpis), f"docs/schema.md does not describe kpi field {name}"


def test_workshop_kpis_reach_influxdb(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    (series,) = influxdb.query(
        'SELECT sum("devices_seen") / sum("devices_in_scope"), sum("samples_valid") / sum("samples_expected"), '
        'sum("devices_on_cloud") / sum("devices_in_scope"), sum("points_acked") / sum("points_produced"), '
        'last("continuous_cloud_days"), sum("good"), sum("energy_kwh"), count("devices_in_scope"), '
        'max("upload_latency_p95_s"), last("devices_in_scope") FROM "kpi"',
        DB,
    )
    networking, completeness, on_cloud, cloud, days, good, energy, reports, p95, in_scope = series["values"][0][1:]
    figures = dict(
        zip(
            ("networking", "completeness", "on_cloud", "cloud", "days", "good", "energy", "reports", "p95"),
            series["values"][0][1:],
            strict=False,
        )
    )
    # Every device answers: each interval sees all 7 (the first interval may start before some answered).
    assert in_scope == 7 and networking >= 0.9, figures
    assert 0.8 <= completeness <= 1.0, figures
    # The database acknowledged points of every device, except in the first interval.
    assert on_cloud >= 0.5, figures
    # Points are acknowledged within the run (the last drain comes after the last report).
    assert 0.5 <= cloud <= 1.0, figures
    # Every day of the run had acknowledged writes: one day, or two when the run crossed midnight
    # in the KPI's time zone (CI once started at 23:52 and ended at 00:02).
    zone = workshop.agent.kpis.zone
    first, last = (dt.datetime.fromtimestamp(ns / 1e9, zone).date() for ns in (workshop.start_ns, workshop.end_ns))
    assert days == (last - first).days + 1 or days == (last - first).days, figures
    assert days >= 1 and 0 < p95 < 10, figures
    # The KPI production counts are the machines' closed OEE windows, summed: the same parts.
    (oee,) = influxdb.query('SELECT sum("good") FROM "oee" WHERE "window" = \'1m\'', DB)
    assert good == oee["values"][0][1]
    assert energy > 0 and reports >= 5, figures


def test_machine_state_is_the_agents_mapped_state(workshop: WorkshopRun, influxdb: InfluxServer) -> None:
    """Each state reading of a machine is also written mapped (0 running .. 4 planned_stop, 5
    unknown), whatever codes its device uses: what the state timeline shows."""
    from edge_agent.demo.plant import STATE_CODES  # noqa: PLC0415

    order = ["running", "idle", "down", "setup", "planned_stop", "unknown"]
    raw = influxdb.query('SELECT "value" FROM "raw" WHERE "signal" = \'state\' GROUP BY "machine"', DB)
    mapped = influxdb.query('SELECT "state" FROM "machine_state" GROUP BY "machine"', DB)
    by_machine = {s["tags"]["machine"]: dict(s["values"]) for s in mapped}
    assert set(by_machine) == {s["tags"]["machine"] for s in raw}
    compared = 0
    for s in raw:
        states = by_machine[s["tags"]["machine"]]
        for ts, code in s["values"]:
            if code is not None and ts in states:
                assert states[ts] == order.index(STATE_CODES[int(code)]), (s["tags"], ts, code)
                compared += 1
    assert compared > 100


def test_monthly_report_from_influxdb(workshop: WorkshopRun, influxdb: InfluxServer, tmp_path: Path) -> None:
    """``edge-agent report --month`` on the run's month: the KPI figures are the ratios of sums the
    database holds, with charts embedded as PNG."""
    import base64  # noqa: PLC0415
    import datetime as dt  # noqa: PLC0415

    from edge_agent.cli import main  # noqa: PLC0415

    month = dt.datetime.fromtimestamp(workshop.start_ns / 1e9, dt.UTC).strftime("%Y-%m")
    out = tmp_path / "report.html"
    where = ["--influx-url", influxdb.url, "--db", DB, "--timezone", "UTC", "--out", str(out)]
    assert main(["report", "--month", month, *where]) == 0
    page = out.read_text(encoding="utf-8")
    (series,) = influxdb.query(
        'SELECT sum("ideal_good_s") / sum("planned_busy_s") FROM "oee" WHERE "window" = \'1m\'', DB
    )
    oee = series["values"][0][1]
    assert f"<td>OEE 设备综合效率</td><td>{100 * oee:.1f} %</td>" in page
    (kpi,) = influxdb.query('SELECT sum("devices_seen") / sum("devices_in_scope") FROM "kpi"', DB)
    assert f"<td>Networking rate 设备联网率</td><td>{100 * kpi['values'][0][1]:.1f} %</td>" in page
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 4  # by day: OEE, networking, energy; the loss Pareto
    assert base64.b64decode(images[0].split('"')[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", "--month", "1999-01", *where]) == 1
