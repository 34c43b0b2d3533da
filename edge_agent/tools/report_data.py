"""The monthly report's figures, read with InfluxQL from the InfluxDB the agents write to.

InfluxDB 1.x (``/query``, user and password as HTTP basic authentication) and 2.x (its
v1-compatible ``/query`` with ``Authorization: Token``, the bucket as database: 2.2 and later map
every bucket themselves). Months and days are the plant's: cut at local midnight in its time
zone, days grouped with InfluxQL's ``tz()``. Every ratio is a ratio of sums (edge_agent.rollups).
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import requests

from edge_agent.rollups import KPI_RATIOS, LOSSES, NOT_LOSSES, OEE_RATIOS
from edge_agent.secrets import hide_url_password

#: Sums of the ``oee`` measurement the report needs (ratios, losses, time outside planned time).
OEE_SUMS = sorted({f for pair in OEE_RATIOS.values() for f in pair} | set(LOSSES) | set(NOT_LOSSES) | {"reject"})
#: Sums of the ``kpi`` measurement, and the fields taken as they are.
KPI_SUMS = sorted({f for pair in KPI_RATIOS.values() for f in pair})
BASELINES = {
    "energy_per_good_kwh": "baseline_energy_per_good_kwh",
    "defect_rate": "baseline_defect_rate",
}


class ReportError(Exception):
    """A problem the user can fix: the message says what and how."""


@dataclass(frozen=True)
class Source:
    """Where to read: an InfluxDB URL and database (1.x) or bucket (2.x), and the credentials."""

    url: str
    database: str
    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)
    timeout_s: float = 30.0

    def describe(self) -> str:
        kind = "bucket" if self.token else "database"
        return f"{hide_url_password(self.url)} {kind} {self.database}"


@dataclass(frozen=True)
class Month:
    """A calendar month in the plant's time zone."""

    year: int
    month: int
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo) -> Month:
        """``YYYY-MM`` in ``zone``.

        >>> Month.parse("2026-02", ZoneInfo("Asia/Shanghai")).start.isoformat()
        '2026-02-01T00:00:00+08:00'
        """
        match = re.fullmatch(r"(\d{4})-(\d{2})", text)
        if match is None or not 1 <= int(match[2]) <= 12:
            raise ReportError(f"--month {text!r}: write YYYY-MM, e.g. 2026-11")
        return cls(int(match[1]), int(match[2]), zone)

    @property
    def label(self) -> str:
        return f"{self.year}-{self.month:02d}"

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=self.zone)

    @property
    def end(self) -> dt.datetime:
        days = calendar.monthrange(self.year, self.month)[1]
        return (self.start.replace(tzinfo=None) + dt.timedelta(days=days)).replace(tzinfo=self.zone)

    def before(self) -> Month:
        return Month(self.year - (self.month == 1), 12 if self.month == 1 else self.month - 1, self.zone)

    def condition(self) -> str:
        """InfluxQL time condition: from local midnight of the 1st to local midnight of the next 1st."""
        return f"time >= {int(self.start.timestamp())}s AND time < {int(self.end.timestamp())}s"


class InfluxQL:
    """Queries one source, saying each query on ``progress`` (a line per query, with its time)."""

    def __init__(self, source: Source, progress: Callable[[str], None]) -> None:
        self.source, self.progress, self.count = source, progress, 0
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy between the report and the plant's database
        if source.token:
            self.session.headers["Authorization"] = f"Token {source.token}"
        elif source.username:
            self.session.auth = (source.username, source.password)

    def query(self, label: str, q: str) -> list[dict[str, Any]]:
        self.count += 1
        began = time.monotonic()
        try:
            reply = self.session.post(
                f"{self.source.url.rstrip('/')}/query",
                params={"db": self.source.database, "epoch": "s"},
                data={"q": q},
                timeout=self.source.timeout_s,
            )
        except requests.RequestException as exc:
            raise ReportError(f"cannot reach {self.source.describe()}: {exc.__class__.__name__}") from None
        self._refused(reply)
        try:
            result = reply.json()["results"][0]
        except (ValueError, KeyError, IndexError):
            raise ReportError(
                f"{self.source.describe()} answered {reply.status_code} without InfluxQL results"
            ) from None
        if "error" in result:
            raise ReportError(f"{self.source.describe()} refused the query for {label}: {result['error']}")
        self.progress(f"[{self.count}] {label}: {time.monotonic() - began:.1f} s")
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def _refused(self, reply: requests.Response) -> None:
        where = self.source.describe()
        if reply.status_code in (401, 403):
            how = "--token-file (or the sink's token)" if self.source.token else "--user and --password-file"
            raise ReportError(f"{where} refused the credentials ({reply.status_code}): check {how}")
        if reply.status_code == 404 and self.source.token:
            raise ReportError(
                f"{where}: no InfluxQL for this bucket (404). InfluxDB 2.0/2.1 need a mapping: "
                f"influx v1 dbrp create --bucket-id ID --db {self.source.database} --rp autogen --default"
            )
        if reply.status_code >= 300:
            raise ReportError(f"{where} answered {reply.status_code}: {reply.text[:200]}")


@dataclass(frozen=True)
class Scope:
    """Which site and workshop the report covers (InfluxQL regular expressions)."""

    site: str = ".*"
    workshop: str = ".*"

    def __post_init__(self) -> None:
        for name in ("site", "workshop"):
            if not re.fullmatch(r"[^/'\"\\\n]*", getattr(self, name)):
                raise ReportError(f"--{name} may not hold / ' \" or \\ (it goes into an InfluxQL regular expression)")

    def condition(self) -> str:
        return f'"site" =~ /^{self.site}$/ AND "workshop" =~ /^{self.workshop}$/'


