"""InfluxDB line protocol built from columnar batches.

Each series id maps to a prefix ``measurement,tag=value,... field=``; a point is that prefix,
its value and its timestamp (ns). Good points carry the float value; a point whose quality is
not good carries ``<field>_quality=<code>i`` instead, so a bad reading is visible, never lost.
Values are written with ``repr`` (shortest round-trip form of a float64).

>>> key = series_key("raw", {"machine": "press 1", "signal": "temp"})
>>> key
'raw,machine=press\\\\ 1,signal=temp'
"""

from __future__ import annotations

import numpy as np

from collectors.batch import Batch


def _escape_tag(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def series_key(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,k=v,...`` with tags sorted by key (what InfluxDB stores anyway)."""
    name = measurement.replace(",", "\\,").replace(" ", "\\ ")
    parts = [name] + [f"{_escape_tag(k)}={_escape_tag(v)}" for k, v in sorted(tags.items()) if v]
    return ",".join(parts)


class SeriesTable:
    """Prefixes for every series id, refreshed from the buffer's series table."""

    def __init__(self, rows: list[tuple[int, str, str]]) -> None:
        size = max((r[0] for r in rows), default=-1) + 1
        self.good = np.full(size, "", dtype=object)
        self.bad = np.full(size, "", dtype=object)
        for sid, key, field in rows:
            f = _escape_tag(field)
            self.good[sid] = f"{key} {f}="
            self.bad[sid] = f"{key} {f}_quality="

    def __len__(self) -> int:
        return int(self.good.shape[0])

    def lines(self, batch: Batch) -> list[str]:
        """One line per point, in batch order."""
        if len(batch) == 0:
            return []
        # Readings of one poll share a timestamp: format each distinct time once.
        unique_ts, where = np.unique(batch.ts, return_inverse=True)
        suffix = np.array([f" {t}" for t in unique_ts.tolist()], dtype=object)[where]
        ok = batch.quality == 0
        if ok.all():
            return [
                p + repr(v) + t
                for p, v, t in zip(
                    self.good[batch.signal].tolist(),
                    batch.value.tolist(),
                    suffix.tolist(),
                    strict=True,
                )
            ]
        out = np.empty(len(batch), dtype=object)
        good_idx = np.flatnonzero(ok)
        out[good_idx] = [
            p + repr(v) + t
            for p, v, t in zip(
                self.good[batch.signal[good_idx]].tolist(),
                batch.value[good_idx].tolist(),
                suffix[good_idx].tolist(),
                strict=True,
            )
        ]
        bad_idx = np.flatnonzero(~ok)
        out[bad_idx] = [
            f"{p}{q}i{t}"
            for p, q, t in zip(
                self.bad[batch.signal[bad_idx]].tolist(),
                batch.quality[bad_idx].tolist(),
                suffix[bad_idx].tolist(),
                strict=True,
            )
        ]
        return list(out.tolist())
