"""The Fleet and Enterprise dashboards: every agent of a group, and the programmes' KPIs per
workshop and for the enterprise.

Fleet reads the ``agent`` points (the fleet contract, docs/schema.md): each agent's last report,
version, configuration hash, devices down, backlog and the age of its last acknowledgement; an
agent that stopped reporting shows as ``silent`` in the reporting timeline and is missing from
the "reporting now" count. Enterprise reads ``kpi`` and ``oee``: ratios of sums per workshop and
over the enterprise, this period beside the one before (a panel shifted by a month).
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as model

from edge_agent.dashboards.panels import DATASOURCE, Query, finish, grid, prop, query_variable
from edge_agent.rollups import KPI_RATIOS, OEE_RATIOS, ratio, window_filter

SCOPE = '"site" =~ /^$site$/ AND "workshop" =~ /^$workshop$/'
AGENTS_IN = (
    'SELECT count("n") AS "agents" FROM (SELECT last("uptime_s") AS "n" FROM "agent" WHERE {where} GROUP BY "agent")'
)
REPORTING_NOW = (
    'SELECT count("n") AS "reporting now" FROM (SELECT last("uptime_s") AS "n" FROM "agent" '
    f'WHERE {SCOPE} AND time > now() - $silent_after GROUP BY "agent")'
)
AGENT_TABLE = (
    'SELECT last("uptime_s") AS "uptime_s", last("devices_in_scope") AS "devices", '
    'last("devices_down") AS "devices_down", last("buffer_points") AS "backlog", '
    'last("buffer_oldest_age_s") AS "oldest_s", last("last_ack_age_s") AS "last_ack_s" '
    f'FROM "agent" WHERE {SCOPE} AND $timeFilter GROUP BY "site", "workshop", "agent", "version", "config"'
)
KPI_COLUMNS = {
    "networking": KPI_RATIOS["networking_rate"],
    "collection": KPI_RATIOS["collection_completeness"],
    "on_cloud": KPI_RATIOS["device_on_cloud_ratio"],
    "cloud_completeness": KPI_RATIOS["cloud_completeness"],
    "kwh_per_good": KPI_RATIOS["energy_per_good_kwh"],
}
KPI_TABLE = (
    "SELECT "
    + ", ".join(f'{ratio(fields)} AS "{name}"' for name, fields in KPI_COLUMNS.items())
    + ', max("continuous_cloud_days") AS "cloud_days"'
    + f' FROM "kpi" WHERE {SCOPE} AND $timeFilter GROUP BY "site", "workshop"'
)
OEE_TABLE = (
    "SELECT "
    + ", ".join(f'{ratio(fields)} AS "{name}"' for name, fields in OEE_RATIOS.items())
    + f' FROM "oee" WHERE {window_filter("$window")} AND {SCOPE} AND $timeFilter GROUP BY "site", "workshop"'
)


def _units(panel: table.Panel) -> table.Panel:
    return (
        panel.override_by_regexp(
            "networking|collection|on_cloud|cloud_completeness|availability|performance|quality|oee",
            [prop("unit", "percentunit")],
        )
        .override_by_regexp(".*_s$", [prop("unit", "s")])
        .override_by_name("kwh_per_good", [prop("unit", "kwatth")])
        .override_by_name("cloud_days", [prop("unit", "d")])
    )


def per_agent(title: str, field: str, description: str, x: int) -> timeseries.Panel:
    """One line per agent: the field's last value per interval."""
    return (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .description(description)
        .with_target(
            Query(
                f'SELECT last("{field}") FROM "agent" WHERE {SCOPE} AND $timeFilter '
                'GROUP BY time($__interval), "agent" fill(none)',
                alias="$tag_agent",
            )
        )
        .unit("short")
        .interval("10s")
        .grid_pos(grid(x, 16, 12, 8))
    )


