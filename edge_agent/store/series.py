"""The series registry: what each integer series id in the local store means, kept across restarts.

Series (measurement, tags and field of a point) are registered once and keep their ids, so the ids
stored in chunks mean the same thing after a restart; :meth:`SeriesRegistry.catalog` hands sinks an
immutable snapshot (:mod:`edge_agent.store.catalog`). Text readings (a serial number, a recipe name)
are stored once each and carried by their id.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable

import numpy as np

from edge_agent.store.catalog import Series, SeriesCatalog
from edge_agent.store.file import StoreFile

#: Tag texts whose parse is remembered while the catalog is read (a device's series share one).
PARSED_AT_ONCE = 4096


class SeriesRegistry:
    """Series ids and text ids (any thread)."""

    def __init__(self, file: StoreFile) -> None:
        self.file = file
        #: Every tag pair and tag set seen, each kept once: series of one device, and a signal's raw
        #: and score series, share them (50,000 signals would otherwise hold a million tuples).
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._tag_sets: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = {}
        with file.lock:
            catalog = self._after(SeriesCatalog(), -1)
            texts = dict(file.db.execute("SELECT id, text FROM texts"))
        self._catalog = catalog.with_texts(texts) if texts else catalog

    def _after(self, known: SeriesCatalog, last_id: int) -> SeriesCatalog:
        """``known`` extended by the catalog rows with id above ``last_id`` (hold the lock).

        Each distinct tag set is parsed once per call and kept once (with its pairs and strings),
        shared by every series that has it.
        """
        parsed: dict[str, tuple[tuple[str, str], ...]] = {}
        more: dict[int, Series] = {}
        for sid, measurement, tags, name in self.file.db.execute(
            "SELECT id, measurement, tags, field FROM catalog WHERE id > ? ORDER BY id", (last_id,)
        ):
            pairs = parsed.get(tags)
            if pairs is None:
                if len(parsed) >= PARSED_AT_ONCE:  # bounds the texts held while 50,000 are read
                    parsed.clear()
                each = tuple(sorted(self._pair(k, v) for k, v in json.loads(tags).items()))
                pairs = parsed[tags] = self._tag_sets.setdefault(each, each)
            more[int(sid)] = Series(sys.intern(measurement), pairs, sys.intern(name))
        return known.with_entries(more) if more else known

    def _pair(self, key: str, value: str) -> tuple[str, str]:
        pair = (sys.intern(key), sys.intern(value))
        return self._pairs.setdefault(pair, pair)

    def register(self, series: Iterable[Series]) -> np.ndarray:
        """Ids (int32) of ``series``, creating those not yet known (the catalog snapshot is renewed).

        ``series`` may be a generator: 50,000 series are then never all held at once."""
        ids: list[int] = []
        with self.file.lock:
            with self.file.transaction() as db:
                for s in series:  # one row at a time: 50,000 texts are not held at once
                    row = (s.measurement, s.tags_json(), s.field)
                    found = db.execute(
                        "SELECT id FROM catalog WHERE measurement = ? AND tags = ? AND field = ?", row
                    ).fetchone()
                    if found is None:
                        found = db.execute(
                            "INSERT INTO catalog (measurement, tags, field) VALUES (?, ?, ?) RETURNING id", row
                        ).fetchone()
                    ids.append(int(found[0]))
            self._catalog = self._after(self._catalog, self._catalog.size - 1)
        return np.array(ids, np.int32)

    def intern_text(self, text: str) -> int:
        """The id of ``text`` (a string reading), stored once and kept across restarts; points of
        text series carry it as their value. Any thread."""
        with self.file.lock:
            known = self._catalog.text_ids.get(text)
            if known is not None:
                return known
            box: list[int] = []

            def insert() -> None:
                with self.file.transaction() as db:
                    row = db.execute("INSERT INTO texts (text) VALUES (?) RETURNING id", (text,)).fetchone()
                    box.append(int(row[0]))

            self.file.with_room(insert, reserve=True)
            self._catalog = self._catalog.with_texts({box[0]: text})
            return box[0]

    def catalog(self) -> SeriesCatalog:
        """The series known so far (an immutable snapshot: safe to hand to another thread)."""
        with self.file.lock:
            return self._catalog


__all__ = ["SeriesRegistry"]
