"""Hand-computed OEE scenarios (tests/testcases/oee/<case>/), replayed through the agent's engine."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent.tools.oee_replay import KEYS, replay

CASES = Path(__file__).parents[1] / "testcases" / "oee"
NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def test_every_required_scenario_has_a_case() -> None:
    assert len(NAMES) >= 8
    for name in NAMES:
        assert {"signals.csv", "machine.yaml", "expected.json", "README.md"} <= {
            p.name for p in (CASES / name).iterdir()
        }


def _same(got: Any, want: Any) -> bool:
    if want is None or isinstance(want, str | list):
        return bool(got == want)
    return got is not None and got == pytest.approx(want, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_golden_case(name: str) -> None:
    case = CASES / name
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    out = io.StringIO()
    assert replay(case / "signals.csv", case / "machine.yaml", expected["window"], out) == 0
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(got) == len(expected["windows"]), [(g["start"], g["end"]) for g in got]
    for i, (g, w) in enumerate(zip(got, expected["windows"], strict=True)):
        assert list(g)[: len(KEYS)] == list(KEYS)
        wrong = {k: (g[k], v) for k, v in w.items() if not _same(g[k], v)}
        assert not wrong, f"{name} window {i} ({w['start']}): got, want = {wrong}"
