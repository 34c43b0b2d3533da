"""Runs every scenario in collectors/modbus/testcases/: a profile, register contents, and either
the decoded values expected (numbers; texts for string and enum fields; null for a bad reading)
or the validation error expected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_agent.collectors.modbus.plan import plan_requests
from edge_agent.collectors.modbus.profile import ModbusProfile
from edge_agent.config import load_profile
from edge_agent.config.yaml_source import ConfigError

CASES = sorted((Path(__file__).parents[2] / "collectors" / "modbus" / "testcases").iterdir())


def read_block(registers: dict[str, dict[str, list[int]]], table: str, address: int, count: int) -> np.ndarray:
    """The words a device with these register contents would answer (missing ones raise)."""
    words = {}
    for start, values in registers[table].items():
        for i, v in enumerate(values):
            words[int(start) + i] = v
    return np.array([words[a] for a in range(address, address + count)], np.uint16)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Path) -> None:
    error_file = case / "expected_error.txt"
    if error_file.exists():
        with pytest.raises(ConfigError) as info:
            load_profile(case / "profile.yaml")
        assert error_file.read_text(encoding="utf-8").strip() in "\n".join(info.value.problems)
        return
    profile = load_profile(case / "profile.yaml")
    assert isinstance(profile, ModbusProfile)
    registers = json.loads((case / "registers.json").read_text(encoding="utf-8"))
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    got: dict[str, float | str | None] = {}
    for req in plan_requests(profile.fields, profile.max_registers_per_request, profile.max_gap):
        words = read_block(registers, req.table, req.address, req.count)
        values = req.plan.decode(words)
        got.update(
            {
                profile.fields[i].name: float(v) if np.isfinite(v) else None
                for i, v in zip(req.field_index, values, strict=True)
            }
        )
        for k, text in zip(req.plan.text_index, req.plan.texts(words), strict=True):
            got[profile.fields[req.field_index[k]].name] = text
    assert set(got) == set(expected)
    for name, want in expected.items():
        if isinstance(want, float | int):
            assert got[name] == pytest.approx(want, rel=1e-12, abs=1e-12), name
        else:
            assert got[name] == want, name
