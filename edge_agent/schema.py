"""What the agent writes: measurements, tags and fields (documented in docs/schema.md)."""

from __future__ import annotations

RAW = "raw"
#: The field of a text series (a serial number, a recipe name); numbers are in field ``value``.
TEXT_FIELD = "text"
OEE = "oee"
ANOMALY = "anomaly"
ALARM = "alarm"
AGENT = "agent"
KPI = "kpi"
#: The agent's state of each OEE machine (its device's code mapped by ``oee.state``), field ``state``:
#: 0 running, 1 idle, 2 down, 3 setup, 4 planned_stop, 5 unknown (device unreachable).
MACHINE_STATE = "machine_state"

#: Fields of an ``oee`` point, in output order, with their units.
OEE_FIELDS: dict[str, str] = {
    "availability": "ratio 0..1 (APT / PBT)",
    "performance": "ratio (PRI x PQ / APT; above 1 means the ideal cycle time is too long: flagged)",
    "quality": "ratio 0..1 (GQ / PQ, capped at 1)",
    "oee": "ratio 0..1 (PRI x GQ / PBT, capped at 1)",
    "flags": "bit mask: 1 performance_above_1, 2 counter_reset, 4 unknown_time, 8 partial_window, "
    "16 unattributed_counts, 32 capped",
    "scheduled_s": "s (time inside shifts)",
    "planned_busy_s": "s (PBT: scheduled - break - planned stop - unknown)",
    "actual_production_s": "s (APT: running + micro-stops)",
    "ideal_produced_s": "s (ideal cycle time x produced: net operating time)",
    "ideal_good_s": "s (ideal cycle time x good: value-adding time)",
    "running_s": "s",
    "microstop_s": "s (idle and down episodes shorter than microstop_threshold)",
    "delay_s": "s (idle episodes not shorter than microstop_threshold)",
    "down_s": "s (down episodes not shorter than microstop_threshold: failures)",
    "setup_s": "s",
    "planned_stop_s": "s",
    "break_s": "s (scheduled breaks)",
    "unknown_s": "s (device unreachable, or no state reading within stale_after)",
    "produced": "count (PQ)",
    "good": "count (GQ)",
    "reject": "count",
    "failures": "count (down episodes not shorter than microstop_threshold)",
    "mtbf_s": "s (APT / failures)",
    "mttr_s": "s (down time / failures)",
    "energy_kwh": "kWh",
    "energy_per_good_kwh": "kWh per good unit",
    "unattributed_parts": "count (made over an outage or since a counter reset: in no window's produced)",
    "unattributed_kwh": "kWh (metered over an outage or since a meter reset)",
    "counter_resets": "count (counter readings not believed: resets, implausible jumps, re-baselines)",
}

#: Fields of the agent's own ``agent`` health points.
AGENT_FIELDS: dict[str, str] = {
    "devices_in_scope": "count",
    "devices_connected": "count",
    "buffer_points": "count",
    "buffer_oldest_age_s": "s",
    "dropped_points": "count",
    "devices_down": "count",
    "uptime_s": "s",
    "last_ack_age_s": "s",
}

#: Fields of a ``kpi`` point (one per workshop and reporting interval; docs/kpis.md).
KPI_FIELDS: dict[str, str] = {
    "devices_in_scope": "count",
    "devices_seen": "count (a valid reading within T)",
    "networking_rate": "ratio 0..1",
    "samples_expected": "count",
    "samples_valid": "count",
    "collection_completeness": "ratio 0..1",
    "devices_on_cloud": "count (a database-acknowledged point within T)",
    "device_on_cloud_ratio": "ratio 0..1",
    "points_produced": "count",
    "points_acked": "count (by the first sink's database)",
    "cloud_completeness": "ratio (acknowledged / produced)",
    "continuous_cloud_days": "days",
    "upload_latency_p50_s": "s (local store to database acknowledgement)",
    "upload_latency_p95_s": "s",
    "backlog_points": "count",
    "backlog_oldest_age_s": "s",
    "produced": "count",
    "good": "count",
    "reject": "count",
    "actual_production_s": "s",
    "energy_kwh": "kWh (machines' energy counters and the workshop's meters)",
    "energy_per_good_kwh": "kWh per good unit",
    "defect_rate": "ratio 0..1 (reject / produced)",
    "throughput_per_h": "units per hour of actual production time",
    "baseline_energy_per_good_kwh": "kWh per good unit",
    "baseline_defect_rate": "ratio 0..1",
    "baseline_throughput_per_h": "units per hour",
    "energy_reduction": "ratio (1 - current / baseline)",
    "defect_reduction": "ratio (1 - current / baseline)",
    "throughput_gain": "ratio (current / baseline - 1)",
}
