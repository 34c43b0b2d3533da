"""``edge-agent anomaly replay``: the agent's scoring applied to a CSV, and its errors."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from edge_agent.analytics.detectors import REGISTRY
from edge_agent.cli import main
from edge_agent.config.yaml_source import ConfigError
from edge_agent.tools.anomaly_replay import replay


def signals_csv(tmp_path: Path, rows: int = 800) -> Path:
    rng = np.random.default_rng(1)
    lines = ["time,temp,vib"]
    for i in range(rows):
        temp = 60 + rng.normal(0, 0.3) + (8 if 600 <= i < 630 else 0)
        vib = "" if i % 7 == 0 else f"{2.5 + rng.normal(0, 0.1):.3f}"
        lines.append(f"{1_772_323_200_000_000_000 + i * 1_000_000_000},{temp:.3f},{vib}")
    path = tmp_path / "signals.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(path: Path, config: Path | None = None) -> list[dict[str, str]]:
    out = io.StringIO()
    assert replay(path, config, out) == 0
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def test_replay_scores_and_alarms(tmp_path: Path) -> None:
    rows = run(signals_csv(tmp_path))
    assert list(rows[0]) == [
        "time",
        *("temp_score", "temp_alarm", "vib_score", "vib_alarm"),
        *("_machine_score", "_machine_alarm"),
    ]
    alarm = [int(r["temp_alarm"]) for r in rows]
    assert alarm.index(1) == 600
    assert sum(alarm[:600]) == 0
    assert all(alarm[600:630])  # on every row of the fault ...
    assert sum(alarm[630:]) < 60  # ... and off soon after it
    assert all(r["vib_alarm"] == "0" for r in rows)
    assert rows[7]["vib_score"] == ""  # no reading, no score
    machine = [int(r["_machine_alarm"]) for r in rows]
    assert machine[:600] == [0] * 600 and all(machine[600:630])  # the machine is abnormal while a signal is


def test_an_alarm_lasts_as_long_as_the_fault_and_the_machine_sees_small_shifts_together(tmp_path: Path) -> None:
    """A level shift of 3 level sd on an AR(1) loop for 1,500 rows: the alarm is on for most of
    it and off after; three signals shifted by 1.2 sd each at once raise the machine's alarm."""
    rng = np.random.default_rng(5)
    n, signals = 5000, 6
    x = np.zeros((n, signals))
    for i in range(1, n):
        x[i] = 0.8 * x[i - 1] + 0.6 * rng.normal(0, 1, signals)
    x[2000:3500, 0] += 3.0
    x[4000:4600, 3:6] += 1.2
    lines = ["time," + ",".join(f"s{j}" for j in range(signals))]
    lines += [f"{1_772_323_200 + i}000000000," + ",".join(f"{50 + v:.4f}" for v in x[i]) for i in range(n)]
    path = tmp_path / "loop.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = run(path)
    s0 = np.array([int(r["s0_alarm"]) for r in rows])
    assert s0[2000:3500].mean() > 0.8, s0[2000:3500].mean()
    assert s0[3600:].sum() + s0[:2000].sum() < 100
    machine = np.array([int(r["_machine_alarm"]) for r in rows])
    assert machine[4000:4600].mean() > 0.6, machine[4000:4600].mean()
    assert machine[:1900].sum() < 50


def test_replay_config_overrides_per_signal(tmp_path: Path) -> None:
    config = tmp_path / "anomaly.yaml"
    config.write_text("signals:\n  temp: {forecast: {grace: 700, calibrate_after: 700}}\n", encoding="utf-8")
    rows = run(signals_csv(tmp_path), config)
    assert all(r["temp_alarm"] == "0" for r in rows[:630])  # still learning when the step came


