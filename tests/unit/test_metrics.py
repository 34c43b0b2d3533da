"""/metrics from a health report: names, types and labels as Prometheus expects them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from edge_agent.runtime.forwarder import LATENCY_BUCKETS_S
from edge_agent.runtime.metrics import render

REPORT = {
    "status": "ok",
    "devices": [{"name": "p1", "connected": True, "polls": 10, "failures": 2, "overruns": 1}],
    "points_produced": 100,
    "buffer": {"pending_points": 5, "oldest_age_s": 1.5, "dropped": {"rejected": 3}, "damaged": []},
    "sinks": [
        {
            "name": "influxdb_v1:http://h/edge",
            "ok": True,
            "written": 95,
            "rejected": 3,
            "set_aside": 0,
            "latency_histogram": {
                "le_s": list(LATENCY_BUCKETS_S),
                "counts": [1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4],
                "sum_s": 1.7,
            },
        }
    ],
    "tasks": [{"name": "tick", "running": True, "failures": 0, "restarts": 0}],
    "clock": {"steps": 0},
}


def test_metrics_follow_the_conventions() -> None:
    families = {f.name: f for f in text_string_to_metric_families(render(REPORT))}
    polls = {tuple(sorted(s.labels.items())): s.value for s in families["edge_agent_device_polls"].samples}
    assert polls == {(("device", "p1"), ("outcome", "ok")): 10.0, (("device", "p1"), ("outcome", "failed")): 2.0}
    latency = families["edge_agent_sink_latency_seconds"]
    assert latency.type == "histogram"
    buckets = [s for s in latency.samples if s.name.endswith("_bucket")]
    assert [s.labels["le"] for s in buckets][-2:] == ["3600", "+Inf"] and buckets[-1].value == 4.0
    assert families["edge_agent_build_info"].samples[0].value == 1.0
    assert "edge_agent_process_resident_memory_bytes" in families
    for family in families.values():  # no gauge pretends to be a summary
        assert not (family.type == "gauge" and any("quantile" in s.labels for s in family.samples)), family.name
