"""Signals recorded as CSV, for replays: first column ``time``, one column per signal.

``time`` is RFC 3339 with an offset (``2026-03-01T08:00:00+08:00``) or integer epoch
nanoseconds; an empty cell means no new reading of that signal at that time, and the word
``unreachable`` in any cell of a row means the device could not be reached at that time (an
outage: the machine's time is unknown until its next state reading). Problems are reported with
file, line and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from edge_agent.config.yaml_source import ConfigError

#: A cell that marks an outage.
OUTAGE = "unreachable"


@dataclass(frozen=True)
class SignalTable:
    path: Path
    time_text: list[str]
    ts: NDArray[np.int64]
    names: list[str]
    values: NDArray[np.float64]  # [rows, signals], NaN = no reading
    #: Rows at which the device was unreachable.
    outage: NDArray[np.bool_]


def parse_time(text: str) -> int:
    """UTC ns from RFC 3339 with an offset, or from integer epoch nanoseconds."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError("has no UTC offset: write e.g. 2026-03-01T08:00:00+08:00")
    whole = int(stamp.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + stamp.microsecond * 1000


def _number(cell: str) -> tuple[float, str]:
    """A cell's value, or NaN and what is wrong with it."""
    try:
        value = float(cell)
    except ValueError:
        return math.nan, f"is not a number (nor {OUTAGE!r})"
    if not math.isfinite(value):
        return math.nan, "is not a finite number"
    return value, ""


def _header(path: Path, rows: list[list[str]]) -> list[str]:
    """The signal names of the header row."""
    if not rows or not rows[0] or rows[0][0].strip() != "time":
        raise ConfigError([f"{path}:1: the first column must be named 'time', then one column per signal"])
    names = [n.strip() for n in rows[0][1:]]
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError([f"{path}:1: signal columns need distinct, non-empty names (got {names})"])
    return names


def read_signals(path: Path) -> SignalTable:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    with handle:
        rows = list(csv.reader(handle))
    names = _header(path, rows)
    problems: list[str] = []
    ts: list[int] = []
    values = np.full((len(rows) - 1, len(names)), np.nan)
    outage = np.zeros(len(rows) - 1, bool)
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(names) + 1:
            problems.append(f"{path}:{line}: {len(row)} cells, expected {len(names) + 1}")
            continue
        try:
            ts.append(parse_time(row[0]))
        except ValueError as exc:
            problems.append(f"{path}:{line}: time {row[0]!r} {exc}")
            continue
        for c, cell in enumerate(row[1:]):
            if cell.strip().lower() == OUTAGE:
                outage[r] = True
            elif cell.strip():
                value, problem = _number(cell)
                if problem:
                    problems.append(f"{path}:{line}: column {names[c]!r}: {cell!r} {problem}")
                else:
                    values[r, c] = value
    for r in np.flatnonzero(outage & ~np.isnan(values).all(axis=1)).tolist():
        problems.append(
            f"{path}:{r + 2}: a row marked {OUTAGE!r} must hold no reading: move them to a row of their own"
        )
    if problems:
        raise ConfigError(problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else []))
    stamps = np.asarray(ts, np.int64)
    if stamps.shape[0] > 1 and (np.diff(stamps) < 0).any():
        bad = int(np.argmax(np.diff(stamps) < 0)) + 3
        raise ConfigError([f"{path}:{bad}: time goes backwards: sort the rows by time"])
    return SignalTable(path, [row[0] for row in rows[1:]], stamps, names, values, outage)
