"""The monthly report as one self-contained HTML page: tables, and charts as embedded PNG.

Chart texts are English: the fonts matplotlib finds on an edge box rarely have CJK glyphs; the
captions under them carry the Chinese.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from typing import Any

from edge_agent.rollups import KPI_RATIOS, LOSSES, NOT_LOSSES, OEE_RATIOS
from edge_agent.tools.report_data import BASELINES, Figures, Month, ratio

KPI_LABELS = {
    "oee": "OEE 设备综合效率",
    "networking_rate": "Networking rate 设备联网率",
    "collection_completeness": "Data collection 数据采集率",
    "device_on_cloud_ratio": "Devices on cloud 设备上云率",
    "cloud_completeness": "Cloud completeness 上云完整率",
    "energy_per_good_kwh": "Energy per good unit 单位产品能耗 (kWh)",
    "defect_rate": "Defect rate 不良率",
    "continuous_cloud_days": "Continuous days on cloud 连续上云天数",
}
PERCENT = {"oee", "networking_rate", "collection_completeness", "device_on_cloud_ratio", "cloud_completeness"}
PERCENT |= {"defect_rate", *OEE_RATIOS}


def kpis(figures: Figures) -> dict[str, float | None]:
    """The headline figures: OEE and the workshop KPIs, each a ratio of the month's sums."""
    out: dict[str, float | None] = {"oee": ratio(figures.oee, OEE_RATIOS["oee"])}
    out |= {key: ratio(figures.kpi, fields) for key, fields in KPI_RATIOS.items()}
    days = figures.kpi.get("continuous_cloud_days")
    out["continuous_cloud_days"] = float(days) if isinstance(days, int | float) else None
    return out