def test_replay_errors_name_file_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "time,a\n2026-03-01T08:00:00+08:00,1\n2026-03-01T08:00:01,2\n2026-03-01T08:00:02+08:00,x\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as info:
        replay(bad, None, io.StringIO())
    assert info.value.problems == [
        f"{bad}:3: time '2026-03-01T08:00:01' has no UTC offset: write e.g. 2026-03-01T08:00:00+08:00, "
        "or say the zone: --timezone Asia/Shanghai",
        f"{bad}:4: column 'a': 'x' is not a number (nor 'unreachable')",
    ]
    config = tmp_path / "anomaly.yaml"
    config.write_text("alarm: {on_above: 1.0, off_below: 2.0}\n", encoding="utf-8")
    assert main(["anomaly", "replay", str(signals_csv(tmp_path)), "--config", str(config)]) == 2
    assert "anomaly.yaml:1: alarm: off_below must be lower than on_above" in capsys.readouterr().err


def test_a_data_set_as_published_semicolons_datetime_and_local_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Data sets come as they were recorded: a ``datetime`` column of local times without an
    offset, cells separated by semicolons. With ``--timezone`` they replay exactly as the same
    readings written as RFC 3339 with an offset; without it the error says what to give."""
    plain = signals_csv(tmp_path)
    lines = plain.read_text(encoding="utf-8").splitlines()
    local = ["datetime;temp;vib;anomaly;changepoint"]  # with the data set's label columns
    for i, line in enumerate(lines[1:]):
        ns, temp, vib = line.split(",")
        stamp = np.datetime64(int(ns), "ns") + np.timedelta64(8, "h")  # Asia/Shanghai: UTC+8, no DST
        label = int(600 <= i < 630)
        local.append(f"{str(stamp.astype('datetime64[s]')).replace('T', ' ')};{temp};{vib};{label};{int(i == 600)}")
    published = tmp_path / "published.csv"
    published.write_text("\ufeff" + "\n".join(local) + "\n", encoding="utf-8")  # with a byte order mark
    expected = run(plain)
    out = io.StringIO()
    assert replay(published, None, out, timezone="Asia/Shanghai", ignore=["anomaly", "changepoint"]) == 0
    got = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [{k: v for k, v in r.items() if k != "time"} for r in got] == [
        {k: v for k, v in r.items() if k != "time"} for r in expected
    ]
    assert got[0]["time"] == local[1].split(";")[0]
    assert main(["anomaly", "replay", str(published)]) == 2
    err = capsys.readouterr().err
    # Said once for the file, not once per row.
    assert f"{published}:2: time '{local[1].split(';')[0]}' has no UTC offset, nor has any of the file's" in err
    assert err.count("no UTC offset") == 1, err
    assert main(["anomaly", "replay", str(published), "--timezone", "Mars/Olympus"]) == 2
    assert "--timezone 'Mars/Olympus': no such time zone" in capsys.readouterr().err
    assert main(["anomaly", "replay", str(published), "--timezone", "UTC", "--ignore", "label"]) == 2
    assert f"{published}:1: --ignore ['label']: no such column" in capsys.readouterr().err


def test_params_lists_every_registered_parameter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["anomaly", "params"]) == 0
    out = capsys.readouterr().out
    for name, cls in REGISTRY.items():
        assert f"\n{name} (" in f"\n{out}", name
        for key, p in cls.params.items():
            assert f"  {key}: {p.default}  (" in out, (name, key)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("departure_lasting: -1", "alarm.departure_lasting: Input should be greater than or equal to 0 (got -1)"),
        ("departure_samples: 4", "alarm.departure_samples: Input should be greater than or equal to 8 (got 4)"),
    ],
)
def test_a_bad_lasting_departure_is_refused_at_its_line(tmp_path: Path, setting: str, message: str) -> None:
    config = tmp_path / "anomaly.yaml"
    config.write_text(f"alarm:\n  {setting}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        replay(signals_csv(tmp_path), config, io.StringIO())
    assert info.value.problems == [f"{config}:2: {message}"]
