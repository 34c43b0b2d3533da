"""The ``uns`` layout: a unified-namespace topic per series and one JSON payload per message.

Topics follow the plant's ISA-95 path from the agent's tags (``site/workshop/line/machine/...``):

| measurement | topic (after ``topic_prefix``) | payload keys besides ``time`` and ``timestamp_ms`` |
| --- | --- | --- |
| ``raw`` | ``site/workshop/line/machine/raw/signal`` | ``value`` (or ``text``), ``unit``, ``quality``, ``device`` |
| ``machine_state`` | ``site/workshop/line/machine/state`` | ``state`` (0 running .. 5 unknown) |
| ``oee`` | ``site/workshop/line/machine/oee/window`` | every OEE field of the window (docs/schema.md) |
| ``anomaly`` | ``site/workshop/line/machine/anomaly/signal`` | ``score`` |
| ``alarm`` | ``site/workshop/line/machine/alarm/signal`` | ``active``, ``duration_s``, ``peak``, ``detector`` |
| ``kpi`` | ``site/workshop/kpi`` | every KPI field |
| ``agent`` | ``site/workshop/agent/<agent id>`` | the agent's own state |

The points of one series key (measurement and tags) at one time make one message: an OEE window
is one JSON object. ``time`` is RFC 3339 in UTC with nanoseconds, ``timestamp_ms`` the same in
milliseconds since the epoch. A value that is not good is ``null``, with ``quality`` (or
``<field>_quality``) naming why: ``device_error``, ``bad_value``, ``unreachable``,
``not_finite``. Tags not in the topic (``device``, ``agent``, ``detector``, a device's own tags)
are payload keys. In a topic level, ``/``, ``+``, ``#`` and NUL become ``_``.

``topics`` (per measurement) replaces a layout with a template of tags, e.g.
``raw: "plants/{site}/{machine}/{signal}"``: each ``{tag}`` is the series' tag as one level (``_``
when it has none), ``{measurement}`` the measurement; tags not in the template are payload keys.
A template must hold the tags that tell its series apart (:data:`IDENTIFYING`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import string
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from edge_agent.collectors.batch import Batch
from edge_agent.schema import TEXT_FIELD
from edge_agent.store.catalog import Series, SeriesCatalog

QUALITY_NAMES = {1: "device_error", 2: "bad_value", 3: "unreachable", 4: "not_finite"}
#: Tags each measurement's topic uses, in order, then its fixed level and the tag of the last level.
LAYOUT: dict[str, tuple[tuple[str, ...], str, str]] = {
    "raw": (("site", "workshop", "line", "machine"), "raw", "signal"),
    "machine_state": (("site", "workshop", "line", "machine"), "state", ""),
    "oee": (("site", "workshop", "line", "machine"), "oee", "window"),
    "anomaly": (("site", "workshop", "line", "machine"), "anomaly", "signal"),
    "alarm": (("site", "workshop", "line", "machine"), "alarm", "signal"),
    "kpi": (("site", "workshop"), "kpi", ""),
    "agent": (("site", "workshop"), "agent", "agent"),
}
_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})


def level(text: str) -> str:
    """One topic level: ``/``, ``+``, ``#`` and NUL replaced by ``_``; ``_`` for an empty one.

    >>> level("A/B+1"), level("")
    ('A_B_1', '_')
    """
    return text.translate(_UNSAFE) or "_"


@dataclass(frozen=True)
class Route:
    """Where one series' points go: its topic, its key in the payload, and the payload's tags."""

    topic: str
    field: str
    tags: tuple[tuple[str, str], ...]


#: Per measurement, the tags a topic template must hold for the topic to name one series.
IDENTIFYING: dict[str, tuple[str, ...]] = {
    "raw": ("machine", "signal"),
    "machine_state": ("machine",),
    "oee": ("machine", "window"),
    "anomaly": ("machine", "signal"),
    "alarm": ("machine", "signal"),
    "kpi": (),
    "agent": ("agent",),
}


def template_problems(measurement: str, template: str) -> list[str]:
    """What is wrong with a topic template for ``measurement`` (empty: nothing).

    >>> template_problems("raw", "plant/{site}/{machine}/{signal}")
    []
    >>> for problem in template_problems("raw", "plant/{machine}/#"):
    ...     print(problem)
    '+', '#' and NUL may not stand in a topic: remove them
    the topic must hold {signal}: two series would share a topic
    """
    problems = []
    if measurement not in LAYOUT:
        return [f"{measurement!r} is no measurement the agent writes: choose from {', '.join(LAYOUT)}"]
    if any(c in template for c in "+#\0"):
        problems.append("'+', '#' and NUL may not stand in a topic: remove them")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        return [*problems, f"not a template ({exc}): write tags as {{site}}, {{machine}}, ..."]
    bad = sorted(n for n in names if not n.isidentifier())
    if bad:
        problems.append(f"placeholders {bad} are not tag names: write e.g. {{machine}}")
    problems += [
        f"the topic must hold {{{tag}}}: two series would share a topic"
        for tag in IDENTIFYING[measurement]
        if tag not in names
    ]
    if template.startswith("/") or not template.strip("/"):
        problems.append("a topic neither starts with / nor is empty: start with a word, e.g. plant/")
    return problems


class _Levels(dict[str, str]):
    """Tags as topic levels; a tag the series does not have is ``_``."""

    def __missing__(self, key: str) -> str:
        return "_"


def route(series: Series, prefix: str, templates: dict[str, str] | None = None) -> Route:
    template = (templates or {}).get(series.measurement)
    if template is not None:
        tags = dict(series.tags)
        named = _Levels({k: level(v) for k, v in tags.items()})
        named["measurement"] = level(series.measurement)
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        rest = tuple(sorted((k, v) for k, v in tags.items() if k not in used))
        return Route(prefix + template.format_map(named), series.field, rest)
    tags = dict(series.tags)
    levels, fixed, last = LAYOUT.get(series.measurement, (("site", "workshop", "line", "machine"), "", ""))
    parts = [level(tags.pop(t, "")) for t in levels if t in tags or t in ("site", "workshop")]
    parts.append(level(fixed or series.measurement))
    if last:
        parts.append(level(tags.pop(last, "")))
    topic = prefix + "/".join(parts)
    return Route(topic, series.field, tuple(sorted(tags.items())))


def rfc3339(ts_ns: int) -> str:
    """``2026-12-07T03:54:23.123456789Z``.

    >>> rfc3339(1_796_615_071_234_746_525)
    '2026-12-07T03:44:31.234746525Z'
    """
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


class Messages:
    """Turns batches into (topic, payload) pairs for one catalog snapshot (routes cached per id)."""

    def __init__(self, catalog: SeriesCatalog, prefix: str, templates: dict[str, str] | None = None) -> None:
        self.catalog, self.prefix, self.templates = catalog, prefix, templates or {}
        self.routes: dict[int, Route] = {}

    def _route(self, series_id: int) -> Route | None:
        found = self.routes.get(series_id)
        if found is None:
            series = self.catalog.get(series_id)
            if series is None:
                return None
            found = self.routes[series_id] = route(series, self.prefix, self.templates)
        return found

    def on_topics(self, batch: Batch, topics: Container[str]) -> NDArray[np.bool_]:
        """Per point of ``batch``, whether its message's topic is one of ``topics``."""
        ids = np.unique(batch.signal)
        hit = [int(i) for i in ids.tolist() if (r := self._route(int(i))) is not None and r.topic in topics]
        return np.isin(batch.signal, np.asarray(hit, batch.signal.dtype))

    def topics(self, batch: Batch) -> set[str]:
        """The topics the messages of ``batch`` go to."""
        return {r.topic for i in np.unique(batch.signal).tolist() if (r := self._route(int(i))) is not None}

    def of(self, batch: Batch) -> tuple[list[tuple[str, bytes]], list[int]]:
        """The messages of ``batch`` and, per message, how many points it carries."""
        groups: dict[tuple[str, int], dict[str, Any]] = {}
        counts: dict[tuple[str, int], int] = {}
        texts = self.catalog.texts
        for ts, sid, value, quality in zip(
            batch.ts.tolist(), batch.signal.tolist(), batch.value.tolist(), batch.quality.tolist(), strict=True
        ):
            r = self._route(sid)
            if r is None:
                raise ValueError(f"series {sid} is not in the catalog")
            key = (r.topic, ts)
            body = groups.get(key)
            if body is None:
                body = groups[key] = {"time": rfc3339(ts), "timestamp_ms": ts // 1_000_000}
                body.update(r.tags)
                counts[key] = 0
            counts[key] += 1
            name = "text" if r.field == TEXT_FIELD else r.field
            if quality == 0 and math.isfinite(value):
                body[name] = texts.get(int(value), "") if r.field == TEXT_FIELD else _number(value)
                if r.field in ("value", TEXT_FIELD):
                    body["quality"] = "good"
            else:
                body[name] = None
                why = QUALITY_NAMES.get(quality, "not_finite" if quality == 0 else f"code_{quality}")
                body["quality" if r.field in ("value", TEXT_FIELD) else f"{name}_quality"] = why
        messages = [
            (topic, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
            for (topic, _), body in groups.items()
        ]
        return messages, list(counts.values())


def _number(value: float) -> float | int:
    """Whole numbers as integers (counts, codes), the rest as floats."""
    return int(value) if value.is_integer() and abs(value) < 2**53 else value
