"""Configuration and profile errors: file, line, field path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import load_config, load_profile, parse_duration
from edge_agent.config.yaml_source import ConfigError

GOOD = """\
agent:
  id: box-1
  site: wuxi
  workshop: machining
sinks:
  - type: influxdb_v1
    url: http://127.0.0.1:8086
    database: edge
devices:
  - name: press-1
    profile: demo-press-modbus
    endpoint: modbus://127.0.0.1:5020
    unit_id: 1
    line: line-b
    oee:
      state: {signal: state, map: {1: running, 2: idle, 3: down}}
      counters: {good: {signal: good, modulus: 65536}}
      ideal_cycle_time: 2s
"""


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_good_config_loads(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, GOOD))
    assert loaded.config.devices[0].oee is not None
    assert loaded.config.devices[0].oee.ideal_cycle_time == 2.0


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, GOOD.replace("  site: wuxi", "  site: [wuxi")))
    assert "agent.yaml:" in msg and "YAML syntax error" in msg


def test_wrong_type_names_file_line_and_path(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, GOOD.replace("unit_id: 1", "unit_id: one")))
    assert msg.startswith(f"{tmp_path / 'agent.yaml'}:13: devices[0].unit_id:")
    assert "'one'" in msg


def test_unknown_field_says_remove_it(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, GOOD.replace("    line: line-b", "    line: line-b\n    colour: red")))
    assert ":15: devices[0].colour: unknown field" in msg


def test_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, GOOD.replace("profile: demo-press-modbus", "profile: acme-9000")))
    assert ":11: devices[0].profile: unknown profile 'acme-9000'" in msg
    assert "demo-press-modbus" in msg


def test_signal_missing_from_profile(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, GOOD.replace("good: {signal: good", "good: {signal: goods")))
    assert "devices[0].oee.counters.good.signal: signal 'goods' is not in profile" in msg


def test_bad_duration_and_bad_state_name(tmp_path: Path) -> None:
    text = GOOD.replace("ideal_cycle_time: 2s", "ideal_cycle_time: fast").replace("3: down", "3: broken")
    found = problems(write(tmp_path, text))
    assert any("devices[0].oee.ideal_cycle_time" in p and "duration" in p for p in found)
    assert any("16: devices[0].oee.state.map[3]" in p for p in found)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD + GOOD.split("devices:\n")[1].replace("press-1", "press-1").replace(
        "profile: demo-press-modbus", "profile: nope"
    )
    found = problems(write(tmp_path, text))
    assert any("already used" in p for p in found)
    assert any("unknown profile 'nope'" in p for p in found)


def test_anomaly_override_for_an_unknown_signal_is_reported(tmp_path: Path) -> None:
    text = GOOD + "analytics:\n  anomaly:\n    signals:\n      press-1.spindle_temps: {level: {grace: 10}}\n"
    (msg,) = problems(write(tmp_path, text))
    assert ":22: analytics.anomaly.signals.press-1.spindle_temps: device 'press-1' has no signal 'spindle_temps'" in msg
    ok = GOOD + "analytics:\n  anomaly:\n    signals:\n      press-1.spindle_temp: {stuck: {samples: 120}}\n"
    assert load_config(write(tmp_path, ok, "ok.yaml")).config.analytics.anomaly.signals


def test_alarm_hold_settings_out_of_range_name_the_field(tmp_path: Path) -> None:
    """The alarm's hold, departure and acceptance settings, each out of range: one message each."""
    text = GOOD + (
        "analytics:\n  anomaly:\n    alarm: {hold_level: 0, hold_spread: 1, accept_after: -1,"
        " departure: -2, hold_min: -5}\n    machine_score: maybe\n"
    )
    found = problems(write(tmp_path, text))
    for field in ("hold_level", "hold_spread", "accept_after", "departure", "hold_min"):
        assert any(f":21: analytics.anomaly.alarm.{field}:" in m for m in found), (field, found)
    assert any(":22: analytics.anomaly.machine_score:" in m for m in found), found
    assert len(found) == 6, found


def test_profile_errors_name_the_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: p\nprotocol: modbus\nfields:\n  - {name: a, table: holding, address: 0, type: float128}\n",
        "p.yaml",
    )
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    (msg,) = info.value.problems
    assert msg.startswith(f"{path}:4: fields[0].type:")


