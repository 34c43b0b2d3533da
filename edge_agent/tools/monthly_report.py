"""``edge-agent report --month YYYY-MM``: one month's evidence for the smart-workshop (智能车间) and
cloud-adoption (星级上云) programmes, as a self-contained HTML page with matplotlib charts.

Read from the InfluxDB the agents write to (the local store only holds what has not been sent
yet, so it is no history). Every figure is a ratio of sums over the month (docs/kpis.md):
networking rate, data collection and cloud completeness, device-on-cloud ratio, continuous
days on cloud, OEE, energy per good unit and defect rate, each beside its baseline (``kpis``
baselines in agent.yaml) and the month before. Charts: those ratios day by day.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import datetime as dt
import html
import io
import math
import re
import sys
from pathlib import Path
from typing import Any

import requests

#: (key, label, InfluxQL expression over the kpi measurement, is a ratio)
KPI_SUMS = {
    "networking_rate": ("Networking rate 设备联网率", 'sum("devices_seen") / sum("devices_in_scope")'),
    "collection_completeness": ("Data collection 数据采集率", 'sum("samples_valid") / sum("samples_expected")'),
    "device_on_cloud_ratio": ("Devices on cloud 设备上云率", 'sum("devices_on_cloud") / sum("devices_in_scope")'),
    "cloud_completeness": ("Cloud completeness 上云完整率", 'sum("points_acked") / sum("points_produced")'),
    "energy_per_good_kwh": ("Energy per good unit 单位产品能耗 (kWh)", 'sum("energy_kwh") / sum("good")'),
    "defect_rate": ("Defect rate 不良率", 'sum("reject") / sum("produced")'),
}
BASELINES = {"energy_per_good_kwh": "baseline_energy_per_good_kwh", "defect_rate": "baseline_defect_rate"}
OEE = 'sum("ideal_good_s") / sum("planned_busy_s")'
RATIOS = {"networking_rate", "collection_completeness", "device_on_cloud_ratio", "cloud_completeness", "defect_rate"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.add_argument(
        "--influx-url", required=True, help="the InfluxDB 1.x the agents write to, e.g. http://127.0.0.1:8086"
    )
    p.add_argument("--db", default="edge", help="its database (default edge)")
    p.add_argument("--site", default=".*", help="site tag to report on (regular expression; default all)")
    p.add_argument("--workshop", default=".*", help="workshop tag (regular expression; default all)")
    p.add_argument("--out", type=Path, default=None, help="HTML file (default report-YYYY-MM.html)")
    p.add_argument("--timeout", type=float, default=30.0)


def month_range(month: str) -> tuple[dt.datetime, dt.datetime]:
    """UTC start and end of ``YYYY-MM``.

    >>> [d.isoformat() for d in month_range("2026-02")]
    ['2026-02-01T00:00:00+00:00', '2026-03-01T00:00:00+00:00']
    """
    try:
        year, mon = (int(x) for x in month.split("-"))
        start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"--month {month!r}: write YYYY-MM, e.g. 2026-11") from None
    days = calendar.monthrange(year, mon)[1]
    return start, start + dt.timedelta(days=days)


class Influx:
    def __init__(self, url: str, db: str, timeout: float) -> None:
        self.url, self.db, self.timeout = url.rstrip("/"), db, timeout

    def query(self, q: str) -> list[dict[str, Any]]:
        reply = requests.post(
            f"{self.url}/query", params={"db": self.db, "epoch": "s"}, data={"q": q}, timeout=self.timeout
        )
        reply.raise_for_status()
        result = reply.json()["results"][0]
        if "error" in result:
            raise ValueError(f"InfluxDB refused {q!r}: {result['error']}")
        series: list[dict[str, Any]] = result.get("series", [])
        return series


def _where(args: argparse.Namespace, start: dt.datetime, end: dt.datetime) -> str:
    for name in ("site", "workshop"):
        if not re.fullmatch(r"[^/'\"\\]*", getattr(args, name)):
            raise ValueError(f"--{name} may not hold / ' \" or \\ (it goes into an InfluxQL regular expression)")
    return (
        f'"site" =~ /^{args.site}$/ AND "workshop" =~ /^{args.workshop}$/ '
        f"AND time >= {int(start.timestamp())}s AND time < {int(end.timestamp())}s"
    )


def figures(
    influx: Influx, args: argparse.Namespace, start: dt.datetime, end: dt.datetime, by_day: bool = False
) -> dict[str, Any]:
    """The month's (or each day's) KPIs: {key: value} or {key: [(day, value), ...]}."""
    where = _where(args, start, end)
    group = " GROUP BY time(1d) fill(none)" if by_day else ""
    select = ", ".join(f'{expr} AS "{key}"' for key, (_, expr) in KPI_SUMS.items())
    select += ', max("continuous_cloud_days") AS "continuous_cloud_days"'
    select += "".join(f', last("{b}") AS "{b}"' for b in BASELINES.values()) if not by_day else ""
    out: dict[str, Any] = {}
    # InfluxQL built from constants and _where's checked tag patterns.
    for s in influx.query(f'SELECT {select} FROM "kpi" WHERE {where}{group}'):  # noqa: S608
        out |= _columns(s, by_day)
    oee = f'SELECT {OEE} AS "oee" FROM "oee" WHERE "window" = \'1m\' AND {where}{group}'  # noqa: S608
    for s in influx.query(oee):
        out |= _columns(s, by_day)
    return out


def _columns(series: dict[str, Any], by_day: bool) -> dict[str, Any]:
    cols = series["columns"]
    if by_day:
        return {
            c: [
                (dt.datetime.fromtimestamp(row[0], dt.UTC).date(), row[i])
                for row in series["values"]
                if row[i] is not None
            ]
            for i, c in enumerate(cols)
            if c != "time"
        }
    row = series["values"][0]
    return {c: row[i] for i, c in enumerate(cols) if c != "time"}


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if key in RATIOS or key == "oee":
        return f"{100 * value:.1f} %"
    if key == "continuous_cloud_days":
        return f"{value:.0f}"
    return f"{value:.4g}"


def _change(key: str, now: Any, before: Any) -> str:
    if not isinstance(now, int | float) or not isinstance(before, int | float) or before == 0:
        return "-"
    if key in RATIOS or key == "oee":
        return f"{100 * (now - before):+.1f} pts"
    return f"{100 * (now / before - 1):+.1f} %"


def _chart(daily: dict[str, list[tuple[dt.date, float]]], keys: list[str], title: str, percent: bool) -> str:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib import dates  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    for key in keys:
        points = daily.get(key, [])
        if points:
            days = dates.date2num([d for d, _ in points])  # type: ignore[no-untyped-call]
            ax.plot(days, [v * (100 if percent else 1) for _, v in points], marker="o", label=key)
    ax.xaxis.set_major_formatter(dates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    ax.set_title(title)
    ax.set_ylabel("%" if percent else "")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def render(
    month: str, now: dict[str, Any], before: dict[str, Any], daily: dict[str, Any], args: argparse.Namespace
) -> str:
    rows = [("oee", "OEE 设备综合效率"), *[(k, label) for k, (label, _) in KPI_SUMS.items()]]
    rows.append(("continuous_cloud_days", "Continuous days on cloud 连续上云天数"))
    body = []
    for key, label in rows:
        baseline = now.get(BASELINES[key]) if key in BASELINES else None
        body.append(
            f"<tr><td>{html.escape(label)}</td><td>{_fmt(key, now.get(key))}</td>"
            f"<td>{_fmt(key, before.get(key))}</td><td>{_change(key, now.get(key), before.get(key))}</td>"
            f"<td>{_fmt(key, baseline)}</td><td>{_change(key, now.get(key), baseline)}</td></tr>"
        )
    charts = [
        _chart(daily, ["oee"], "OEE by day", True),
        _chart(
            daily,
            ["networking_rate", "collection_completeness", "cloud_completeness", "device_on_cloud_ratio"],
            "Networking and cloud by day",
            True,
        ),
        _chart(daily, ["energy_per_good_kwh"], "Energy per good unit by day (kWh)", False),
    ]
    # Chart texts are English: the fonts matplotlib finds on an edge box rarely have CJK glyphs.
    captions = ["每日设备综合效率", "每日联网与上云", "每日单位产品能耗"]
    images = "".join(
        f'<figure><img alt="chart" src="data:image/png;base64,{c}"><figcaption>{t}</figcaption></figure>'
        for c, t in zip(charts, captions, strict=True)
    )
    scope = f"site {html.escape(args.site)}, workshop {html.escape(args.workshop)}, database {html.escape(args.db)}"
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Workshop report {month} 车间月报</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:.3em .6em;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>Workshop report 车间月度报告 {month}</h1>
<p>{scope}. Every figure is a ratio of sums over the month (docs/kpis.md in edge-agent).
Generated {dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}.</p>
<table><tr><th>KPI 指标</th><th>{month}</th><th>month before 上月</th><th>change 变化</th>
<th>baseline 基线</th><th>vs baseline 较基线</th></tr>
{"".join(body)}</table>
{images}
</body></html>
"""


def run(args: argparse.Namespace) -> int:
    try:
        start, end = month_range(args.month)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        print("error: the report draws its charts with matplotlib: pip install 'edge-agent[report]'", file=sys.stderr)
        return 2
    previous_start, _ = month_range(f"{(start - dt.timedelta(days=1)).year}-{(start - dt.timedelta(days=1)).month:02d}")
    influx = Influx(args.influx_url, args.db, args.timeout)
    try:
        now = figures(influx, args, start, end)
        before = figures(influx, args, previous_start, start)
        daily = figures(influx, args, start, end, by_day=True)
    except (requests.RequestException, ValueError, KeyError) as exc:
        print(f"error: cannot read {args.influx_url} database {args.db}: {exc}", file=sys.stderr)
        return 1
    if not now:
        print(f"no data for {args.month} in {args.db} (site {args.site}, workshop {args.workshop})", file=sys.stderr)
        return 1
    out = args.out or Path(f"report-{args.month}.html")
    out.write_text(render(args.month, now, before, daily, args), encoding="utf-8")
    print(f"wrote {out}")
    return 0
