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
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE = model.DataSourceRef(type_val="influxdb", uid="${datasource}")
FILTER = (
    '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/ AND "line" =~ /^$line$/ '
    'AND "machine" =~ /^$machine$/ AND $timeFilter'
)
OEE_WHERE = f"\"window\" = '1m' AND {FILTER}"
SHIFT_WHERE = f"\"window\" = 'shift' AND {FILTER}"
KPI_WHERE = '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/ AND $timeFilter'
RATIOS = {
    "availability": 'sum("actual_production_s") / sum("planned_busy_s")',
    "performance": 'sum("ideal_produced_s") / sum("actual_production_s")',
    "quality": 'sum("good") / sum("produced")',
    "oee": 'sum("ideal_good_s") / sum("planned_busy_s")',
}
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
LOSSES = {
    "down_s": "down 故障",
    "delay_s": "delay 待机",
    "microstop_s": "micro-stops 短停",
    "setup_s": "setup 换型",
    "break_s": "break 休息",
    "unknown_s": "unknown 未知",
}
ADOPTION = {
    "networking 设备联网率": 'sum("devices_seen") / sum("devices_in_scope")',
    "collection 数据采集率": 'sum("samples_valid") / sum("samples_expected")',
    "on cloud 设备上云率": 'sum("devices_on_cloud") / sum("devices_in_scope")',
    "cloud completeness 上云完整率": 'sum("points_acked") / sum("points_produced")',
}
UPLOAD = {
    "cloud days 连续上云天数": 'last("continuous_cloud_days")',
    "latency p50 s 上云时延": 'mean("upload_latency_p50_s")',
    "latency p95 s": 'max("upload_latency_p95_s")',
    "backlog 积压点数": 'last("backlog_points")',
    "oldest s 最早积压": 'max("backlog_oldest_age_s")',
}
IMPROVEMENT = {
    "kWh per good 单位产品能耗": 'sum("energy_kwh") / sum("good")',
    "defect rate 不良率": 'sum("reject") / sum("produced")',
    "throughput per h 产出率": 'sum("produced") * 3600 / sum("actual_production_s")',
    "energy reduction 能耗降低": '1 - sum("energy_kwh") / sum("good") / last("baseline_energy_per_good_kwh")',
    "defect reduction 不良率降低": '1 - sum("reject") / sum("produced") / last("baseline_defect_rate")',
    "throughput gain 产出提升": (
        'sum("produced") * 3600 / sum("actual_production_s") / last("baseline_throughput_per_h") - 1'
    ),
}


@dataclass
class InfluxQL(cogvariants.Dataquery):
    """An InfluxQL query of Grafana's InfluxDB datasource (raw query mode)."""

    query: str
    result_format: str = "time_series"
    alias: str = ""
    ref_id: str = "A"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.ref_id,
            "datasource": {"type": "influxdb", "uid": "${datasource}"},
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


