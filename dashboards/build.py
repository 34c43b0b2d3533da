"""Dashboards as code: writes plant-overview.json (Grafana JSON model, InfluxQL on InfluxDB).

Run ``python dashboards/build.py`` after editing; a test fails when the JSON is stale.
Ratios over any range are ratios of sums (ISO 22400: never average ratios):
availability = sum(actual_production_s) / sum(planned_busy_s), performance =
sum(ideal_produced_s) / sum(actual_production_s), quality = sum(good) / sum(produced),
OEE = sum(ideal_good_s) / sum(planned_busy_s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "influxdb", "uid": "edge-influxdb"}
FILTER = (
    '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/ AND "line" =~ /^$line$/ '
    'AND "machine" =~ /^$machine$/ AND $timeFilter'
)
OEE_WHERE = f"\"window\" = '1m' AND {FILTER}"
KPI_WHERE = '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/ AND $timeFilter'
#: Shop-floor and cloud KPIs over the range: ratios of sums (docs/kpis.md).
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


def kpi_query(fields: dict[str, str]) -> str:
    return (
        "SELECT " + ", ".join(f'{expr} AS "{name}"' for name, expr in fields.items()) + f' FROM "kpi" WHERE {KPI_WHERE}'
    )


RATIOS = {
    "availability": 'sum("actual_production_s") / sum("planned_busy_s")',
    "performance": 'sum("ideal_produced_s") / sum("actual_production_s")',
    "quality": 'sum("good") / sum("produced")',
    "oee": 'sum("ideal_good_s") / sum("planned_busy_s")',
}
STATES = {
    "1": ("running 运行", "green"),
    "2": ("idle 待机", "yellow"),
    "3": ("down 故障", "red"),
    "4": ("setup 换型", "blue"),
    "5": ("planned stop 计划停机", "purple"),
}


def target(query: str, fmt: str = "time_series", ref: str = "A", alias: str = "") -> dict[str, Any]:
    t: dict[str, Any] = {
        "refId": ref,
        "datasource": DATASOURCE,
        "query": query,
        "rawQuery": True,
        "resultFormat": fmt,
    }
    if alias:
        t["alias"] = alias
    return t


def panel(
    pid: int,
    title: str,
    kind: str,
    grid: tuple[int, int, int, int],
    targets: list[dict[str, Any]],
    unit: str = "",
    extra: dict[str, Any] | None = None,
    overrides: list[Any] | None = None,
) -> dict[str, Any]:
    x, y, w, h = grid
    defaults: dict[str, Any] = {"unit": unit} if unit else {}
    if unit == "percentunit":
        defaults |= {"min": 0, "max": 1, "decimals": 1}
    p: dict[str, Any] = {
        "id": pid,
        "title": title,
        "type": kind,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {},
    }
    if extra:
        p.update(extra)
    return p


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "regex": "",
    }


def plant_overview() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    for i, (name, expr) in enumerate(RATIOS.items()):
        title = {
            "availability": "Availability 时间开动率",
            "performance": "Performance 性能开动率",
            "quality": "Quality 合格品率",
            "oee": "OEE 设备综合效率",
        }[name]
        panels.append(
            panel(
                i + 1,
                title,
                "stat",
                (6 * i, 0, 6, 4),
                [target(f'SELECT {expr} AS "{name}" FROM "oee" WHERE {OEE_WHERE}')],
                "percentunit",
                {
                    "options": {
                        "reduceOptions": {"calcs": ["lastNotNull"]},
                        "colorMode": "background",
                    }
                },
            )
        )
    panels.append(
        panel(
            5,
            "OEE by machine 各设备 OEE",
            "timeseries",
            (0, 4, 12, 8),
            [
                target(
                    f'SELECT {RATIOS["oee"]} AS "oee" FROM "oee" WHERE {OEE_WHERE} '
                    'GROUP BY time($__interval), "machine" fill(none)',
                    alias="$tag_machine",
                )
            ],
            "percentunit",
            {"interval": "1m"},
        )
    )
    panels.append(
        panel(
            6,
            "Machine state 设备状态",
            "state-timeline",
            (12, 4, 12, 8),
            [
                target(
                    'SELECT last("value") FROM "raw" WHERE "signal" = \'state\' AND '
                    + FILTER
                    + ' GROUP BY time($__interval), "machine" fill(previous)',
                    alias="$tag_machine",
                )
            ],
            extra={"interval": "10s"},
            overrides=[],
        )
    )
    panels[-1]["fieldConfig"]["defaults"]["mappings"] = [
        {
            "type": "value",
            "options": {k: {"text": text, "color": color} for k, (text, color) in STATES.items()},
        }
    ]
    table_query = (
        "SELECT "
        + ", ".join(f'{expr} AS "{name}"' for name, expr in RATIOS.items())
        + ', sum("good") AS "good", sum("reject") AS "reject", sum("down_s") AS "down_s",'
        + ' sum("delay_s") AS "delay_s", sum("microstop_s") AS "microstop_s", sum("setup_s") AS "setup_s",'
        + ' sum("failures") AS "failures", sum("actual_production_s") / sum("failures") AS "mtbf_s",'
        + ' sum("down_s") / sum("failures") AS "mttr_s"'
        + f' FROM "oee" WHERE {OEE_WHERE} GROUP BY "line", "machine"'
    )
    panels.append(
        panel(
            7,
            "Machines over the range 设备汇总",
            "table",
            (0, 12, 24, 8),
            [target(table_query, "table")],
            extra={"transformations": [{"id": "organize", "options": {"excludeByName": {"Time": True}}}]},
        )
    )
    panels.append(
        panel(
            8,
            "Losses by machine 停机损失",
            "barchart",
            (0, 20, 12, 8),
            [
                target(
                    'SELECT sum("down_s") AS "down 故障", sum("delay_s") AS "delay 待机", '
                    'sum("microstop_s") AS "micro-stops 短停", sum("setup_s") AS "setup 换型", '
                    'sum("break_s") AS "break 休息", '
                    f'sum("unknown_s") AS "unknown 未知" FROM "oee" WHERE {OEE_WHERE} GROUP BY "machine"',
                    "table",
                )
            ],
            "s",
        )
    )
    panels.append(
        panel(
            9,
            "Anomaly score 异常评分",
            "timeseries",
            (12, 20, 12, 8),
            [
                target(
                    f'SELECT max("score") FROM "anomaly" WHERE {FILTER} '
                    'GROUP BY time($__interval), "machine", "signal" fill(none)',
                    alias="$tag_machine $tag_signal",
                )
            ],
            extra={"interval": "10s"},
        )
    )
    panels.append(
        panel(
            10,
            "Spindle temperature 主轴温度",
            "timeseries",
            (0, 28, 12, 8),
            [
                target(
                    'SELECT mean("value") FROM "raw" WHERE "signal" = \'spindle_temp\' AND '
                    + FILTER
                    + ' GROUP BY time($__interval), "machine" fill(none)',
                    alias="$tag_machine",
                )
            ],
            "celsius",
            {"interval": "10s"},
        )
    )
    panels.append(
        panel(
            11,
            "Energy used 能耗 (kWh)",
            "stat",
            (12, 28, 6, 8),
            [
                target(
                    'SELECT spread("value") AS "kWh" FROM "raw" WHERE "signal" = \'energy\' AND '
                    '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/ AND $timeFilter'
                )
            ],
            "kwatth",
        )
    )
    panels.append(
        panel(
            12,
            "Good parts 合格品产量",
            "stat",
            (18, 28, 6, 8),
            [target(f'SELECT sum("good") AS "good" FROM "oee" WHERE {OEE_WHERE}')],
            "none",
        )
    )
    panels.append(
        panel(
            13,
            "Alarms 异常报警",
            "table",
            (0, 36, 24, 8),
            [
                target(
                    'SELECT "active", "duration_s", "peak" FROM "alarm" WHERE '
                    + FILTER
                    + ' GROUP BY "machine", "signal", "detector"',
                    "table",
                )
            ],
            extra={"options": {"sortBy": [{"displayName": "Time", "desc": True}]}},
        )
    )
    panels.append(
        panel(
            14, "Networking and cloud 联网与上云", "stat", (0, 44, 12, 6), [target(kpi_query(ADOPTION))], "percentunit"
        )
    )
    panels.append(panel(15, "Upload and backlog 上云时延与积压", "stat", (12, 44, 12, 6), [target(kpi_query(UPLOAD))]))
    panels.append(
        panel(
            16,
            "Energy and quality against the baseline 能耗与质量对比基线",
            "stat",
            (0, 50, 24, 6),
            [target(kpi_query(IMPROVEMENT))],
        )
    )
    # Lines roll up their machines: sums of time elements and counts, then the ratios.
    line_query = (
        "SELECT "
        + ", ".join(f'{expr} AS "{name}"' for name, expr in RATIOS.items())
        + f' FROM "oee" WHERE {OEE_WHERE} GROUP BY "line"'
    )
    panels.append(
        panel(17, "OEE by line 产线OEE", "bargauge", (0, 56, 24, 6), [target(line_query, "table")], "percentunit")
    )
    return {
        "uid": "edge-plant-overview",
        "title": "Plant overview 工厂总览",
        "tags": ["edge-monitor", "oee"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                variable("site", "Site 工厂", 'SHOW TAG VALUES FROM "oee" WITH KEY = "site"'),
                variable(
                    "workshop",
                    "Workshop 车间",
                    'SHOW TAG VALUES FROM "oee" WITH KEY = "workshop" WHERE "site" =~ /^$site$/',
                ),
                variable(
                    "line",
                    "Line 产线",
                    'SHOW TAG VALUES FROM "oee" WITH KEY = "line" WHERE "site" =~ /^$site$/ '
                    'AND "workshop" =~ /^$workshop$/',
                ),
                variable(
                    "machine",
                    "Machine 设备",
                    'SHOW TAG VALUES FROM "oee" WITH KEY = "machine" WHERE "site" =~ /^$site$/ '
                    'AND "workshop" =~ /^$workshop$/ AND "line" =~ /^$line$/',
                ),
            ]
        },
        "panels": panels,
    }


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
