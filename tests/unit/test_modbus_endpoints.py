"""Modbus endpoints: TCP, RTU on a serial line with its settings, RTU over TCP; and what a wrong
one is told."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge_agent.collectors.modbus.plugin import parse_endpoint
from edge_agent.collectors.modbus.rtu import frame_gap_s
from edge_agent.config import load_config, load_profile
from edge_agent.config.yaml_source import ConfigError
from tests.unit.test_config import GOOD, write


def test_serial_settings_are_read_from_the_query() -> None:
    end = parse_endpoint("modbus+rtu:///dev/ttyUSB0?baud=19200&parity=e&stop_bits=2&data_bits=7&frame_gap=5ms")
    assert (end.kind, end.device) == ("rtu", "/dev/ttyUSB0")
    assert end.options == {"baud": 19200, "parity": "E", "stop_bits": 2, "data_bits": 7, "frame_gap": 0.005}
    assert parse_endpoint("modbus+rtu:///dev/ttyS1").options["baud"] == 9600
    assert parse_endpoint("modbus+rtutcp://10.0.0.6:4001") == parse_endpoint("modbus+rtutcp://10.0.0.6:4001")
    assert parse_endpoint("modbus+rtutcp://10.0.0.6:4001").kind == "rtutcp"
    assert parse_endpoint("modbus://10.0.0.5:502").kind == "tcp"


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("modbus+rtu://dev/ttyUSB0", "three slashes"),
        ("modbus+rtu:///dev/ttyUSB0?baud=fast", "baud is a number"),
        ("modbus+rtu:///dev/ttyUSB0?parity=X", "parity N, E or O"),
        ("modbus+rtu:///dev/ttyUSB0?speed=9600", "unknown serial options ['speed']"),
        ("modbus+rtu:///dev/ttyUSB0?stop_bits=3", "stop_bits must be 1 or 2"),
        ("modbus+rtutcp://10.0.0.6", "needs a port after the host"),
    ],
)
def test_wrong_endpoints_say_what_to_write(endpoint: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_endpoint(endpoint)


def test_a_wrong_serial_endpoint_is_reported_at_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("modbus://127.0.0.1:5020", "modbus+rtu:///dev/ttyUSB0?parity=Q")
    with pytest.raises(ConfigError, match=r"devices\[0\].endpoint: bad serial options"):
        load_config(write(tmp_path, text))
    ok = GOOD.replace("modbus://127.0.0.1:5020", "modbus+rtu:///dev/ttyUSB0?baud=9600&parity=E")
    load_config(write(tmp_path, ok, "ok.yaml"))


def test_frame_gap_follows_the_serial_line_specification() -> None:
    assert frame_gap_s(9600) == pytest.approx(3.5 * 11 / 9600)
    assert frame_gap_s(38400) == 0.00175


def test_the_readme_example_profile_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "collectors" / "modbus" / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\nname: three-phase-meter")[1].split("```")[0]
    path = tmp_path / "meter.yaml"
    path.write_text("name: three-phase-meter" + example, encoding="utf-8")
    warnings: list[str] = []
    profile = load_profile(path, warnings)
    assert warnings == []
    assert len(profile.signals()) == 11
