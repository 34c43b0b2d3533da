"""``edge-agent oee replay`` as an integrator runs it: a real process, JSON lines out, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge_agent.cli import main
from tests.e2e.test_cli import cli

CASES = Path(__file__).parents[1] / "testcases" / "oee"
#: The keys an integrator's tooling reads, in this order (the OEE issue's contract).
CONTRACT = [
    "window",
    "start",
    "end",
    "shift",
    "scheduled_s",
    "planned_busy_s",
    "running_s",
    "microstop_s",
    "delay_s",
    "down_s",
    "setup_s",
    "planned_stop_s",
    "break_s",
    "unknown_s",
    "actual_production_s",
    "produced",
    "good",
    "reject",
    "availability",
    "performance",
    "quality",
    "oee",
    "failures",
    "mtbf_s",
    "mttr_s",
]


def test_replay_prints_json_lines_and_a_total() -> None:
    case = CASES / "night-shift-over-midnight"
    run = cli("oee", "replay", str(case / "signals.csv"), "--config", str(case / "machine.yaml"), "--window", "shift")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert all(list(r)[: len(CONTRACT)] == CONTRACT for r in rows)
    assert [r["shift"] for r in rows] == ["day", "night", "day", None]
    assert rows[-1]["window"] == "total" and rows[-1]["produced"] == 2220
    # The same data in hours and in days rolls up to the same total.
    for window in ("1h", "1d"):
        other = cli(
            "oee", "replay", str(case / "signals.csv"), "--config", str(case / "machine.yaml"), "--window", window
        )
        total = json.loads(other.stdout.splitlines()[-1])
        for key in ("planned_busy_s", "actual_production_s", "produced", "oee"):
            assert total[key] == pytest.approx(rows[-1][key]), (window, key)


def _copy_case(tmp_path: Path, name: str) -> tuple[Path, Path]:
    shutil.copytree(CASES / name, tmp_path / name)
    return tmp_path / name / "signals.csv", tmp_path / name / "machine.yaml"


def test_a_signal_missing_from_the_csv_names_the_config_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signals, machine = _copy_case(tmp_path, "break")
    machine.write_text(machine.read_text().replace("{signal: parts}", "{signal: good_parts}"))
    assert main(["oee", "replay", str(signals), "--config", str(machine)]) == 2
    err = capsys.readouterr().err
    assert f"{machine}:4" in err and "'good_parts' is not a column" in err and "state, parts" in err


def test_bad_inputs_exit_2_with_the_place_and_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signals, machine = _copy_case(tmp_path, "stale-signal")
    assert main(["oee", "replay", str(signals), "--config", str(machine), "--window", "shift"]) == 2
    assert "--window shift needs a shifts: section" in capsys.readouterr().err
    assert main(["oee", "replay", str(signals), "--config", str(machine), "--window", "7m"]) == 2
    assert "must divide a day" in capsys.readouterr().err
    lines = signals.read_text().splitlines()
    lines[3] = lines[3].replace("Z,1,", "Z,one,")
    signals.write_text("\n".join(lines) + "\n")
    assert main(["oee", "replay", str(signals), "--config", str(machine)]) == 2
    assert f"{signals}:4: column 'state': 'one' is not a number" in capsys.readouterr().err
    machine.write_text("oee:\n  state: {signal: state, map: {1: running}}\n  counters: {}\n  ideal_cycle_time: -2s\n")
    assert main(["oee", "replay", str(signals), "--config", str(machine)]) == 2
    err = capsys.readouterr().err
    assert f"{machine}:3" in err and f"{machine}:4" in err
