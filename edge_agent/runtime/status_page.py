"""``GET /`` on the health listener: a read-only page for the engineer commissioning the box.

Before Grafana exists (or when the network to it does not), this is where to look: the agent's
status and why, every device with its state, the latest value of every signal with its quality,
the alarms that are on, each machine's OEE in its current window, the local store's backlog and
the sinks. One self-contained HTML page (no script, no file or address it loads), every text
escaped, refreshed by the browser every 5 s.

The tick publishes a :class:`StatusView` (the latest readings, alarms and OEE) as one new object
at most once a second; the page reads whichever is current (handed over whole: no lock needed).
"""

from __future__ import annotations

import html
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_agent.collectors.batch import QUALITY_GOOD, Batch

QUALITY = {0: "good", 1: "device error", 2: "not a number", 3: "unreachable", 4: "not finite"}
#: The agent's machine states (the device's own codes mapped by its oee: section; schema.md).
STATES = {
    0: "running 运行",
    1: "idle 待机",
    2: "down 故障",
    3: "setup 换型",
    4: "planned stop 计划停机",
    5: "unknown 未知",
}


@dataclass(frozen=True)
class StatusView:
    """What the tick knows that ``/health`` does not: latest readings, open alarms, current OEE."""

    taken_ns: int = 0
    #: The latest readings as the tick left them (turned into rows only when the page is shown).
    latest: Latest | None = None
    #: (device.signal, detector, since UTC ns, peak score)
    alarms: list[tuple[str, str, int, float]] = field(default_factory=list)
    #: Per machine: name, line, state code and the KPIs of its open window.
    oee: list[dict[str, Any]] = field(default_factory=list)

    @property
    def readings(self) -> list[tuple[str, str, str, str, str, int]]:
        """(device, signal, value as text, unit, quality, time UTC ns) of every series read."""
        return [] if self.latest is None else self.latest.rows()


@dataclass(frozen=True)
class Latest:
    """A copy of the latest readings and the layout that names them; nothing in it changes."""

    value: NDArray[np.float64]
    quality: NDArray[np.uint8]
    ts: NDArray[np.int64]
    tables: list[NDArray[np.int32]]
    #: Per device: its name and, per collector index, (signal, unit, kind).
    labels: list[tuple[str, list[tuple[str, str, str]]]]
    texts: dict[int, str]

    def rows(self) -> list[tuple[str, str, str, str, str, int]]:
        out = []
        for table, (device, names) in zip(self.tables, self.labels, strict=True):
            for sid, (signal, unit, kind) in zip(table.tolist(), names, strict=True):
                quality = int(self.quality[sid])
                if quality == 255:
                    continue
                value = float(self.value[sid])
                if quality != QUALITY_GOOD or not math.isfinite(value):
                    shown = "-"
                elif kind == "text":
                    shown = self.texts.get(int(value), "?")
                else:
                    shown = f"{value:.6g}"
                out.append((device, signal, shown, unit, QUALITY.get(quality, str(quality)), int(self.ts[sid])))
        return out


