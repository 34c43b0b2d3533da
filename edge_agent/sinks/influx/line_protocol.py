"""InfluxDB line protocol, encoded from columnar batches.

Each series id maps to a prefix ``measurement,tag=value,... field=``, built once per catalog
snapshot. A batch is encoded in bulk: prefixes are picked by fancy indexing, each distinct
timestamp is formatted once, the value text of every point is written by numpy into one byte
matrix (:mod:`edge_agent.sinks.influx.numbers`: integral values as integers, which line protocol
reads as the same float, others with the fewest decimals that read back exactly, ``repr`` for the rare value
that needs more), and one ``join`` makes the body. Good points carry the float value; a
point whose quality is not good carries ``<field>_quality=<code>i`` instead, so a bad reading is
visible, never lost. A point of a text series (field ``text``: a serial number, a recipe name)
carries the id of its text (:meth:`SeriesCatalog.texts`) and is written as a string field.

>>> from edge_agent.collectors.batch import Batch
>>> from edge_agent.store.catalog import Series, SeriesCatalog
>>> catalog = SeriesCatalog({0: Series.of("raw", {"machine": "press 1", "signal": "temp"}, "value")})
>>> for line in LineProtocol(catalog).lines(Batch.of(10**18, [0, 0], [21.5, 3.0], [0, 1])):
...     print(line)
raw,machine=press\\ 1,signal=temp value=21.5 1000000000000000000
raw,machine=press\\ 1,signal=temp value_quality=1i 1000000000000000000
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from edge_agent.collectors.batch import QUALITY_NOT_FINITE, Batch
from edge_agent.schema import TEXT_FIELD
from edge_agent.sinks.influx.numbers import EXACT_INT, values_text
from edge_agent.store.catalog import Series, SeriesCatalog


def escape_tag(text: str) -> str:
    """A tag key, tag value or field key, escaped for line protocol."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def escape_measurement(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def series_prefix(series: Series) -> str:
    """``measurement,k=v,...`` (tags sorted by key, as InfluxDB stores them)."""
    parts = [escape_measurement(series.measurement)]
    parts += [f"{escape_tag(k)}={escape_tag(v)}" for k, v in series.tags]
    return ",".join(parts)


class LineProtocol:
    """Encodes batches whose series ids are in ``catalog``."""

    def __init__(self, catalog: SeriesCatalog, previous: LineProtocol | None = None) -> None:
        self.catalog = catalog
        #: The UTF-8 prefix of each series id, ``... field=`` (a point with a quality code writes
        #: ``... field_quality=``, made from it when needed: such points are rare).
        self.good = np.full(catalog.size, b"", dtype=object)
        # Catalogs only grow: the prefixes of an earlier snapshot stay valid.
        known = 0 if previous is None else min(previous.good.shape[0], catalog.size)
        if known:
            assert previous is not None
            self.good[:known] = previous.good[:known]
        for sid, series in catalog.items():
            if sid >= known or not self.good[sid]:
                self.good[sid] = f"{series_prefix(series)} {escape_tag(series.field)}=".encode()
        self.is_text = np.fromiter(
            (catalog.get(i) is not None and catalog[i].field == TEXT_FIELD for i in range(catalog.size)),
            bool,
            catalog.size,
        )
        self.any_text = bool(self.is_text.any())

    def follow(self, catalog: SeriesCatalog) -> LineProtocol:
        """This encoder, or one for a newer snapshot of the same catalog."""
        return self if catalog is self.catalog else LineProtocol(catalog, self)

    def lines(self, batch: Batch) -> list[str]:
        """One line per point, in batch order (for the rejected-points file and splitting)."""
        return self.encode(batch).decode().split("\n") if len(batch) else []

    def encode(self, batch: Batch) -> bytes:
        """The body for ``batch``: newline-separated lines, UTF-8."""
        n = len(batch)
        if n == 0:
            return b""
        quality = batch.quality
        ok = quality == 0
        # A good point whose value is not finite has no line-protocol number: it is written as a
        # quality code (the agent flags such values before they are stored; this is the last guard).
        not_finite = ok & ~np.isfinite(batch.value)
        if not_finite.any():
            quality = np.where(not_finite, np.uint8(QUALITY_NOT_FINITE), quality)
            ok &= ~not_finite
        all_ok = bool(ok.all())
        signal = batch.signal
        ends, rest = values_text(batch.value, None if all_ok else quality)
        for i in rest.tolist():  # values that need more digits: Python's repr
            ends[i] = _value_text(float(batch.value[i]), int(quality[i])).encode()
        if self.any_text:
            texts_at = np.flatnonzero(self.is_text[signal] & ok)
            if texts_at.shape[0]:
                texts = self.catalog.texts
                for i, code in zip(texts_at.tolist(), batch.value[texts_at].tolist(), strict=True):
                    ends[i] = (_string_field(texts.get(int(code), "")) if math.isfinite(code) else '""').encode()
        parts = np.empty(3 * n, dtype=object)
        prefixes = self.good[signal]
        if not all_ok:
            bad = np.flatnonzero(~ok)
            prefixes[bad] = [p[:-1] + b"_quality=" for p in prefixes[bad].tolist()]
        parts[0::3] = prefixes
        parts[1::3] = ends
        parts[2::3] = _format_times(batch.ts)
        return b"".join(parts.tolist())[:-1]  # no newline after the last line


def _value_text(value: float, quality: int) -> str:
    """One value as line protocol writes it, where :func:`tails` leaves it out."""
    if quality != 0:
        return f"{quality}i"
    if value == int(value) and abs(value) < EXACT_INT:
        return str(int(value))
    return repr(value)


def _string_field(text: str) -> str:
    """A string field value: quoted, with ``"`` and ``\\`` escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_times(ts: NDArray[np.int64]) -> NDArray[np.object_]:
    """`` <ts>\\n`` per point, each distinct timestamp formatted once (a poll shares one)."""
    change = np.empty(ts.shape[0], bool)
    change[0] = True
    np.not_equal(ts[1:], ts[:-1], out=change[1:])
    if int(np.count_nonzero(change)) * 4 > ts.shape[0]:
        unique, where = np.unique(ts, return_inverse=True)
        texts = np.array([f" {t}\n".encode() for t in unique.tolist()], dtype=object)
        by_point: NDArray[np.object_] = texts[where]
        return by_point
    starts = np.flatnonzero(change)
    texts = np.array([f" {t}\n".encode() for t in ts[starts].tolist()], dtype=object)
    by_run: NDArray[np.object_] = texts[np.cumsum(change) - 1]
    return by_run
