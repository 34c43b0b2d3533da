"""Signals recorded as CSV, for replays: first column ``time``, one column per signal.

Cells are separated by commas, semicolons or tabs (whichever the header uses); the first column
may also be named ``timestamp``, ``datetime`` or ``date``. ``time`` is RFC 3339 with an offset
(``2026-03-01T08:00:00+08:00``, a space for the ``T`` too) or integer epoch nanoseconds; a time
without an offset (``2020-03-09 10:14:33``, as data sets often are) is read in the zone given as
``zone`` (``--timezone``), and refused without one. An empty cell means no new reading of that
signal at that time, and the word ``unreachable`` in any cell of a row means the device could not
be reached at that time (an outage: the machine's time is unknown until its next state reading).
Problems are reported with file, line and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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


#: Names the first column may have (any case).
TIME_NAMES = ("time", "timestamp", "datetime", "date")
#: Cell separators a header may use.
SEPARATORS = ",;\t"


class NoOffset(ValueError):
    """A time without a UTC offset, and no zone to read it in."""


def parse_time(text: str, zone: ZoneInfo | None = None) -> int:
    """UTC ns from RFC 3339 with an offset, from integer epoch nanoseconds, or from a time
    without an offset read in ``zone``."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None and zone is not None:
        stamp = stamp.replace(tzinfo=zone)
    if stamp.tzinfo is None:
        raise NoOffset(
            "has no UTC offset: write e.g. 2026-03-01T08:00:00+08:00, or say the zone: --timezone Asia/Shanghai"
        )
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


def time_zone(name: str | None) -> ZoneInfo | None:
    """The zone ``--timezone`` names (None: none given)."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError([f"--timezone {name!r}: no such time zone (e.g. UTC, Asia/Shanghai)"]) from None


def _separator(first_line: str) -> str:
    """The separator the header uses most (a comma if none)."""
    counts = {sep: first_line.count(sep) for sep in SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _header(path: Path, rows: list[list[str]]) -> list[str]:
    """The signal names of the header row."""
    if not rows or not rows[0] or rows[0][0].strip().lstrip("\ufeff").lower() not in TIME_NAMES:
        raise ConfigError(
            [
                f"{path}:1: the first column must be named 'time' (or timestamp, datetime, date), "
                "then one column per signal"
            ]
        )
    names = [n.strip() for n in rows[0][1:]]
    if not names or any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError([f"{path}:1: signal columns need distinct, non-empty names (got {names})"])
    return names


def _row_time(cell: str, zone: ZoneInfo | None, where: str, problems: list[str], local: list[int]) -> int | None:
    """The time in ``cell`` (UTC ns), or None with the problem added (and its index to ``local``
    when the time has no offset)."""
    try:
        return parse_time(cell, zone)
    except ValueError as exc:
        problems.append(f"{where}: time {cell!r} {exc}")
        if isinstance(exc, NoOffset):
            local.append(len(problems) - 1)
        return None


def _offsets_once(problems: list[str], local: list[int], rows: int) -> list[str]:
    """``problems`` with the missing offsets (at the indices ``local``) said once when no time of
    the file's ``rows`` has one: a data set recorded in local time, not 1,000 faulty lines."""
    if len(local) < 2 or len(local) != rows:
        return problems
    first = problems[local[0]].replace(
        " has no UTC offset:", f" has no UTC offset, nor has any of the file's {rows} times:"
    )
    skip = set(local)
    return [first] + [p for i, p in enumerate(problems) if i not in skip]


def read_signals(path: Path, zone: ZoneInfo | None = None, ignore: Sequence[str] = ()) -> SignalTable:
    """The table in ``path``; times without an offset are read in ``zone``; the columns named in
    ``ignore`` (a data set's labels, say) are left out."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=_separator(text.split("\n", 1)[0]))]
    names = _header(path, rows)
    problems: list[str] = []
    ts: list[int] = []
    values = np.full((len(rows) - 1, len(names)), np.nan)
    outage = np.zeros(len(rows) - 1, bool)
    #: Indices in ``problems`` of the times without a UTC offset (no zone was given).
    local: list[int] = []
    for r, row in enumerate(rows[1:]):
        line = r + 2
        if len(row) != len(names) + 1:
            problems.append(f"{path}:{line}: {len(row)} cells, expected {len(names) + 1}")
            continue
        stamp = _row_time(row[0], zone, f"{path}:{line}", problems, local)
        if stamp is None:
            continue
        ts.append(stamp)
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
    problems = _offsets_once(problems, local, len(rows) - 1)
    if problems:
        raise ConfigError(problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else []))
    stamps = np.asarray(ts, np.int64)
    if stamps.shape[0] > 1 and (np.diff(stamps) < 0).any():
        bad = int(np.argmax(np.diff(stamps) < 0)) + 3
        raise ConfigError([f"{path}:{bad}: time goes backwards: sort the rows by time"])
    table = SignalTable(path, [row[0] for row in rows[1:]], stamps, names, values, outage)
    return without(table, ignore) if ignore else table


def without(table: SignalTable, ignore: Sequence[str]) -> SignalTable:
    """``table`` without the columns named in ``ignore``."""
    names = table.names
    missing = [name for name in ignore if name not in names]
    if missing:
        raise ConfigError([f"{table.path}:1: --ignore {missing}: no such column (the columns are {names})"])
    keep = [c for c, name in enumerate(names) if name not in ignore]
    if not keep:
        raise ConfigError([f"{table.path}:1: --ignore leaves no signal column"])
    return replace(table, names=[names[c] for c in keep], values=table.values[:, keep])