def test_durations() -> None:
    assert [parse_duration(v) for v in ("500ms", "2s", "5m", "1h", "1.5 d", 0, "0")] == [
        0.5,
        2.0,
        300.0,
        3600.0,
        129600.0,
        0.0,
        0.0,
    ]
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")
    # A bare number is ambiguous (seconds? milliseconds?): the message names the fix.
    for bare in (1, 2.5, "1"):
        with pytest.raises(ValueError, match=r"needs a unit: write (1|2\.5)s"):
            parse_duration(bare)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(write(tmp_path, GOOD))]) == 0
    assert capsys.readouterr().out.strip() == "ok"
    bad = write(tmp_path, GOOD.replace("unit_id: 1", "unit_id: 999"), "bad.yaml")
    assert main(["config", "check", str(bad)]) == 2
    assert "devices[0].unit_id" in capsys.readouterr().err
    builtin = sorted((Path(__file__).parents[2] / "collectors" / "profiles").glob("*.yaml"))
    assert main(["profile", "check", *map(str, builtin)]) == 0
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 2


def test_oee_settings_that_cannot_work_are_reported(tmp_path: Path) -> None:
    text = GOOD.replace("      ideal_cycle_time: 2s", "      ideal_cycle_time: 2s\n      stale_after: 5s").replace(
        "    line: line-b", "    line: line-b\n    poll_interval: 10s"
    )
    (msg,) = problems(write(tmp_path, text))
    assert "devices[0].oee.stale_after: stale_after (5 s) must be longer than poll_interval (10 s)" in msg
    text = GOOD.replace(
        "      ideal_cycle_time: 2s",
        "      ideal_cycle_time: 2s\n      microstop_threshold: 2m\n"
        "      shifts: {timezone: Asia/Shanghai, schedule: [{name: day, start: '08:00', end: '20:00'}]}",
    )
    (msg,) = problems(write(tmp_path, text))
    assert "devices[0].oee.shifts: the agent's shifts are set once, under analytics.shifts" in msg
    text = GOOD + (
        "analytics:\n  shifts:\n    timezone: Asia/Shangai\n    schedule: [{name: day, start: '08:00', end: '20:00'}]\n"
        "    breaks: [{start: '12:00', end: 'noon'}]\n"
    )
    found = problems(write(tmp_path, text))
    assert any(":21: analytics.shifts.timezone: unknown time zone 'Asia/Shangai'" in p for p in found), found
    assert any(":23: analytics.shifts.breaks[0].end" in p for p in found), found


PROFILE_WITH_EVERY_KIND_OF_PROBLEM = """\
name: meter
protocol: modbus
fields:
  - {name: volts, table: holding, address: 0, type: float32}
  - {name: amps, table: holding, address: 1, type: float32}
  - {name: serial, table: holding, address: 10, type: string}
  - {name: volts, table: holding, address: 20, type: uint16}
  - {name: watts, table: holding, address: 30, type: float96}
  - {name: hz, table: holding, address: 40, type: uint16, bit: 3}
"""


def test_profile_check_reports_every_problem_in_one_pass_at_each_field(tmp_path: Path) -> None:
    """Types, missing keys, repeats and overlaps together, each at its own line (not at line 1)."""
    path = write(tmp_path, PROFILE_WITH_EVERY_KIND_OF_PROBLEM, "meter.yaml")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    problems = info.value.problems
    by_line = {p.split(":")[1] for p in problems}
    assert {"5", "6", "7", "8", "9"} <= by_line, problems
    joined = "\n".join(problems)
    assert "overlaps 'volts' (holding 0..1, fields[0])" in joined
    assert "'volts' repeats fields[0]" in joined
    assert "needs length" in joined
    assert "float96" in joined
    assert "set type: bool" in joined