def window_width_s(tag: str) -> float:
    """Seconds of an OEE grid tag (``1m``, ``30s``, ``300s``).

    >>> window_width_s("1m"), window_width_s("300s")
    (60.0, 300.0)
    """
    match = re.fullmatch(r"(\d+)([sm])", tag)
    if match is None:
        return 0.0
    return float(match[1]) * (60 if match[2] == "m" else 1)


def oee_windows(db: InfluxQL, scope: Scope, month: Month, wanted: str | None) -> list[str]:
    """The OEE grids to sum over the month: the one given, the one there is, or several that
    followed each other (the window length changed during the month); never two that overlap."""
    where = f"{scope.condition()} AND {month.condition()} AND \"window\" != 'shift'"
    spans: dict[str, list[int]] = {}
    for pick in ("first", "last"):
        q = f'SELECT {pick}("planned_busy_s") FROM "oee" WHERE {where} GROUP BY "window"'  # noqa: S608 - checked scope
        for s in db.query(f"OEE windows ({pick})", q):
            spans.setdefault(s["tags"]["window"], []).append(int(s["values"][0][0]))
    if wanted is not None:
        if wanted not in spans:
            raise ReportError(f"--window {wanted}: the month has OEE windows {', '.join(sorted(spans)) or 'none'}")
        return [wanted]
    order = sorted(spans, key=lambda w: spans[w][0])
    for before, after in itertools.pairwise(order):
        if spans[after][0] < spans[before][1] - max(window_width_s(before), window_width_s(after)):
            listed = ", ".join(
                f"{w} ({dt.datetime.fromtimestamp(spans[w][0], month.zone):%m-%d %H:%M}.."
                f"{dt.datetime.fromtimestamp(spans[w][1], month.zone):%m-%d %H:%M})"
                for w in order
            )
            raise ReportError(f"the month holds OEE windows that overlap: {listed}. Choose one with --window")
    return order


def _rows(series: list[dict[str, Any]], zone: ZoneInfo, group: tuple[str, ...] = ()) -> dict[Any, dict[str, Any]]:
    """{key: {column: value}}: the key is the tags in ``group``, or the local date of a daily row."""
    out: dict[Any, dict[str, Any]] = {}
    for s in series:
        tags = tuple(s.get("tags", {}).get(g, "") for g in group)
        for row in s["values"]:
            values = dict(zip(s["columns"], row, strict=True))
            when = values.pop("time")
            key = tags if group else dt.datetime.fromtimestamp(when, zone).date()
            out[key] = values
    return out


@dataclass
class Figures:
    """A month's sums: the whole month, by line, by machine, by day; KPI sums and baselines."""

    oee: dict[str, Any]
    by_line: dict[Any, dict[str, Any]]
    by_machine: dict[Any, dict[str, Any]]
    oee_by_day: dict[Any, dict[str, Any]]
    kpi: dict[str, Any]
    kpi_by_day: dict[Any, dict[str, Any]]
    windows: list[str]

    @property
    def empty(self) -> bool:
        return not self.oee and not self.kpi


def read_month(db: InfluxQL, scope: Scope, month: Month, window: str | None, detail: bool = True) -> Figures:
    """The month's figures (``detail``: also by line, machine and day)."""
    windows = oee_windows(db, scope, month, window)
    pattern = "|".join(re.escape(w) for w in windows) or "none"
    where = f'{scope.condition()} AND {month.condition()} AND "window" =~ /^({pattern})$/'
    sums = ", ".join(f'sum("{f}") AS "{f}"' for f in OEE_SUMS)
    kpi_where = f"{scope.condition()} AND {month.condition()}"
    kpi_select = ", ".join(f'sum("{f}") AS "{f}"' for f in KPI_SUMS)
    kpi_select += ', max("continuous_cloud_days") AS "continuous_cloud_days"'
    day = f" GROUP BY time(1d) fill(none) tz('{month.zone.key}')"
    oee_q = f'SELECT {sums} FROM "oee" WHERE {where}'  # noqa: S608 - constants and a checked scope
    kpi_q = f'SELECT {kpi_select} FROM "kpi" WHERE {kpi_where}'  # noqa: S608
    baselines = ", ".join(f'last("{b}") AS "{b}"' for b in BASELINES.values())
    label = month.label
    oee = _rows(db.query(f"{label} OEE", oee_q), month.zone)
    kpi = _rows(db.query(f"{label} KPIs", kpi_q), month.zone)
    base = _rows(db.query(f"{label} baselines", f'SELECT {baselines} FROM "kpi" WHERE {kpi_where}'), month.zone)  # noqa: S608
    figures = Figures(
        oee=next(iter(oee.values()), {}),
        by_line={},
        by_machine={},
        oee_by_day={},
        kpi=next(iter(kpi.values()), {}) | next(iter(base.values()), {}),
        kpi_by_day={},
        windows=windows,
    )
    if detail:
        figures.by_line = _rows(db.query(f"{label} OEE by line", f'{oee_q} GROUP BY "line"'), month.zone, ("line",))
        figures.by_machine = _rows(
            db.query(f"{label} OEE by machine", f'{oee_q} GROUP BY "line", "machine"'), month.zone, ("line", "machine")
        )
        figures.oee_by_day = _rows(db.query(f"{label} OEE by day", oee_q + day), month.zone)
        figures.kpi_by_day = _rows(db.query(f"{label} KPIs by day", kpi_q + day), month.zone)
    return figures


def ratio(sums: dict[str, Any], fields: tuple[str, str]) -> float | None:
    """A ratio of two sums; None without a denominator."""
    num, den = (sums.get(f) for f in fields)
    if not isinstance(num, int | float) or not isinstance(den, int | float) or den == 0:
        return None
    return float(num) / float(den)
