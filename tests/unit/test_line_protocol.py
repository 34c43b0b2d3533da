"""Line protocol from columnar batches and the series catalog."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.collectors.batch import QUALITY_BAD_DEVICE, Batch
from edge_agent.sinks.influx.line_protocol import LineProtocol, series_prefix
from edge_agent.store.catalog import Series, SeriesCatalog


def test_escaping_and_sorted_tags() -> None:
    series = Series.of("raw", {"machine": "press 1", "line": "a,b", "signal": "t=1", "empty": ""}, "value")
    assert series_prefix(series) == "raw,line=a\\,b,machine=press\\ 1,signal=t\\=1"


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


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**53), 2**53).map(float),
            st.decimals(-(10**6), 10**6, places=4, allow_nan=False, allow_infinity=False).map(float),
        ),
        min_size=1,
        max_size=60,
    ),
    st.lists(st.integers(0, 3), min_size=60, max_size=60),
    st.integers(0, 2**63 - 1),
)
def test_every_value_and_code_reads_back_exactly(values: list[float], codes: list[int], t0: int) -> None:
    """Whatever the mix of integers, short decimals, long fractions and quality codes."""
    catalog = SeriesCatalog({0: Series.of("m", {"k": "v"}, "f")})
    n = len(values)
    quality = np.array(codes[:n], np.uint8)
    ts = np.minimum(t0 + np.arange(n) // 3, 2**63 - 1).astype(np.int64)
    lines = LineProtocol(catalog).lines(Batch(ts, np.zeros(n, np.int32), np.array(values), quality))
    assert len(lines) == n
    for line, value, code, stamp in zip(lines, values, quality.tolist(), ts.tolist(), strict=True):
        head, text, when = line.split(" ")
        assert int(when) == stamp
        field, written = text.split("=")
        if code:
            assert (head, field, written) == ("m,k=v", "f_quality", f"{code}i")
        else:
            assert (head, field) == ("m,k=v", "f")
            assert float(written) == value