def test_modicon_registers_are_converted_and_lookalike_addresses_warned(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: m\nprotocol: modbus\nfields:\n"
        "  - {name: a, register: 40001}\n"
        "  - {name: b, register: 300011, type: float32}\n"
        "  - {name: c, table: holding, address: 40101}\n",
        "m.yaml",
    )
    warnings: list[str] = []
    profile = load_profile(path, warnings)
    places = [(f.table, f.address) for f in profile.fields]  # type: ignore[attr-defined]
    assert places == [("holding", 0), ("input", 10), ("holding", 40101)]
    (warning,) = warnings
    assert warning.startswith(f"{path}:6: fields[2].address:") and "register: 40101" in warning
    bad = write(tmp_path, "name: m\nprotocol: modbus\nfields:\n  - {name: a, register: 50001}\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: fields\[0\].*not a Modicon register"):
        load_profile(bad)


def test_a_broken_profile_no_device_uses_is_a_warning(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    write(profiles, "name: unused\nprotocol: modbus\nfields:\n  - {name: a, table: holding, address: x}\n", "u.yaml")
    config = write(tmp_path, GOOD + "profile_dirs: [profiles]\n")
    loaded = load_config(config)
    assert any("u.yaml:4" in w and "no device uses" in w for w in loaded.warnings)
    used = GOOD.replace("demo-press-modbus", "unused") + "profile_dirs: [profiles]\n"
    with pytest.raises(ConfigError, match=r"u.yaml:4: fields\[0\].address"):
        load_config(write(tmp_path, used, "used.yaml"))


def test_a_bare_number_duration_in_a_file_needs_a_unit(tmp_path: Path) -> None:
    text = GOOD.replace("    unit_id: 1\n", "    unit_id: 1\n    poll_interval: 1\n")
    with pytest.raises(ConfigError, match=r"devices\[0\].poll_interval: a duration needs a unit: write 1s"):
        load_config(write(tmp_path, text))


# -- hostile and absurd input (issue 23) ------------------------------------------------------


def test_an_alias_bomb_is_refused_quickly_with_its_line(tmp_path: Path) -> None:
    """553 bytes that expand to billions of values: refused from the node graph, in linear time."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 10):
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    (msg,) = problems(write(tmp_path, GOOD + "\n".join(lines) + "\n"))
    assert "aliases here expand to more than" in msg and "agent.yaml:" in msg


def test_deep_nesting_is_a_clear_error_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "agent: " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nesting deeper than 64 levels" in err and "Traceback" not in err


def test_aliases_within_reason_still_work(tmp_path: Path) -> None:
    text = GOOD.replace("    oee:\n", "    oee: &press\n") + (
        "  - {name: press-2, profile: demo-press-modbus, endpoint: 'modbus://127.0.0.1:5020', unit_id: 2, "
        "line: line-b, oee: *press}\n"
    )
    loaded = load_config(write(tmp_path, text))
    assert loaded.config.devices[1].oee == loaded.config.devices[0].oee


@pytest.mark.parametrize(
    ("replace", "secret"),
    [
        ("url: http://127.0.0.1:8086", "url: htp://admin:PASSWORD-9@127.0.0.1:8086"),
        ("database: edge", "database: edge\n    username: admin\n    password: 739164825510"),
    ],
)
def test_complaints_never_echo_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], replace: str, secret: str
) -> None:
    path = write(tmp_path, GOOD.replace(replace, secret))
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sinks[0]" in err
    assert "PASSWORD-9" not in err and "739164825510" not in err


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("scale", ".nan", "finite"),
        ("scale", ".inf", "finite"),
        ("scale", "1e308", "out of reach"),
        ("scale", "0", "scale of 0"),
        ("offset", "-1e300", "not a measurement"),
        ("high", "1e20", "not a measurement"),
    ],
)
def test_absurd_profile_numbers_are_refused_with_the_fix(tmp_path: Path, field: str, value: str, says: str) -> None:
    text = (
        "name: p\nprotocol: modbus\nfields:\n"
        f"  - {{name: t, table: holding, address: 0, type: int16, {field}: {value}}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_profile(write(tmp_path, text, "p.yaml"))
    (msg,) = info.value.problems
    assert f"fields[0].{field}" in msg and says in msg, msg


@pytest.mark.parametrize("interval", ["0.000001ms", "0.5ms", "999999d"])
def test_durations_out_of_reach_are_refused(tmp_path: Path, interval: str) -> None:
    (msg,) = problems(
        write(tmp_path, GOOD.replace("    line: line-b\n", f"    line: line-b\n    poll_interval: {interval}\n"))
    )
    assert "devices[0].poll_interval" in msg and ("1 ms" in msg or "366 days" in msg), msg


def test_two_sinks_with_one_identity_are_refused(tmp_path: Path) -> None:
    second = "  - type: influxdb_v1\n    url: http://127.0.0.1:8086/\n    database: edge\n    batch_size: 100\n"
    (msg,) = problems(write(tmp_path, GOOD.replace("devices:\n", second + "devices:\n", 1)))
    assert "sinks[1]" in msg and "same place as sinks[0]" in msg


def test_sinks_that_differ_in_retention_policy_or_user_are_two_destinations(tmp_path: Path) -> None:
    second = "  - type: influxdb_v1\n    url: http://127.0.0.1:8086\n    database: edge\n    retention_policy: week\n"
    third = "  - type: influxdb_v1\n    url: http://127.0.0.1:8086\n    database: edge\n    username: bob\n"
    loaded = load_config(write(tmp_path, GOOD.replace("devices:\n", second + third + "devices:\n", 1)))
    names = [s.identity() for s in loaded.config.sinks]
    assert len(set(names)) == 3
    assert names[1].endswith("?rp=week") and names[2].endswith("?user=bob")


# -- read as meant (issue 21) ------------------------------------------------------------------


def test_times_are_times_and_yes_is_a_word(tmp_path: Path) -> None:
    """YAML 1.1 reads 20:00 as 1200 (base 60): the day shift silently became 08:00-00:20."""
    shifts = (
        "analytics:\n  shifts:\n    timezone: Asia/Shanghai\n    schedule:\n"
        "      - {name: day, start: 08:00, end: 20:00}\n      - {name: night, start: 20:00, end: 08:00}\n"
    )
    loaded = load_config(write(tmp_path, GOOD.replace("sinks:\n", shifts + "sinks:\n", 1)))
    assert loaded.config.analytics.shifts is not None
    day = loaded.config.analytics.shifts.schedule[0]
    assert (day.start.hour, day.end.hour, day.end.minute) == (8, 20, 0)


def test_a_key_given_twice_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("    unit_id: 1\n", "    unit_id: 1\n    unit_id: 2\n") + "agent:\n  id: again\n"
    found = problems(write(tmp_path, text))
    assert any(
        p.startswith(f"{tmp_path / 'agent.yaml'}:14: devices[0].unit_id: given twice (first at line 13)") for p in found
    )
    assert any(": agent: given twice (first at line 1)" in p for p in found)


def test_every_problem_comes_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_VARIABLE", raising=False)
    text = (
        GOOD.replace("  workshop: machining\n", "  workshop: machining\n  drain: ${NO_SUCH_VARIABLE}\n")
        .replace("unit_id: 1", "unit_id: one")
        .replace("devices:\n", "profile_dirs: [no-such-folder]\ndevices:\n", 1)
    )
    found = problems(write(tmp_path, text))
    assert len(found) == 3, found
    assert "NO_SUCH_VARIABLE is not set" in found[0]
    assert "devices[0].unit_id" in found[1]
    assert "profile_dirs[0]: no folder" in found[2]


@pytest.mark.parametrize(("text", "seconds"), [("1h30m", 5400.0), ("2m 30s", 150.0), ("1d12h", 129600.0)])
def test_durations_add_up_like_go_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_port_out_of_range_is_named(tmp_path: Path) -> None:
    (msg,) = problems(write(tmp_path, GOOD.replace("modbus://127.0.0.1:5020", "modbus://127.0.0.1:99999")))
    assert "devices[0].endpoint: port 99999 is out of range: a port is 1 to 65535" in msg


def test_a_v2_sink_without_a_token_is_refused(tmp_path: Path) -> None:
    v2 = "  - type: influxdb_v2\n    url: http://127.0.0.1:8086\n    org: plant\n    bucket: edge\n"
    (msg,) = problems(write(tmp_path, GOOD.replace("devices:\n", v2 + "devices:\n", 1)))
    assert "sinks[1].token: required field is missing" in msg


@pytest.mark.parametrize(
    ("node", "says"),
    [("ns=2;i=abc", "a numeric identifier (i=) is a whole number"), ("ns=2;g=1234", "a GUID identifier (g=)")],
)
def test_a_malformed_node_id_is_refused_with_the_fix(tmp_path: Path, node: str, says: str) -> None:
    text = f"name: p\nprotocol: opcua\nnodes:\n  - {{name: t, node: '{node}'}}\n"
    with pytest.raises(ConfigError) as info:
        load_profile(write(tmp_path, text, "p.yaml"))
    assert says in info.value.problems[0]


def test_browse_refuses_an_endpoint_that_is_not_opc_ua(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "browse", "http://10.0.0.7:4840", "--out", "x.yaml"]) == 2
    assert "is not an OPC UA endpoint: write opc.tcp://" in capsys.readouterr().err


def test_config_show_fills_every_default_hides_secrets_and_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOW_PASSWORD", "Show-Secret-81")
    text = GOOD.replace("database: edge", "database: edge\n    username: bob\n    password: ${SHOW_PASSWORD}")
    assert main(["config", "show", str(write(tmp_path, text))]) == 0
    shown = capsys.readouterr().out
    assert "Show-Secret-81" not in shown and "password: '***'" in shown
    assert "poll_interval: 1s" in shown and "drain: 8s" in shown and "synchronous: normal" in shown
    # What it shows is a configuration the agent reads the same way (the secret put back).
    again = load_config(write(tmp_path, shown.replace("'***'", "${SHOW_PASSWORD}"), "shown.yaml"))
    assert again.config == load_config(tmp_path / "agent.yaml").config


def test_a_device_tag_the_agent_sets_itself_is_refused(tmp_path: Path) -> None:
    """``tags: {machine: ...}`` would be overwritten silently by the agent's own machine tag."""
    text = GOOD.replace("    line: line-b", "    line: line-b\n    tags: {machine: M7, unit: cell-3, asset_id: A-1}")
    (msg,) = problems(write(tmp_path, text))
    assert "devices[0].tags: " in msg
    assert "the agent sets the tag machine, unit itself: rename it in tags (e.g. machine_id)" in msg


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('    line: "line\\nb"', "devices[0].line"),  # a newline: line protocol cannot carry it
        ('    line: line-b\n    tags: {"bad key": x}', "devices[0].tags.bad key"),
    ],
)
def test_tags_are_one_printable_line(tmp_path: Path, text: str, where: str) -> None:
    (msg,) = problems(write(tmp_path, GOOD.replace("    line: line-b", text)))
    assert where in msg, msg


