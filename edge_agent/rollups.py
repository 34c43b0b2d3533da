"""Roll-ups of what the agent writes, as InfluxQL expressions: the dashboards' and the report's.

Over machines, lines or time a ratio is a ratio of sums, never an average of ratios (ISO 22400):
availability = Σ actual_production_s / Σ planned_busy_s, performance = Σ ideal_produced_s /
Σ actual_production_s, quality = Σ good / Σ produced, OEE = Σ ideal_good_s / Σ planned_busy_s.
Fields and units: docs/schema.md.
"""

from __future__ import annotations

#: OEE ratios (``oee`` measurement): name -> (numerator field, denominator field). Each 0..1.
OEE_RATIOS: dict[str, tuple[str, str]] = {
    "availability": ("actual_production_s", "planned_busy_s"),
    "performance": ("ideal_produced_s", "actual_production_s"),
    "quality": ("good", "produced"),
    "oee": ("ideal_good_s", "planned_busy_s"),
}
#: Lost time (s) in the ``oee`` measurement, by cause: what a loss Pareto ranks.
LOSSES: dict[str, str] = {
    "down_s": "down 故障",
    "delay_s": "delay 待机",
    "microstop_s": "micro-stops 短停",
    "setup_s": "setup 换型",
}
#: Time (s) that is neither production nor loss: out of planned busy time, shown apart.
NOT_LOSSES: dict[str, str] = {
    "break_s": "planned breaks 计划休息",
    "planned_stop_s": "planned stops 计划停机",
    "unknown_s": "unknown 状态未知",
}
#: Workshop KPIs (``kpi`` measurement): name -> (numerator field, denominator field).
KPI_RATIOS: dict[str, tuple[str, str]] = {
    "networking_rate": ("devices_seen", "devices_in_scope"),
    "collection_completeness": ("samples_valid", "samples_expected"),
    "device_on_cloud_ratio": ("devices_on_cloud", "devices_in_scope"),
    "cloud_completeness": ("points_acked", "points_produced"),
    "energy_per_good_kwh": ("energy_kwh", "good"),
    "defect_rate": ("reject", "produced"),
}


def ratio(fields: tuple[str, str]) -> str:
    """``sum(numerator) / sum(denominator)`` over whatever the query groups.

    >>> ratio(OEE_RATIOS["oee"])
    'sum("ideal_good_s") / sum("planned_busy_s")'
    """
    num, den = fields
    return f'sum("{num}") / sum("{den}")'


def running_ratio(fields: tuple[str, str]) -> str:
    """The ratio of sums from the start of the range to the end of each ``GROUP BY time`` interval.

    Its last value is the ratio over the whole range, and the values before it draw how the
    range's figure developed (a stat panel's sparkline).

    >>> running_ratio(KPI_RATIOS["defect_rate"])
    'cumulative_sum(sum("reject")) / cumulative_sum(sum("produced"))'
    """
    num, den = fields
    return f'cumulative_sum(sum("{num}")) / cumulative_sum(sum("{den}"))'


def window_filter(window: str) -> str:
    """InfluxQL condition for one OEE grid: never sum two grids (each holds all the time once).

    >>> window_filter("30s")
    '"window" = \\'30s\\''
    """
    if "'" in window or "\\" in window:
        raise ValueError(f"an OEE window tag holds no quote or backslash: {window!r}")
    return f"\"window\" = '{window}'"