def fmt(key: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if key in PERCENT:
        return f"{100 * value:.1f} %"
    if key == "continuous_cloud_days":
        return f"{value:.0f}"
    return f"{value:.4g}"


def change(key: str, now: float | None, before: float | None) -> str:
    if now is None or before is None or before == 0:
        return "-"
    if key in PERCENT:
        return f"{100 * (now - before):+.1f} pts"
    return f"{100 * (now / before - 1):+.1f} %"


def _table(head: list[str], rows: list[list[str]]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def kpi_table(now: Figures, before: Figures) -> str:
    current, previous = kpis(now), kpis(before)
    rows = []
    for key, label in KPI_LABELS.items():
        base_field = BASELINES.get(key)
        raw = now.kpi.get(base_field) if base_field else None
        base = float(raw) if isinstance(raw, int | float) else None
        rows.append(
            [
                label,
                fmt(key, current[key]),
                fmt(key, previous[key]),
                change(key, current[key], previous[key]),
                fmt(key, base),
                change(key, current[key], base),
            ]
        )
    return _table(
        ["KPI 指标", "this month 本月", "month before 上月", "change 变化", "baseline 基线", "vs baseline"], rows
    )


def oee_table(groups: dict[Any, dict[str, Any]], names: list[str]) -> str:
    """A/P/Q/OEE of each group (a line, a machine), from its sums."""
    rows = []
    for key in sorted(groups):
        sums = groups[key]
        figures = [fmt(r, ratio(sums, OEE_RATIOS[r])) for r in OEE_RATIOS]
        counts = [f"{sums.get('good') or 0:.0f}", f"{sums.get('produced') or 0:.0f}"]
        rows.append([*key, *figures, *counts])
    head = [*names, "availability", "performance", "quality", "OEE", "good 合格", "produced 产量"]
    return _table(head, rows)


def pareto(sums: dict[str, Any]) -> list[tuple[str, float, float]]:
    """Losses, largest first: (cause, hours, cumulative share of all losses)."""
    hours = sorted(((label, float(sums.get(f) or 0) / 3600) for f, label in LOSSES.items()), key=lambda x: -x[1])
    total = sum(h for _, h in hours)
    out, running = [], 0.0
    for label, h in hours:
        running += h
        out.append((label, h, running / total if total else 0.0))
    return out


def pareto_table(sums: dict[str, Any]) -> str:
    rows = [[label, f"{h:.2f}", f"{100 * share:.1f} %"] for label, h, share in pareto(sums)]
    apart = [[label, f"{float(sums.get(f) or 0) / 3600:.2f}", "not a loss"] for f, label in NOT_LOSSES.items()]
    return _table(["cause 原因", "hours 小时", "cumulative 累计"], rows + apart)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415 - the report's optional dependency

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def daily_chart(series: dict[str, list[tuple[dt.date, float]]], title: str, percent: bool) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib import dates  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    for name, points in series.items():
        if points:
            days = dates.date2num([d for d, _ in points])  # type: ignore[no-untyped-call]
            ax.plot(days, [v * (100 if percent else 1) for _, v in points], marker="o", label=name)
    ax.xaxis.set_major_formatter(dates.DateFormatter("%m-%d"))  # type: ignore[no-untyped-call]
    ax.set_title(title)
    ax.set_ylabel("%" if percent else "")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def pareto_chart(sums: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ranked = pareto(sums)
    fig, ax = plt.subplots(figsize=(8, 3), dpi=100)
    names = [label.split(" ")[0] for label, _, _ in ranked]  # the English word: see the module's note
    ax.bar(names, [h for _, h, _ in ranked], color="#c0504d")
    ax.set_ylabel("hours")
    ax.set_title("Lost time by cause")
    share = ax.twinx()
    share.plot(names, [100 * s for _, _, s in ranked], color="#333333", marker="o")
    share.set_ylim(0, 105)
    share.set_ylabel("cumulative %")
    return _png(fig)


def by_day(
    rows: dict[Any, dict[str, Any]], fields: dict[str, tuple[str, str]]
) -> dict[str, list[tuple[dt.date, float]]]:
    out: dict[str, list[tuple[dt.date, float]]] = {}
    for name, pair in fields.items():
        points = [(day, ratio(sums, pair)) for day, sums in sorted(rows.items())]
        out[name] = [(d, v) for d, v in points if v is not None]
    return out


def render(month: Month, now: Figures, before: Figures, scope: str, source: str) -> str:
    adoption = {k: KPI_RATIOS[k] for k in ("networking_rate", "collection_completeness", "device_on_cloud_ratio")}
    charts = [
        (daily_chart(by_day(now.oee_by_day, OEE_RATIOS), "A, P, Q and OEE by day", True), "每日设备综合效率"),
        (daily_chart(by_day(now.kpi_by_day, adoption), "Networking and cloud by day", True), "每日联网与上云"),
        (
            daily_chart(
                by_day(now.kpi_by_day, {"energy_per_good_kwh": KPI_RATIOS["energy_per_good_kwh"]}),
                "Energy per good unit by day (kWh)",
                False,
            ),
            "每日单位产品能耗",
        ),
        (pareto_chart(now.oee), "停机损失帕累托"),
    ]
    images = "".join(
        f'<figure><img alt="chart" src="data:image/png;base64,{png}"><figcaption>{caption}</figcaption></figure>'
        for png, caption in charts
    )
    zone = month.zone.key
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Workshop report {month.label} 车间月报</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #999;padding:.3em .6em;text-align:right}}td:first-child{{text-align:left}}</style></head>
<body><h1>Workshop report 车间月度报告 {month.label}</h1>
<p>{html.escape(scope)}; read from {html.escape(source)}. The month and its days run from local midnight
in {html.escape(zone)} ({month.start.isoformat()} to {month.end.isoformat()}). Every figure is a ratio of sums
over the month (docs/kpis.md in edge-agent); OEE from the windows {html.escape(", ".join(now.windows) or "-")}.
Generated {dt.datetime.now(month.zone).strftime("%Y-%m-%d %H:%M %Z")}.</p>
<h2>KPIs 指标</h2>{kpi_table(now, before)}
<h2>OEE by line 产线</h2>{oee_table(now.by_line, ["line 产线"])}
<h2>OEE by machine 设备</h2>{oee_table(now.by_machine, ["line 产线", "machine 设备"])}
<h2>Losses 停机损失</h2>{pareto_table(now.oee)}
{images}
</body></html>
"""
