"""The series catalog: what each integer series id in a batch means (measurement, tags, field).

Batches carry a series id per point; a sink asks the catalog what the id stands for and encodes it
in its own format (InfluxDB line protocol, JSON, ...). A :class:`SeriesCatalog` is an immutable
snapshot: the store makes a new one whenever series are registered, so a sender thread can keep
using the one it was handed while the pipeline registers more.

>>> s = Series.of("raw", {"machine": "press 1", "signal": "temp", "empty": ""}, "value")
>>> s.tags
(('machine', 'press 1'), ('signal', 'temp'))
>>> SeriesCatalog({7: s})[7].field
'value'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Series:
    """One series' identity: measurement, tags (sorted by key, empty values left out) and field."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    field: str

    @classmethod
    def of(cls, measurement: str, tags: Mapping[str, str], field: str) -> Series:
        return cls(measurement, tuple(sorted((k, v) for k, v in tags.items() if v)), field)

    @property
    def tag_dict(self) -> dict[str, str]:
        return dict(self.tags)

    def tags_json(self) -> str:
        """The tags as stored in the local store (a JSON object, keys sorted)."""
        return json.dumps(dict(self.tags), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class SeriesCatalog:
    """An immutable map from series id to :class:`Series`."""

    def __init__(self, entries: Mapping[int, Series] | None = None, texts: Mapping[int, str] | None = None) -> None:
        self._entries: dict[int, Series] = dict(entries or {})
        #: One more than the largest id (arrays indexed by series id have this length).
        self.size = max(self._entries, default=-1) + 1
        #: Text values by id: a point of a text series (field ``text``) carries the id as its value.
        self.texts: dict[int, str] = dict(texts or {})
        self.text_ids: dict[str, int] = {t: i for i, t in self.texts.items()}

    def __getitem__(self, series_id: int) -> Series:
        return self._entries[series_id]

    def get(self, series_id: int) -> Series | None:
        return self._entries.get(series_id)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[int]:
        return iter(self._entries)

    def items(self) -> Iterable[tuple[int, Series]]:
        return self._entries.items()

    def with_entries(self, more: Mapping[int, Series]) -> SeriesCatalog:
        """A new snapshot with ``more`` added."""
        return SeriesCatalog({**self._entries, **more}, self.texts)

    def with_texts(self, more: Mapping[int, str]) -> SeriesCatalog:
        """A new snapshot with text values ``more`` added."""
        return SeriesCatalog(self._entries, {**self.texts, **more})
