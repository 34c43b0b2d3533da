"""``/metrics``: the health report in Prometheus' text format, through prometheus-client.

Names follow Prometheus' conventions (``edge_agent_`` prefix, base units, ``_total`` for counters):

| metric | type | labels |
| --- | --- | --- |
| ``edge_agent_build_info`` | gauge, 1 | version, python |
| ``edge_agent_up`` | gauge, 1 ok / 0 degraded | |
| ``edge_agent_device_up`` | gauge, 1 answering | device |
| ``edge_agent_device_polls_total`` | counter: poll attempts by result | device, outcome (``ok``, ``failed``) |
| ``edge_agent_device_overruns_total`` | counter: poll slots skipped | device |
| ``edge_agent_points_produced_total`` | counter | |
| ``edge_agent_points_dropped_total`` | counter | reason |
| ``edge_agent_buffer_backlog_points`` | gauge | |
| ``edge_agent_buffer_oldest_age_seconds`` | gauge | |
| ``edge_agent_sink_up`` | gauge | sink |
| ``edge_agent_sink_points_written_total``, ``edge_agent_sink_points_rejected_total`` | counter | sink |
| ``edge_agent_sink_points_set_aside_total`` | counter (dead letter) | sink |
| ``edge_agent_sink_latency_seconds`` | histogram: a point's time stamp to its acknowledgement | sink, le |
| ``edge_agent_task_up`` | gauge, 1 running | task |
| ``edge_agent_task_failures_total``, ``edge_agent_task_restarts_total`` | counter | task |
| ``edge_agent_clock_steps_total`` | counter (wall-clock steps larger than a poll interval) | |
| ``edge_agent_store_damaged`` | gauge (damaged store files set aside and not yet removed) | |
| ``edge_agent_process_*`` | the process: CPU seconds, resident memory, open files, start time | |

A fresh registry is filled from the report on each scrape: the agent keeps no second set of
counters that could drift from ``/health``.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from edge_agent import __version__

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _Report:
    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        r = self.report
        info = GaugeMetricFamily("edge_agent_build_info", "the agent's version", labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1.0)
        yield info
        yield GaugeMetricFamily("edge_agent_up", "1 when /health says ok, 0 when degraded", r.get("status") == "ok")
        devices = r.get("devices", [])
        up = GaugeMetricFamily("edge_agent_device_up", "1 while the device answers", labels=["device"])
        polls = CounterMetricFamily("edge_agent_device_polls", "poll attempts by result", labels=["device", "outcome"])
        overruns = CounterMetricFamily("edge_agent_device_overruns", "poll slots skipped", labels=["device"])
        for d in devices:
            up.add_metric([d["name"]], 1.0 if d.get("connected") else 0.0)
            polls.add_metric([d["name"], "ok"], float(d.get("polls", 0)))
            polls.add_metric([d["name"], "failed"], float(d.get("failures", 0)))
            overruns.add_metric([d["name"]], float(d.get("overruns", 0)))
        yield from (up, polls, overruns)
        yield CounterMetricFamily(
            "edge_agent_points_produced", "points handed to the local store", value=float(r.get("points_produced", 0))
        )
        buffer = r.get("buffer", {})
        dropped = CounterMetricFamily(
            "edge_agent_points_dropped", "points that will never reach a sink", labels=["reason"]
        )
        for reason, points in sorted(buffer.get("dropped", {}).items()):
            dropped.add_metric([reason], float(points))
        yield dropped
        yield GaugeMetricFamily(
            "edge_agent_buffer_backlog_points",
            "points not yet acknowledged by every sink",
            buffer.get("pending_points", 0),
        )
        yield GaugeMetricFamily(
            "edge_agent_buffer_oldest_age_seconds", "age of the oldest of them", buffer.get("oldest_age_s", 0.0)
        )
        yield from _sinks(r.get("sinks", []))
        yield from _tasks(r.get("tasks", []))
        yield CounterMetricFamily(
            "edge_agent_clock_steps",
            "wall-clock steps larger than a poll interval",
            value=float(r.get("clock", {}).get("steps", 0)),
        )
        yield GaugeMetricFamily(
            "edge_agent_store_damaged", "damaged store files set aside, not yet removed", len(buffer.get("damaged", []))
        )


def _tasks(tasks: list[dict[str, Any]]) -> Iterator[Metric]:
    up = GaugeMetricFamily("edge_agent_task_up", "1 while the supervised task runs", labels=["task"])
    failures = CounterMetricFamily("edge_agent_task_failures", "times the task ended with an error", labels=["task"])
    restarts = CounterMetricFamily(
        "edge_agent_task_restarts", "times the supervisor restarted the task", labels=["task"]
    )
    for t in tasks:
        up.add_metric([t["name"]], 1.0 if t.get("running") else 0.0)
        failures.add_metric([t["name"]], float(t.get("failures", 0)))
        restarts.add_metric([t["name"]], float(t.get("restarts", 0)))
    yield from (up, failures, restarts)


def _sinks(sinks: list[dict[str, Any]]) -> Iterator[Metric]:
    up = GaugeMetricFamily("edge_agent_sink_up", "1 while the sink accepts writes", labels=["sink"])
    written = CounterMetricFamily("edge_agent_sink_points_written", "points the sink acknowledged", labels=["sink"])
    rejected = CounterMetricFamily(
        "edge_agent_sink_points_rejected", "points the sink refused as invalid", labels=["sink"]
    )
    aside = CounterMetricFamily(
        "edge_agent_sink_points_set_aside", "points set aside for the sink (dead letter)", labels=["sink"]
    )
    latency = HistogramMetricFamily(
        "edge_agent_sink_latency_seconds", "a point's time stamp to its acknowledgement", labels=["sink"]
    )
    for s in sinks:
        up.add_metric([s["name"]], 1.0 if s.get("ok") else 0.0)
        written.add_metric([s["name"]], float(s.get("written", 0)))
        rejected.add_metric([s["name"]], float(s.get("rejected", 0)))
        aside.add_metric([s["name"]], float(s.get("set_aside", 0)))
        histogram = s.get("latency_histogram")
        if histogram:
            bounds = [f"{b:g}" for b in histogram["le_s"]] + ["+Inf"]
            buckets = list(zip(bounds, map(float, histogram["counts"]), strict=True))
            latency.add_metric([s["name"]], buckets, float(histogram["sum_s"]))
    yield from (up, written, rejected, aside, latency)


def render(report: dict[str, Any]) -> str:
    """The metrics of ``report`` (the agent's health report) as Prometheus text."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Report(report))
    ProcessCollector(namespace="edge_agent", registry=registry)
    return generate_latest(registry).decode()
