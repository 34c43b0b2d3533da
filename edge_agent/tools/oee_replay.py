"""``edge-agent oee replay``: OEE of recorded signals, computed by the agent's own engine.

Reads a signals CSV (:mod:`edge_agent.signals_csv`) and a file holding one machine's ``oee:``
section, feeds the readings to :class:`analytics.oee.OeeEngine` in blocks as the running agent
would, and prints one JSON object per window, then one with ``"window": "total"`` (the sum of
the windows' time elements and counts, divided afterwards). Times are RFC 3339 in the shift
time zone (UTC without shifts); a ratio that does not exist is ``null``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.oee import OeeEngine, WindowRows
from edge_agent.analytics.oee_kpis import RATIOS, SUMMABLE, flag_names, flags, ratios, roll_up, summable
from edge_agent.analytics.windows import NS, ShiftWindows, WindowGrid, day_windows, local_windows
from edge_agent.config.oee import (
    COUNTER_KIND,
    OeeSection,
    load_machine_oee,
    machine_config,
    shift_windows,
    work_schedule,
)
from edge_agent.config.types import parse_duration
from edge_agent.config.yaml_source import ConfigError, YamlDocument
from edge_agent.tools.signals_csv import SignalTable, read_signals, time_zone

ENERGY = 3
#: Rows fed to the engine at a time (the agent feeds what arrived since its last tick).
BLOCK_ROWS = 4096
#: The keys every output object has, in this order; more follow (see docs/oee.md).
KEYS = ("window", "start", "end", "shift", *SUMMABLE[:14], *RATIOS[:4], "failures", *RATIOS[4:6])
_COUNTS = {"produced", "good", "reject", "failures"}


def window_grid(spec: str, section: OeeSection, at_ns: int) -> WindowGrid:
    """``shift``, ``1d`` (local days), or a duration such as ``1h`` or ``15m`` aligned to local time."""
    zone = section.shifts.timezone if section.shifts else "UTC"
    if spec == "shift":
        if section.shifts is None:
            raise ConfigError(["--window shift needs a shifts: section (timezone, schedule) in the oee: config"])
        return shift_windows(section.shifts)
    if spec == "1d":
        return day_windows(zone)
    try:
        width = round(parse_duration(spec) * NS)
    except ValueError as exc:
        raise ConfigError([f"--window {spec!r}: {exc}; use 1h, shift or 1d"]) from None
    if width <= 0 or 86400 * NS % width:
        raise ConfigError([f"--window {spec!r}: a window must divide a day (e.g. 15m, 1h, 8h), or be shift or 1d"])
    return local_windows(width, zone, at_ns, spec)


def _columns(table: SignalTable, section: OeeSection, doc: YamlDocument) -> tuple[int, list[tuple[int, int]]]:
    """CSV column of the state signal, and (column, counter kind) pairs."""
    at = ("oee",) if isinstance(doc.data, dict) and set(doc.data) == {"oee"} else ()
    wanted: list[tuple[tuple[str, ...], str, int]] = [((*at, "state", "signal"), section.state.signal, -1)]
    wanted += [((*at, "counters", k, "signal"), c.signal, COUNTER_KIND[k]) for k, c in section.counters.items()]
    if section.energy is not None:
        wanted.append(((*at, "energy", "signal"), section.energy.signal, ENERGY))
    problems = [
        doc.problem(loc, f"signal {name!r} is not a column of {table.path} (it has {', '.join(table.names)})")
        for loc, name, _ in wanted
        if name not in table.names
    ]
    if problems:
        raise ConfigError(problems)
    state = table.names.index(section.state.signal)
    return state, [(table.names.index(name), kind) for _, name, kind in wanted[1:]]


def replay_rows(table: SignalTable, section: OeeSection, doc: YamlDocument, window: str) -> Iterator[dict[str, Any]]:
    """One dict per window, then the total."""
    state_col, counter_cols = _columns(table, section, doc)
    used = [state_col] + [c for c, _ in counter_cols]
    has_reading = ~np.isnan(table.values[:, used]).all(axis=1) | table.outage
    if not has_reading.any():
        raise ConfigError([f"{table.path}: no reading of {[table.names[c] for c in used]} in any row"])
    first, last = int(table.ts[has_reading][0]), int(table.ts[has_reading][-1])
    grid = window_grid(window, section, first)
    # Without a poll interval, the usual spacing of the readings stands for it (stale_after's default).
    spacing = np.diff(table.ts[has_reading])
    interval_s = float(np.median(spacing)) / NS if spacing.shape[0] else 1.0
    engine = OeeEngine([machine_config(section, interval_s)], grid, work_schedule(section.shifts))
    zone = ZoneInfo(section.shifts.timezone if section.shifts else "UTC")
    engine.observe(np.zeros(1, np.intp), np.array([first], np.int64))
    closed: list[WindowRows] = []
    for lo in range(0, table.ts.shape[0], BLOCK_ROWS):
        part = slice(lo, lo + BLOCK_ROWS)
        _feed(engine, table.ts[part], table.values[part], table.outage[part], state_col, counter_cols)
        closed.append(engine.close())
    engine.advance(last)
    closed.append(engine.close(final=True))
    rows = WindowRows(*(np.concatenate([getattr(r, f) for r in closed]) for f in WindowRows.__slots__))
    cols = summable(rows.elements, engine.ideal_cycle_s[rows.machine], engine.has_counter[rows.machine])
    labels = shift_windows(section.shifts) if section.shifts else None
    for i in range(len(rows)):
        shift = _shift_name(grid, labels, int(rows.key[i]), int(rows.end[i]))
        one = {k: v[i : i + 1] for k, v in cols.items()}
        yield _record(grid.name, int(rows.start[i]), int(rows.end[i]), shift, one, zone, rows.partial[i : i + 1])
    total = roll_up(cols, np.zeros(len(rows), np.intp), 1)
    yield _record("total", first, last, None, total, zone, np.zeros(1, bool))


def _feed(
    engine: OeeEngine,
    ts: NDArray[np.int64],
    values: NDArray[np.float64],
    outage: NDArray[np.bool_],
    state_col: int,
    counter_cols: list[tuple[int, int]],
) -> None:
    state = ~np.isnan(values[:, state_col]) | outage
    code = np.where(outage, np.nan, values[:, state_col])  # NaN: the device was unreachable
    engine.add_states(np.zeros(int(state.sum()), np.intp), ts[state], code[state])
    for col, kind in counter_cols:
        seen = ~np.isnan(values[:, col])
        n = int(seen.sum())
        engine.add_counters(np.zeros(n, np.intp), np.full(n, kind, np.intp), ts[seen], values[seen, col])


def _shift_name(grid: WindowGrid, shifts: ShiftWindows | None, key: int, end: int) -> str | None:
    """The shift a window lies in, when it lies inside one shift (null otherwise)."""
    if isinstance(grid, ShiftWindows) and grid.name == "shift":
        return grid.label(key) or None
    if shifts is None:
        return None
    start, stop = shifts.locate(np.array([key], np.int64))
    if start[0] < 0 or end > stop[0]:
        return None
    return shifts.label(int(start[0])) or None


def _time(ns: int, zone: ZoneInfo) -> str:
    stamp = dt.datetime.fromtimestamp(ns // NS, zone)
    fraction = ns % NS
    return stamp.isoformat() if not fraction else stamp.isoformat().replace("+", f".{fraction:09d}+", 1)


def _number(key: str, value: float) -> float | int | None:
    if not np.isfinite(value):
        return None
    if key in _COUNTS and float(value).is_integer():
        return int(value)
    return round(float(value), 6)


def _record(
    window: str,
    start: int,
    end: int,
    shift: str | None,
    cols: dict[str, NDArray[np.float64]],
    zone: ZoneInfo,
    partial: NDArray[np.bool_],
) -> dict[str, Any]:
    k = ratios(cols)
    values = {name: float(cols[name][0]) for name in SUMMABLE} | {name: float(k[name][0]) for name in RATIOS}
    out: dict[str, Any] = {"window": window, "start": _time(start, zone), "end": _time(end, zone), "shift": shift}
    for key in KEYS[4:]:
        out[key] = _number(key, values[key])
    for key in (*SUMMABLE, *RATIOS):
        out.setdefault(key, _number(key, values[key]))
    out["flags"] = flag_names(float(flags(cols, partial)[0]))
    return out


def replay(csv_path: Path, config: Path, window: str, out: TextIO = sys.stdout, timezone: str | None = None) -> int:
    """Print the windows of a replay as JSON lines; exit status 0."""
    section, doc = load_machine_oee(config)
    table = read_signals(csv_path, time_zone(timezone))
    for record in replay_rows(table, section, doc, window):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0
