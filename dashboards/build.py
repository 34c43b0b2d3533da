"""Dashboards as code, built with grafana-foundation-sdk's typed builders (InfluxQL on InfluxDB 1.x).

Run ``python -m edge_agent.dashboards.build`` after editing; a test fails when the JSON is stale,
and every panel query is run against a real InfluxDB in the tests. The SDK has no InfluxDB query
type: :class:`InfluxQL` is ours.

Portable: every panel uses the ``${datasource}`` variable (any InfluxDB datasource of the
Grafana it lands in), and the JSON carries ``__inputs`` for Grafana's import screen.
Ratios over any range are ratios of sums (ISO 22400: never average ratios):
availability = sum(actual_production_s) / sum(planned_busy_s), performance =
sum(ideal_produced_s) / sum(actual_production_s), quality = sum(good) / sum(produced),
OEE = sum(ideal_good_s) / sum(planned_busy_s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import barchart, bargauge, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from edge_agent.dashboards.fleet import enterprise, fleet
from edge_agent.dashboards.panels import DATASOURCE, Query, bands, finish, grid, prop, query_variable, transform
from edge_agent.rollups import KPI_RATIOS, LOSSES, NOT_LOSSES, OEE_RATIOS, ratio, running_ratio, window_filter

PLACE = '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/'
FILTER = f'{PLACE} AND "line" =~ /^$line$/ AND "machine" =~ /^$machine$/ AND $timeFilter'
#: One OEE grid, the ``$window`` variable's (never two summed: each holds all the time once).
OEE_WHERE = f"{window_filter('$window')} AND {FILTER}"
SHIFT_WHERE = f"{window_filter('shift')} AND {FILTER}"
KPI_WHERE = f"{PLACE} AND $timeFilter"
#: Up to the range's end, 90 days back: alarms that started before the range and are still open.
OPEN_LOOKBACK = "time <= ${__to}ms AND time > ${__to}ms - 90d"
#: Stats draw a sparkline of their query's intervals; their number is the whole range's.
BY_INTERVAL = " GROUP BY time($__interval) fill(none)"
RATIOS = {name: ratio(fields) for name, fields in OEE_RATIOS.items()}
#: Colour bands (red below the first value, then yellow, then green): OEE 60 % typical, 85 % world class.
BANDS = {"availability": (0.80, 0.90), "performance": (0.80, 0.95), "quality": (0.95, 0.99), "oee": (0.60, 0.85)}
TITLES = {
    "availability": "Availability 时间开动率",
    "performance": "Performance 性能开动率",
    "quality": "Quality 合格品率",
    "oee": "OEE 设备综合效率",
}
DESCRIPTIONS = {
    "availability": "Actual production time / planned busy time over the range (ISO 22400 APT / PBT).",
    "performance": "Ideal cycle time x produced / actual production time (PRI x PQ / APT).",
    "quality": "Good parts / produced parts (GQ / PQ).",
    "oee": "Ideal cycle time x good parts / planned busy time (= A x P x Q). Bands: below 60 % red, "
    "85 % and above (world class) green.",
}
#: The agent's machine states (measurement machine_state).
STATES = {
    "0": ("running 运行", "green"),
    "1": ("idle 待机", "yellow"),
    "2": ("down 故障", "red"),
    "3": ("setup 换型", "blue"),
    "4": ("planned stop 计划停机", "purple"),
    "5": ("unknown 未知", "gray"),
}


@dataclass(frozen=True)
class Figure:
    """One stat: its title, its InfluxQL expression per interval, how intervals reduce, its unit.

    ``calc`` turns the intervals into the range's number: ``lastNotNull`` for running ratios and
    last values, ``sum`` for amounts, ``max`` and ``mean`` for what they say. ``unit`` is a
    Grafana unit id (``percentunit``, ``s``, ``kwatth``, ``suffix:/h`` ...).
    """

    title: str
    expr: str
    unit: str
    calc: str = "lastNotNull"
    description: str = ""


ADOPTION = [
    Figure("Networking 设备联网率", running_ratio(KPI_RATIOS["networking_rate"]), "percentunit"),
    Figure("Data collection 数据采集率", running_ratio(KPI_RATIOS["collection_completeness"]), "percentunit"),
    Figure("On cloud 设备上云率", running_ratio(KPI_RATIOS["device_on_cloud_ratio"]), "percentunit"),
    Figure("Cloud completeness 上云完整率", running_ratio(KPI_RATIOS["cloud_completeness"]), "percentunit"),
]
UPLOAD = [
    Figure("Days on cloud 连续上云天数", 'last("continuous_cloud_days")', "d"),
    Figure("Upload latency p50 上云时延", 'mean("upload_latency_p50_s")', "s", "mean", "Mean of the intervals' p50."),
    Figure("Upload latency p95", 'max("upload_latency_p95_s")', "s", "max", "Highest p95 of any interval."),
    Figure("Backlog 积压点数", 'last("backlog_points")', "short", description="Points not yet acknowledged."),
    Figure("Oldest backlog 最早积压", 'max("backlog_oldest_age_s")', "s", "max"),
]
THROUGHPUT = 'cumulative_sum(sum("produced")) * 3600 / cumulative_sum(sum("actual_production_s"))'
IMPROVEMENT = [
    Figure("Energy per good 单位产品能耗", running_ratio(KPI_RATIOS["energy_per_good_kwh"]), "kwatth"),
    Figure("Defect rate 不良率", running_ratio(KPI_RATIOS["defect_rate"]), "percentunit"),
    Figure("Throughput 产出率", THROUGHPUT, "suffix: /h", description="Parts per hour of actual production."),
    Figure(
        "Energy reduction 能耗降低",
        f'1 - {running_ratio(KPI_RATIOS["energy_per_good_kwh"])} / last("baseline_energy_per_good_kwh")',
        "percentunit",
    ),
    Figure(
        "Defect reduction 不良率降低",
        f'1 - {running_ratio(KPI_RATIOS["defect_rate"])} / last("baseline_defect_rate")',
        "percentunit",
    ),
    Figure("Throughput gain 产出提升", f'{THROUGHPUT} / last("baseline_throughput_per_h") - 1', "percentunit"),
]


def figure_panel(figure: Figure, where: str, measurement: str, place: model.GridPos) -> stat.Panel:
    """A stat showing ``figure`` over the range, with a sparkline of its intervals."""
    query = f'SELECT {figure.expr} AS "{figure.title}" FROM "{measurement}" WHERE {where}{BY_INTERVAL}'
    panel = (
        stat.Panel()
        .title(figure.title)
        .datasource(DATASOURCE)
        .with_target(Query(query))
        .reduce_options(common_builders.ReduceDataOptions().calcs([figure.calc]))
        .graph_mode(common.BigValueGraphMode.AREA)
        .unit(figure.unit)
        .grid_pos(place)
    )
    return panel.description(figure.description) if figure.description else panel


def ratio_stats() -> list[cogbuilder.Builder[model.Panel]]:
    panels: list[cogbuilder.Builder[model.Panel]] = []
    for i, (name, fields) in enumerate(OEE_RATIOS.items()):
        low, high = BANDS[name]
        figure = Figure(TITLES[name], running_ratio(fields), "percentunit", description=DESCRIPTIONS[name])
        panels.append(
            figure_panel(figure, OEE_WHERE, "oee", grid(6 * i, 0, 6, 4))
            .min(0)
            .max(1)
            .decimals(1)
            .thresholds(bands(low, high))
            .color_mode(common.BigValueColorMode.BACKGROUND)
        )
    return panels


def machine_panels() -> list[cogbuilder.Builder[model.Panel]]:
    oee_low, oee_high = BANDS["oee"]
    by_machine = (
        timeseries.Panel()
        .title("OEE by machine 各设备 OEE")
        .description(
            "Each machine's OEE per interval (at least one OEE window, $window): the ratio of sums of the "
            "windows inside each interval."
        )
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT {RATIOS["oee"]} AS "oee" FROM "oee" WHERE {OEE_WHERE} '
                'GROUP BY time($__interval), "machine" fill(none)',
                alias="$tag_machine",
            )
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .thresholds(bands(oee_low, oee_high))
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED))
        .interval("$window")
        .grid_pos(grid(0, 4, 12, 8))
    )
    mapping = model.ValueMap({k: model.ValueMappingResult(text=t, color=c) for k, (t, c) in STATES.items()})
    states = (
        statetimeline.Panel()
        .title("Machine state 设备状态")
        .description(
            "The agent's state of each machine (its device's codes mapped by oee.state; unknown while "
            "the device cannot be reached)."
        )
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT last("state") FROM "machine_state" WHERE {FILTER} '
                'GROUP BY time($__interval), "machine" fill(previous)',
                alias="$tag_machine",
            )
        )
        .mappings([mapping])
        .interval("10s")
        .grid_pos(grid(12, 4, 12, 8))
    )
    shift = (
        barchart.Panel()
        .title("OEE per shift 班次 OEE")
        .description(
            "OEE of each shift (analytics.shifts) per machine over the last 7 days, whatever the dashboard's range: "
            "a shift's point is stamped at its start. Ratio of sums over the shift."
        )
        .time_from("7d")
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT {RATIOS["oee"]} AS "oee" FROM "oee" WHERE {SHIFT_WHERE} '
                'GROUP BY time(1h), "machine" fill(none)',
                "table",
            )
        )
        .unit("percentunit")
        .min(0)
        .max(1)
        .thresholds(bands(oee_low, oee_high))
        .grid_pos(grid(0, 12, 12, 8))
    )
    table_query = (
        "SELECT "
        + ", ".join(f'{expr} AS "{name}"' for name, expr in RATIOS.items())
        + ', sum("good") AS "good", sum("reject") AS "reject", sum("down_s") AS "down_s",'
        + ' sum("delay_s") AS "delay_s", sum("microstop_s") AS "microstop_s", sum("setup_s") AS "setup_s",'
        + ' sum("failures") AS "failures", sum("actual_production_s") / sum("failures") AS "mtbf_s",'
        + ' sum("down_s") / sum("failures") AS "mttr_s"'
        + f' FROM "oee" WHERE {OEE_WHERE} GROUP BY "line", "machine"'
    )
    machines = (
        table.Panel()
        .title("Machines over the range 设备汇总")
        .description("Per machine over the range: ratios of sums, counts, losses (s), MTBF and MTTR (s).")
        .datasource(DATASOURCE)
        .with_target(Query(table_query, "table"))
        .with_transformation(transform("organize", {"excludeByName": {"Time": True}}))
        .override_by_regexp("availability|performance|quality|oee", [prop("unit", "percentunit")])
        .override_by_regexp(".*_s$", [prop("unit", "s")])
        .grid_pos(grid(12, 12, 12, 8))
    )
    return [by_machine, states, shift, machines]


def loss_panels() -> list[cogbuilder.Builder[model.Panel]]:
    pareto_query = (
        "SELECT " + ", ".join(f'sum("{k}") AS "{v}"' for k, v in LOSSES.items()) + f' FROM "oee" WHERE {OEE_WHERE}'
    )
    pareto = (
        barchart.Panel()
        .title("Downtime Pareto 停机损失帕累托")
        .description(
            "Lost time by cause over the range, largest first, with the cumulative share of all losses. Planned "
            "breaks, planned stops and unknown time are not losses (they are outside planned busy time): see "
            "the panel beside."
        )
        .datasource(DATASOURCE)
        .with_target(Query(pareto_query, "table"))
        .with_transformation(transform("organize", {"excludeByName": {"Time": True}}))
        .with_transformation(transform("reduce", {"mode": "seriesToRows", "reducers": ["sum"]}))
        .with_transformation(transform("sortBy", {"sort": [{"field": "Total", "desc": True}]}))
        .with_transformation(
            transform(
                "calculateField",
                {
                    "mode": "cumulativeFunctions",
                    "cumulative": {"field": "Total", "reducer": "sum"},
                    "alias": "cumulative",
                },
            )
        )
        .with_transformation(
            transform(
                "calculateField",
                {
                    "mode": "binary",
                    "binary": {
                        "left": "cumulative",
                        "operator": "/",
                        "right": {"matcher": {"id": "byName", "options": "Total"}},
                    },
                    "alias": "cumulative %",
                    "replaceFields": False,
                },
            )
        )
        .unit("s")
        .override_by_name("cumulative %", [prop("unit", "percentunit"), prop("custom.axisPlacement", "right")])
        .grid_pos(grid(0, 20, 12, 8))
    )
    apart = (
        stat.Panel()
        .title("Outside planned time 计划外时间")
        .description(
            "Time outside planned busy time, summed over the range: breaks (analytics.shifts), planned stops "
            "(the machine's planned_stop state) and time the state was unknown (device unreachable or silent)."
        )
        .datasource(DATASOURCE)
        .with_target(
            Query(
                "SELECT "
                + ", ".join(f'sum("{k}") AS "{v}"' for k, v in NOT_LOSSES.items())
                + f' FROM "oee" WHERE {OEE_WHERE}{BY_INTERVAL}'
            )
        )
        .reduce_options(common_builders.ReduceDataOptions().calcs(["sum"]))
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .unit("s")
        .grid_pos(grid(0, 28, 12, 4))
    )
    anomaly = (
        timeseries.Panel()
        .title("Anomaly score 异常评分")
        .description("Highest anomaly score per signal (1 = at the alarm threshold of the most convinced detector).")
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT max("score") FROM "anomaly" WHERE {FILTER} '
                'GROUP BY time($__interval), "machine", "signal" fill(none)',
                alias="$tag_machine $tag_signal",
            )
        )
        .thresholds(
            board.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(None, "green"), model.Threshold(1.0, "red")])
        )
        .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.LINE))
        .interval("10s")
        .grid_pos(grid(12, 20, 12, 8))
    )
    return [pareto, apart, anomaly]


def process_panels() -> list[cogbuilder.Builder[model.Panel]]:
    energy = figure_panel(
        Figure(
            "Energy used 能耗",
            'sum("energy_kwh")',
            "kwatth",
            "sum",
            "Energy over the range: the agent's per-interval increases of every configured energy meter "
            "(kpis.energy_meters), so several meters add up correctly.",
        ),
        KPI_WHERE,
        "kpi",
        grid(12, 28, 6, 4),
    )
    good = figure_panel(
        Figure("Good parts 合格品产量", 'sum("good")', "short", "sum", "Good parts (believed counter increases)."),
        OEE_WHERE,
        "oee",
        grid(18, 28, 6, 4),
    )
    # Open at the range's end: the latest alarm point of a machine, signal and detector says
    # active = 1 (its start may lie before the range: the look-back is 90 days).
    open_alarms = (
        table.Panel()
        .title("Open alarms 当前报警")
        .description(
            "Alarms still active at the end of the range: when each started, on which machine, signal "
            "(_machine: the machine's signals together) and detector. Empty while nothing is abnormal."
        )
        .datasource(DATASOURCE)
        .with_target(
            Query(
                'SELECT "open" FROM (SELECT last("active") AS "open" FROM "alarm" WHERE '
                f'{FILTER.replace("$timeFilter", OPEN_LOOKBACK)} GROUP BY "machine", "signal", "detector") '
                'WHERE "open" = 1 GROUP BY "machine", "signal", "detector"',
                "table",
            )
        )
        .override_by_name("open", [prop("custom.hidden", True)])
        .sort_by([common_builders.TableSortByFieldState().display_name("Time").desc(True)])
        .grid_pos(grid(0, 32, 12, 8))
    )
    alarms = (
        table.Panel()
        .title("Ended alarms 已结束报警")
        .description("One row per alarm that ended in the range: when it ended, how long it lasted and its peak score.")
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT "duration_s", "peak" FROM "alarm" WHERE "active" = 0 AND {FILTER} '
                'GROUP BY "machine", "signal", "detector"',
                "table",
            )
        )
        .override_by_name("duration_s", [prop("unit", "s"), prop("displayName", "duration")])
        .sort_by([common_builders.TableSortByFieldState().display_name("Time").desc(True)])
        .grid_pos(grid(12, 32, 12, 8))
    )
    return [energy, good, open_alarms, alarms]


def signal_panels() -> list[cogbuilder.Builder[model.Panel]]:
    """One panel per signal chosen in ``$signal`` (repeated by Grafana), its unit in the legend."""
    signal = (
        timeseries.Panel()
        .title("$signal")
        .description(
            "Readings of the signal, mean per interval, one line per machine. The legend gives the unit of the "
            "device profile (the raw points' unit tag)."
        )
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT mean("value") FROM "raw" WHERE "signal" =~ /^$signal$/ AND {FILTER} '
                'GROUP BY time($__interval), "machine", "unit" fill(none)',
                alias="$tag_machine $tag_unit",
            )
        )
        .repeat("signal")
        .repeat_direction("h")
        .grid_pos(grid(0, 58, 12, 8))
    )
    return [signal]


def figure_row(figures: list[Figure], measurement: str, y: int, widths: list[int]) -> list[stat.Panel]:
    places = [sum(widths[:i]) for i in range(len(widths))]
    return [
        figure_panel(f, KPI_WHERE, measurement, grid(x, y, w, 4))
        for f, x, w in zip(figures, places, widths, strict=True)
    ]


def kpi_panels() -> list[cogbuilder.Builder[model.Panel]]:
    line_query = (
        "SELECT "
        + ", ".join(f'{expr} AS "{name}"' for name, expr in RATIOS.items())
        + f' FROM "oee" WHERE {OEE_WHERE} GROUP BY "line"'
    )
    low, high = BANDS["oee"]
    adoption = [p.thresholds(bands(0.9, 0.98)).min(0).max(1) for p in figure_row(ADOPTION, "kpi", 40, [6] * 4)]
    return [
        *adoption,
        *figure_row(UPLOAD, "kpi", 44, [5, 5, 5, 5, 4]),
        *figure_row(IMPROVEMENT, "kpi", 48, [4] * 6),
        bargauge.Panel()
        .title("OEE by line 产线OEE")
        .description("Each line: its machines' time elements summed, then divided (never an average of ratios).")
        .datasource(DATASOURCE)
        .with_target(Query(line_query, "table"))
        .unit("percentunit")
        .min(0)
        .max(1)
        .thresholds(bands(low, high))
        .grid_pos(grid(0, 52, 24, 6)),
    ]


#: Tag values of the raw readings: every device writes them, with or without an oee: section.
VARIABLES = [
    ("site", "Site 工厂", ""),
    ("workshop", "Workshop 车间", '"site" =~ /^$site$/'),
    ("line", "Line 产线", '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/'),
    ("machine", "Machine 设备", '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/ AND "line" =~ /^$line$/'),
    (
        "signal",
        "Signals 信号",
        '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/ AND "line" =~ /^$line$/ AND "machine" =~ /^$machine$/',
    ),
]


def plant_overview() -> dict[str, Any]:
    builder = (
        board.Dashboard("Plant overview 工厂总览")
        .uid("edge-plant-overview")
        .description("OEE, machine states, losses, anomalies and the workshop KPIs written by edge-agent agents.")
        .tags(["edge-agent", "oee"])
        .timezone("browser")
        .refresh("10s")
        .time("now-6h", "now")
        .with_variable(board.DatasourceVariable("datasource").label("InfluxDB").type("influxdb"))
    )
    for name, label, where in VARIABLES:
        query = f'SHOW TAG VALUES FROM "raw" WITH KEY = "{name}"' + (f" WHERE {where}" if where else "")
        builder = builder.with_variable(query_variable(name, label, query))
    # One OEE grid at a time (agents write each window length they are set to, and shifts).
    window = query_variable(
        "window",
        "OEE window 统计窗口",
        f'SHOW TAG VALUES FROM "oee" WITH KEY = "window" WHERE "window" != \'shift\' AND {PLACE}',
        choose_many=False,
    )
    builder = builder.with_variable(window.description("The OEE windows' length (analytics.oee_window)."))
    for p in ratio_stats() + machine_panels() + loss_panels() + process_panels() + kpi_panels() + signal_panels():
        builder = builder.with_panel(p)
    return finish(builder)


DASHBOARDS = {"plant-overview.json": plant_overview, "fleet.json": fleet, "enterprise.json": enterprise}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    here = Path(__file__).parent
    for name in DASHBOARDS:
        (here / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {here / name}")


if __name__ == "__main__":
    main()
