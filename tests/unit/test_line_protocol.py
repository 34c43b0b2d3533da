"""Line protocol from columnar batches."""

from __future__ import annotations

import numpy as np

from collectors.batch import QUALITY_BAD_DEVICE, Batch
from edge_agent.sinks.line_protocol import SeriesTable, series_key


def test_escaping_and_sorted_tags() -> None:
    key = series_key("raw", {"machine": "press 1", "line": "a,b", "signal": "t=1", "empty": ""})
    assert key == "raw,line=a\\,b,machine=press\\ 1,signal=t\\=1"


def test_good_and_bad_quality_points() -> None:
    table = SeriesTable([(0, "raw,machine=m1,signal=temp", "value"), (1, "oee,machine=m1", "oee")])
    batch = Batch.of(
        np.array([10, 20, 30], np.int64),
        [0, 1, 0],
        [21.5, 0.75, np.nan],
        [0, 0, QUALITY_BAD_DEVICE],
    )
    assert table.lines(batch) == [
        "raw,machine=m1,signal=temp value=21.5 10",
        "oee,machine=m1 oee=0.75 20",
        "raw,machine=m1,signal=temp value_quality=1i 30",
    ]


def test_floats_round_trip_exactly() -> None:
    table = SeriesTable([(0, "m", "v")])
    values = np.array([0.1, 1e-300, 123456789.123456789, -0.0, 5.0])
    lines = table.lines(Batch.of(0, np.zeros(5, np.int32), values))
    parsed = [float(line.split("=")[1].split(" ")[0]) for line in lines]
    assert parsed == values.tolist()
