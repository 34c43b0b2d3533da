"""What the agent writes: measurements, tags and fields (documented in docs/schema.md)."""

from __future__ import annotations

RAW = "raw"
OEE = "oee"
ANOMALY = "anomaly"
ALARM = "alarm"
AGENT = "agent"

#: Fields of an ``oee`` point, in output order, with their units.
OEE_FIELDS: dict[str, str] = {
    "availability": "ratio 0..1",
    "performance": "ratio (above 1 means the ideal cycle time is too long)",
    "quality": "ratio 0..1",
    "oee": "ratio 0..1",
    "scheduled_s": "s",
    "planned_busy_s": "s",
    "actual_production_s": "s",
    "ideal_produced_s": "s (ideal cycle time x produced: net operating time)",
    "ideal_good_s": "s (ideal cycle time x good: value-adding time)",
    "running_s": "s",
    "idle_s": "s",
    "down_s": "s",
    "setup_s": "s",
    "planned_stop_s": "s",
    "unknown_s": "s",
    "produced": "count",
    "good": "count",
    "reject": "count",
    "energy_kwh": "kWh",
}

#: Fields of the agent's own ``agent`` health points.
AGENT_FIELDS: dict[str, str] = {
    "devices_in_scope": "count",
    "devices_connected": "count",
    "buffer_points": "count",
    "buffer_oldest_age_s": "s",
    "dropped_points": "count",
}