def fleet_panels() -> list[cogbuilder.Builder[model.Panel]]:
    agents = (
        stat.Panel()
        .title("Agents 边缘代理")
        .description("Agents that reported in the range, and those that reported within $silent_after (reporting now).")
        .datasource(DATASOURCE)
        .with_target(Query(AGENTS_IN.format(where=f"{SCOPE} AND $timeFilter")))
        .with_target(Query(REPORTING_NOW, ref_id="B"))
        .unit("short")
        .grid_pos(grid(0, 0, 8, 4))
    )
    rows = (
        table.Panel()
        .title("Every agent 代理列表")
        .description(
            "Per agent (and per version and configuration it ran in the range): when it last reported, its "
            "uptime, devices in scope and down, the points not yet acknowledged (backlog) and the age of the "
            "oldest, and how long ago its cloud last acknowledged points."
        )
        .datasource(DATASOURCE)
        .with_target(Query(AGENT_TABLE, "table"))
        .override_by_name("Time", [prop("displayName", "last seen"), prop("unit", "dateTimeFromNow")])
        .override_by_regexp(".*_s$", [prop("unit", "s")])
        .override_by_name(
            "devices_down",
            [
                prop("custom.cellOptions", {"type": "color-background"}),
                prop(
                    "thresholds",
                    {"mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 1, "color": "red"}]},
                ),
            ],
        )
        .grid_pos(grid(8, 0, 16, 8))
    )
    silent = model.ValueMappingResult(text="silent 未上报", color="red")
    reporting = model.ValueMappingResult(text="reporting 上报", color="green")
    timeline = (
        statetimeline.Panel()
        .title("Reporting 上报")
        .description("Each agent's reports per interval: red where it sent none (stopped, cut off or hung).")
        .datasource(DATASOURCE)
        .with_target(
            Query(
                f'SELECT count("uptime_s") FROM "agent" WHERE {SCOPE} AND $timeFilter '
                'GROUP BY time($__interval), "agent" fill(0)',
                alias="$tag_agent",
            )
        )
        .mappings(
            [
                model.ValueMap({"0": silent}),
                model.RangeMap(model.DashboardRangeMapOptions(1, 1e12, reporting)),
            ]
        )
        .interval("1m")
        .grid_pos(grid(0, 8, 24, 8))
    )
    down = per_agent("Devices down 设备掉线", "devices_down", "Devices without a working connection, per agent.", 0)
    backlog = per_agent(
        "Backlog 积压", "buffer_points", "Points each agent holds that its sinks have not acknowledged yet.", 12
    )
    return [agents, rows, timeline, down, backlog]


def enterprise_panels() -> list[cogbuilder.Builder[model.Panel]]:
    panels: list[cogbuilder.Builder[model.Panel]] = []
    for y, (title, shift) in enumerate([("this period 本期", ""), ("the period before 上期", "1M")]):
        kpis = _units(
            table.Panel()
            .title(f"Workshops, {title} 车间指标")
            .description("Per workshop: each KPI a ratio of its sums over the range (docs/kpis.md).")
            .datasource(DATASOURCE)
            .with_target(Query(KPI_TABLE, "table"))
        ).grid_pos(grid(0, 8 * y, 12, 8))
        oee = _units(
            table.Panel()
            .title(f"OEE by workshop, {title}")
            .description("Per workshop: A, P, Q and OEE as ratios of the machines' summed time elements.")
            .datasource(DATASOURCE)
            .with_target(Query(OEE_TABLE, "table"))
        ).grid_pos(grid(12, 8 * y, 12, 8))
        if shift:
            kpis, oee = kpis.time_shift(shift), oee.time_shift(shift)
        panels += [kpis, oee]
    enterprise = (
        stat.Panel()
        .title("The enterprise 企业")
        .description("Over every workshop in scope: networking, data collection, devices on cloud, cloud completeness.")
        .datasource(DATASOURCE)
        .with_target(
            Query(
                "SELECT "
                + ", ".join(
                    f'{ratio(KPI_COLUMNS[n])} AS "{n}"'
                    for n in ("networking", "collection", "on_cloud", "cloud_completeness")
                )
                + f' FROM "kpi" WHERE {SCOPE} AND $timeFilter'
            )
        )
        .unit("percentunit")
        .grid_pos(grid(0, 16, 24, 4))
    )
    return [*panels, enterprise]


def _board(
    title: str, uid: str, description: str, panels: list[cogbuilder.Builder[model.Panel]], **extra: Any
) -> dict[str, Any]:
    builder = (
        board.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["edge-agent", "fleet"])
        .timezone("browser")
        .refresh("30s")
        .time(extra.get("start", "now-24h"), extra.get("end", "now"))
        .with_variable(board.DatasourceVariable("datasource").label("InfluxDB").type("influxdb"))
        .with_variable(
            query_variable("site", "Site 工厂", f'SHOW TAG VALUES FROM "{extra["source"]}" WITH KEY = "site"')
        )
        .with_variable(
            query_variable(
                "workshop",
                "Workshop 车间",
                f'SHOW TAG VALUES FROM "{extra["source"]}" WITH KEY = "workshop" WHERE "site" =~ /^$site$/',
            )
        )
    )
    for variable in extra.get("variables", []):
        builder = builder.with_variable(variable)
    for panel in panels:
        builder = builder.with_panel(panel)
    return finish(builder)


def fleet() -> dict[str, Any]:
    silent_after = (
        board.CustomVariable("silent_after")
        .label("Silent after 未上报阈值")
        .values("2m,5m,15m,1h")
        .description("An agent that sent no report for this long is not reporting now (agents report every 10 s).")
    )
    return _board(
        "Fleet 边缘代理总览",
        "edge-fleet",
        "Every edge agent of the group: last report, version, configuration, devices down, backlog.",
        fleet_panels(),
        source="agent",
        variables=[silent_after],
    )


def enterprise() -> dict[str, Any]:
    window = query_variable(
        "window",
        "OEE window 统计窗口",
        'SHOW TAG VALUES FROM "oee" WITH KEY = "window" WHERE "window" != \'shift\' AND "site" =~ /^$site$/',
        choose_many=False,
    )
    return _board(
        "Enterprise 企业指标",
        "edge-enterprise",
        "The smart-workshop and cloud-adoption KPIs per workshop and for the enterprise, this month beside the last.",
        enterprise_panels(),
        source="kpi",
        variables=[window],
        start="now/M",
        end="now/M",
    )