class LatestReadings:
    """The latest reading of every raw series (owned by the tick's thread)."""

    def __init__(self, size: int) -> None:
        self.value = np.full(size, np.nan)
        self.quality = np.full(size, 255, np.uint8)
        self.ts = np.zeros(size, np.int64)

    def update(self, raw: Batch) -> None:
        if not len(raw):
            return
        inside = raw.signal < self.ts.shape[0]
        sig, ts = raw.signal[inside], raw.ts[inside]
        if not sig.shape[0]:
            return
        order = np.lexsort((ts, sig))  # by signal, then time: the last of each run is the latest
        last = np.append(sig[order][1:] != sig[order][:-1], True)
        pick = np.flatnonzero(inside)[order[last]]
        newer = raw.ts[pick] >= self.ts[raw.signal[pick]]
        pick = pick[newer]
        self.value[raw.signal[pick]] = raw.value[pick]
        self.quality[raw.signal[pick]] = raw.quality[pick]
        self.ts[raw.signal[pick]] = raw.ts[pick]

    def snapshot(
        self,
        tables: list[NDArray[np.int32]],
        labels: list[tuple[str, list[tuple[str, str, str]]]],
        texts: dict[int, str],
    ) -> Latest:
        """A copy to hand to the page's thread (the arrays copied; the layout's lists are never
        changed in place, a reload makes new ones)."""
        return Latest(self.value.copy(), self.quality.copy(), self.ts.copy(), tables, labels, dict(texts))


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f0f0f0} .ok{color:#1a7f37} .bad{color:#cf222e} .muted{color:#777}
.status{display:inline-block;padding:.1em .6em;border-radius:.3em;color:#fff}
.status.ok{background:#1a7f37} .status.degraded{background:#cf222e}
"""


def render(report: dict[str, Any], view: StatusView, now_ns: int | None = None) -> str:
    """The page for a health ``report`` and the tick's latest ``view``."""
    now = time.time_ns() if now_ns is None else now_ns
    e = html.escape
    status = str(report.get("status", "ok"))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='refresh' content='5'>",
        f"<title>edge-agent {e(str(report.get('agent', '')))}</title><style>{_CSS}</style></head><body>",
        f"<h1>edge-agent <span id='agent'>{e(str(report.get('agent', '')))}</span> "
        f"<span id='status' class='status {e(status)}'>{e(status)}</span></h1>",
        f"<p class='muted'>up {float(report.get('uptime_s', 0)):.0f} s · refreshed every 5 s</p>",
    ]
    reasons = report.get("reasons", [])
    if reasons:
        parts.append("<ul id='reasons'>" + "".join(f"<li class='bad'>{e(str(r))}</li>" for r in reasons) + "</ul>")
    parts.append(_devices(report.get("devices", []), now))
    parts.append(_alarms(view.alarms, now))
    parts.append(_oee(view.oee))
    parts.append(_readings(view.readings, now))
    parts.append(_store(report.get("buffer", {}), report.get("sinks", [])))
    parts.append("</body></html>")
    return "".join(parts)


def _table(ident: str, title: str, head: list[str], rows: list[list[str]], empty: str) -> str:
    e = html.escape
    if not rows:
        return f"<h2>{e(title)}</h2><p id='{ident}' class='muted'>{e(empty)}</p>"
    header = "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" if any(head) else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h2>{e(title)}</h2><table id='{ident}'>{header}{body}</table>"


def _age(ts_ns: int, now: int) -> str:
    return "never" if not ts_ns else f"{max(now - ts_ns, 0) / 1e9:.1f} s ago"


def _devices(devices: list[dict[str, Any]], now: int) -> str:
    e = html.escape
    rows = []
    for d in devices:
        up = bool(d.get("connected"))
        rows.append(
            [
                e(str(d.get("name", ""))),
                e(str(d.get("endpoint", ""))),
                f"<span class='{'ok' if up else 'bad'}'>{'answering' if up else 'not answering'}</span>",
                e(_age(int(d.get("last_ok_ns", 0)), now)),
                e(str(d.get("polls", 0))),
                e(str(d.get("failures", 0))),
                e(str(d.get("last_error", ""))),
            ]
        )
    head = ["device", "endpoint", "state", "last answer", "polls", "failures", "last error"]
    return _table("devices", "Devices 设备", head, rows, "no devices")


def _alarms(alarms: list[tuple[str, str, int, float]], now: int) -> str:
    e = html.escape
    rows = [[e(key), e(detector), e(_age(since, now)), f"{peak:.2f}"] for key, detector, since, peak in alarms]
    return _table("alarms", "Open alarms 报警", ["signal", "detector", "since", "peak score"], rows, "no alarm is on")


def _oee(machines: list[dict[str, Any]]) -> str:
    e = html.escape
    rows = []
    for m in machines:
        shown = STATES.get(int(m.get("state", 5)), "unknown 未知")
        ratios = [_percent(m.get(k)) for k in ("availability", "performance", "quality", "oee")]
        rows.append([e(str(m["machine"])), e(str(m["line"])), e(shown), *ratios, e(_count(m.get("produced")))])
    head = ["machine", "line", "state", "availability", "performance", "quality", "OEE", "produced"]
    return _table("oee", "OEE, current window 当前窗口", head, rows, "no machine has an oee: section")


def _percent(value: Any) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{100 * float(value):.1f} %"


def _count(value: Any) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{float(value):.0f}"


def _readings(readings: list[tuple[str, str, str, str, str, int]], now: int) -> str:
    e = html.escape
    rows = [
        [
            e(device),
            e(signal),
            e(value),
            e(unit),
            f"<span class='{'ok' if q == 'good' else 'bad'}'>{e(q)}</span>",
            e(_age(ts, now)),
        ]
        for device, signal, value, unit, q, ts in readings
    ]
    head = ["device", "signal", "value", "unit", "quality", "read"]
    return _table("readings", "Last values 最新数值", head, rows, "nothing read yet")


def _store(store: dict[str, Any], sinks: list[dict[str, Any]]) -> str:
    e = html.escape
    facts = [
        ("backlog (points)", store.get("pending_points", 0)),
        ("oldest point (s)", f"{float(store.get('oldest_age_s', 0.0)):.1f}"),
        ("dropped", store.get("dropped") or "none"),
        ("set aside", store.get("set_aside") or "none"),
    ]
    rows = [[e(k), e(str(v))] for k, v in facts]
    rows += [
        [e(f"sink {s.get('name', '')}"), e(f"{'ok' if s.get('ok') else 'failing'}, {s.get('written', 0)} written")]
        for s in sinks
    ]
    return _table("store", "Local store and sinks 本地缓存与上云", ["", ""], rows, "")


__all__ = ["LatestReadings", "StatusView", "render"]