def test_a_unit_is_one_short_line(tmp_path: Path) -> None:
    text = 'name: p\nprotocol: modbus\nfields:\n  - {name: t, table: holding, address: 0, type: int16, unit: "a\\nb"}\n'
    with pytest.raises(ConfigError) as info:
        load_profile(write(tmp_path, text, "p.yaml"))
    (msg,) = info.value.problems
    assert "fields[0].unit" in msg, msg


def test_the_configuration_reference_is_current_and_says_what_each_field_means() -> None:
    """docs/configuration.md is generated from the model: it cannot drift, and no field goes unexplained."""
    from edge_agent.tools.config_reference import PAGE, render  # noqa: PLC0415

    page = render()
    assert PAGE.read_text(encoding="utf-8") == page, "run 'python -m edge_agent.tools.config_reference' and commit"
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    assert len(rows) > 100
    unexplained = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert unexplained == [], f"fields without a description in the model: {unexplained}"
    for needle in ("`unit_id`", "`oee_window`", "`token`", "`publishing_interval`", "`synchronous`", "`1h30m`"):
        assert needle in page


def test_an_endpoint_out_of_range_is_said_with_the_other_problems(tmp_path: Path) -> None:
    """Port 99999 is named in the same pass as a wrong field elsewhere, not after it is fixed."""
    text = GOOD.replace("modbus://127.0.0.1:5020", "modbus://127.0.0.1:99999").replace("unit_id: 1", "unit_id: one")
    found = problems(write(tmp_path, text))
    assert any("devices[0].unit_id" in p for p in found), found
    assert any("devices[0].endpoint: port 99999 is out of range: a port is 1 to 65535" in p for p in found), found