class Query(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of :class:`InfluxQL` targets (``result_format`` time_series or table)."""

    def __init__(self, query: str, result_format: str = "time_series", alias: str = "") -> None:
        self._internal = InfluxQL(query, result_format, alias)

    def build(self) -> InfluxQL:
        return self._internal


#: Stat panels show the one value their query returns.
LAST = common_builders.ReduceDataOptions().calcs(["lastNotNull"])


def kpi_query(fields: dict[str, str]) -> str:
    return (
        "SELECT " + ", ".join(f'{expr} AS "{name}"' for name, expr in fields.items()) + f' FROM "kpi" WHERE {KPI_WHERE}'
    )


def bands(low: float, high: float) -> board.ThresholdsConfig:
    return (
        board.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(None, "red"), model.Threshold(low, "yellow"), model.Threshold(high, "green")])
    )


def grid(x: int, y: int, w: int, h: int) -> model.GridPos:
    return model.GridPos(h=h, w=w, x=x, y=y)


def transform(kind: str, options: dict[str, Any]) -> model.DataTransformerConfig:
    t = model.DataTransformerConfig()
    t.id_val, t.options = kind, options
    return t


def stat_panel(title: str, description: str, query: str, place: model.GridPos, unit: str = "") -> stat.Panel:
    """A stat panel showing the one value its query returns."""
    panel = (
        stat.Panel()
        .title(title)
        .reduce_options(LAST)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(Query(query))
        .grid_pos(place)
    )
    return panel.unit(unit) if unit else panel


def ratio_stats() -> list[cogbuilder.Builder[model.Panel]]:
    panels: list[cogbuilder.Builder[model.Panel]] = []
    for i, (name, expr) in enumerate(RATIOS.items()):
        low, high = BANDS[name]
        panels.append(
            stat.Panel()
            .title(TITLES[name])
            .description(DESCRIPTIONS[name])
            .datasource(DATASOURCE)
            .with_target(Query(f'SELECT {expr} AS "{name}" FROM "oee" WHERE {OEE_WHERE}'))
            .unit("percentunit")
            .min(0)
            .max(1)
            .decimals(1)
            .thresholds(bands(low, high))
            .color_mode(common.BigValueColorMode.BACKGROUND)
            .reduce_options(LAST)
            .grid_pos(grid(6 * i, 0, 6, 4))
        )
    return panels


def machine_panels() -> list[cogbuilder.Builder[model.Panel]]:
    oee_low, oee_high = BANDS["oee"]
    by_machine = (
        timeseries.Panel()
        .title("OEE by machine 各设备 OEE")
        .description("Each machine's OEE per 1-minute window (ratio of sums within each interval).")
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
        .interval("1m")
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
        .override_by_regexp("availability|performance|quality|oee", [_prop("unit", "percentunit")])
        .override_by_regexp(".*_s$", [_prop("unit", "s")])
        .grid_pos(grid(12, 12, 12, 8))
    )
    return [by_machine, states, shift, machines]


def _prop(key: str, value: Any) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=key, value=value)


def loss_panels() -> list[cogbuilder.Builder[model.Panel]]:
    pareto_query = (
        "SELECT " + ", ".join(f'sum("{k}") AS "{v}"' for k, v in LOSSES.items()) + f' FROM "oee" WHERE {OEE_WHERE}'
    )
    pareto = (
        barchart.Panel()
        .title("Downtime Pareto 停机损失帕累托")
        .description("Lost time by cause over the range, largest first, with the cumulative share of all losses.")
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
        .override_by_name("cumulative %", [_prop("unit", "percentunit"), _prop("custom.axisPlacement", "right")])
        .grid_pos(grid(0, 20, 12, 8))
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
    return [pareto, anomaly]


def process_panels() -> list[cogbuilder.Builder[model.Panel]]:
    temp = (
        timeseries.Panel()
        .title("Spindle temperature 主轴温度")
        .description("Raw readings of the signal named spindle_temp, mean per interval.")
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT mean("value") FROM "raw" WHERE "signal" = \'spindle_temp\' AND {FILTER} '
                'GROUP BY time($__interval), "machine" fill(none)',
                alias="$tag_machine",
            )
        )
        .unit("celsius")
        .interval("10s")
        .grid_pos(grid(0, 28, 12, 8))
    )
    energy = stat_panel(
        "Energy used 能耗 (kWh)",
        "Energy over the range: the sum of the agent's per-interval increases of every configured "
        "energy meter (kpis.energy_meters), so several meters add up correctly.",
        f'SELECT sum("energy_kwh") AS "kWh" FROM "kpi" WHERE {KPI_WHERE}',
        grid(12, 28, 6, 8),
        "kwatth",
    )
    good = stat_panel(
        "Good parts 合格品产量",
        "Good parts counted over the range (believed counter increases).",
        f'SELECT sum("good") AS "good" FROM "oee" WHERE {OEE_WHERE}',
        grid(18, 28, 6, 8),
        "none",
    )
    alarms = (
        table.Panel()
        .title("Alarms 异常报警")
        .description("One row per alarm that ended in the range: when it ended, how long it lasted and its peak score.")
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT "duration_s", "peak" FROM "alarm" WHERE "active" = 0 AND {FILTER} '
                'GROUP BY "machine", "signal", "detector"',
                "table",
            )
        )
        .override_by_name("duration_s", [_prop("unit", "s"), _prop("displayName", "duration")])
        .sort_by([common_builders.TableSortByFieldState().display_name("Time").desc(True)])
        .grid_pos(grid(0, 36, 24, 8))
    )
    return [temp, energy, good, alarms]


def kpi_panels() -> list[cogbuilder.Builder[model.Panel]]:
    line_query = (
        "SELECT "
        + ", ".join(f'{expr} AS "{name}"' for name, expr in RATIOS.items())
        + f' FROM "oee" WHERE {OEE_WHERE} GROUP BY "line"'
    )
    low, high = BANDS["oee"]
    return [
        stat_panel(
            "Networking and cloud 联网与上云",
            "Shop-floor and cloud-adoption KPIs over the range (ratios of sums; docs/kpis.md).",
            kpi_query(ADOPTION),
            grid(0, 44, 12, 6),
            "percentunit",
        ).thresholds(bands(0.9, 0.98)),
        stat_panel(
            "Upload and backlog 上云时延与积压",
            "Continuous days on cloud, upload latency (s) and the edge backlog.",
            kpi_query(UPLOAD),
            grid(12, 44, 12, 6),
        ),
        stat_panel(
            "Energy and quality against the baseline 能耗与质量对比基线",
            "Energy per good unit, defect rate and throughput, and their change from the baseline (kpis.baseline).",
            kpi_query(IMPROVEMENT),
            grid(0, 50, 24, 6),
        ),
        bargauge.Panel()
        .title("OEE by line 产线OEE")
        .description("Each line: its machines' time elements summed, then divided (never an average of ratios).")
        .datasource(DATASOURCE)
        .with_target(Query(line_query, "table"))
        .unit("percentunit")
        .min(0)
        .max(1)
        .thresholds(bands(low, high))
        .grid_pos(grid(0, 56, 24, 6)),
    ]


def query_variable(name: str, label: str, query: str) -> board.QueryVariable:
    return (
        board.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )


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
        .with_variable(query_variable("site", "Site 工厂", 'SHOW TAG VALUES FROM "oee" WITH KEY = "site"'))
        .with_variable(
            query_variable(
                "workshop",
                "Workshop 车间",
                'SHOW TAG VALUES FROM "oee" WITH KEY = "workshop" WHERE "site" =~ /^$site$/',
            )
        )
        .with_variable(
            query_variable(
                "line",
                "Line 产线",
                'SHOW TAG VALUES FROM "oee" WITH KEY = "line" WHERE "site" =~ /^$site$/ '
                'AND "workshop" =~ /^$workshop$/',
            )
        )
        .with_variable(
            query_variable(
                "machine",
                "Machine 设备",
                'SHOW TAG VALUES FROM "oee" WITH KEY = "machine" WHERE "site" =~ /^$site$/ '
                'AND "workshop" =~ /^$workshop$/ AND "line" =~ /^$line$/',
            )
        )
    )
    for p in ratio_stats() + machine_panels() + loss_panels() + process_panels() + kpi_panels():
        builder = builder.with_panel(p)
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for i, p in enumerate(data["panels"], start=1):
        p["id"] = i
    # Grafana's import screen asks for these: any InfluxDB datasource.
    data = {
        "__inputs": [
            {
                "name": "DS_INFLUXDB",
                "label": "InfluxDB",
                "description": "the InfluxDB (InfluxQL) the agents write to",
                "type": "datasource",
                "pluginId": "influxdb",
                "pluginName": "InfluxDB",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "influxdb", "name": "InfluxDB", "version": "1.0.0"},
        ],
        **data,
    }
    return data


DASHBOARDS = {"plant-overview.json": plant_overview}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    here = Path(__file__).parent
    for name in DASHBOARDS:
        (here / name).write_text(render(name), encoding="utf-8")
        print(f"wrote {here / name}")


if __name__ == "__main__":
    main()
