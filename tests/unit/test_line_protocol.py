"""Line protocol from columnar batches and the series catalog."""

from __future__ import annotations

import numpy as np

from collectors.batch import QUALITY_BAD_DEVICE, Batch
from edge_agent.sinks.line_protocol import LineProtocol, series_prefix
from edge_agent.store.catalog import Series, SeriesCatalog, parse_line_protocol_key


def test_escaping_and_sorted_tags() -> None:
    series = Series.of("raw", {"machine": "press 1", "line": "a,b", "signal": "t=1", "empty": ""}, "value")
    assert series_prefix(series) == "raw,line=a\\,b,machine=press\\ 1,signal=t\\=1"
    assert parse_line_protocol_key(series_prefix(series)) == ("raw", series.tag_dict)


def test_good_and_bad_quality_points() -> None:
    temp = Series.of("raw", {"machine": "m1", "signal": "temp"}, "value")
    catalog = SeriesCatalog({0: temp, 1: Series.of("oee", {"machine": "m1"}, "oee")})
    batch = Batch.of(
        np.array([10, 20, 30], np.int64),
        [0, 1, 0],
        [21.5, 0.75, np.nan],
        [0, 0, QUALITY_BAD_DEVICE],
    )
    assert LineProtocol(catalog).lines(batch) == [
        "raw,machine=m1,signal=temp value=21.5 10",
        "oee,machine=m1 oee=0.75 20",
        "raw,machine=m1,signal=temp value_quality=1i 30",
    ]


def test_floats_round_trip_exactly() -> None:
    catalog = SeriesCatalog({0: Series.of("m", {}, "v")})
    values = np.array([0.1, 1e-300, 123456789.123456789, -0.0, 5.0, 2.0**60, -3.0, 1e17])
    lines = LineProtocol(catalog).lines(Batch.of(0, np.zeros(values.shape[0], np.int32), values))
    parsed = [float(line.split("=")[1].split(" ")[0]) for line in lines]
    assert parsed == values.tolist()


def test_timestamps_of_interleaved_polls() -> None:
    catalog = SeriesCatalog({0: Series.of("m", {}, "v"), 1: Series.of("n", {}, "v")})
    ts = np.array([5, 5, 3, 3, 5, 9], np.int64)
    lines = LineProtocol(catalog).lines(Batch.of(ts, [0, 1, 0, 1, 0, 1], np.arange(6.0)))
    assert [int(line.rsplit(" ", 1)[1]) for line in lines] == ts.tolist()
