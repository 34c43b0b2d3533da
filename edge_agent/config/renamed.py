"""Keys that changed name: old files keep working, and ``config check`` says what the new key is."""

from __future__ import annotations

from typing import Any

from edge_agent.config.yaml_source import Loc, YamlDocument, format_loc

#: Where an old key sits (below the anomaly section) -> its new name, and what changed.
ANOMALY_RENAMED: dict[str, tuple[str, str]] = {
    "reset_on_state_change": (
        "baselines_per_state",
        "each machine state now keeps its own normal instead of starting afresh; the value carries over",
    ),
}


def rename_anomaly_keys(doc: YamlDocument, section: Any, at: Loc) -> list[str]:
    """Rename old keys of an ``anomaly:`` mapping in place; one warning per key renamed."""
    warnings: list[str] = []
    if not isinstance(section, dict):
        return warnings
    for old, (new, why) in ANOMALY_RENAMED.items():
        if old in section:
            value = section.pop(old)
            section.setdefault(new, value)
            place = format_loc((*at, new))
            warnings.append(doc.problem((*at, old), f"renamed: write {place} ({why})"))
    return warnings


def rename_in_config(doc: YamlDocument) -> list[str]:
    """Renamed keys anywhere in ``agent.yaml`` (the anomaly section and its per-signal overrides)."""
    data = doc.data
    analytics = data.get("analytics") if isinstance(data, dict) else None
    anomaly = analytics.get("anomaly") if isinstance(analytics, dict) else None
    return rename_anomaly_keys(doc, anomaly, ("analytics", "anomaly"))
