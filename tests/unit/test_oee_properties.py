"""Properties of the OEE engine (hypothesis): coverage, split invariance, roll-ups, ratio bounds."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from edge_agent.analytics.episodes import C_UNKNOWN, C_UNSCHEDULED, COLUMNS
from edge_agent.analytics.oee import TOTAL_KIND, MachineOeeConfig, OeeEngine, WindowRows
from edge_agent.analytics.oee_kpis import kpis, ratios, roll_up, summable
from edge_agent.analytics.schedule import Break, Shift, WorkSchedule
from edge_agent.analytics.windows import NS, FixedWindows, WindowGrid, day_windows

CODES = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}  # running, idle, down, setup, planned stop
START = int(dt.datetime(2026, 3, 28, 20, tzinfo=dt.UTC).timestamp()) * NS  # over Berlin's clock change

readings = st.lists(
    st.tuples(
        st.integers(0, 1),  # machine
        st.one_of(st.floats(1.0, 400.0), st.floats(400.0, 3000.0)),  # seconds since the previous reading
        st.sampled_from([1, 2, 3, 4, 5, 0]),  # state code, 0: a counter reading instead
        st.integers(0, 40),  # parts made since the previous counter reading
    ),
    min_size=2,
    max_size=60,
)


def _machines() -> list[MachineOeeConfig]:
    return [
        MachineOeeConfig(CODES, ideal_cycle_s=5.0, stale_after_s=1800.0, microstop_s=300.0),
        MachineOeeConfig(CODES, ideal_cycle_s=2.0, stale_after_s=900.0, microstop_s=0.0),
    ]


def _schedule() -> WorkSchedule:
    shifts = [Shift("early", dt.time(6), dt.time(14)), Shift("late", dt.time(14), dt.time(22))]
    return WorkSchedule(
        shifts, [Break(dt.time(12), dt.time(12, 30)), Break(dt.time(21, 45), dt.time(22, 15))], "Europe/Berlin"
    )


def _streams(
    data: list[tuple[int, float, int, int]],
) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Machine, time, kind (-1 state, else counter kind) and value of each reading, in time order."""
    clock = START + np.cumsum([int(step * NS) for _, step, _, _ in data])
    machine = np.array([m for m, _, _, _ in data], np.intp)
    kind = np.array([-1 if code else TOTAL_KIND for _, _, code, _ in data], np.int64)
    count = np.cumsum([parts for _, _, _, parts in data])
    value = np.where(kind < 0, [code for _, _, code, _ in data], count).astype(np.float64)
    return machine, clock.astype(np.int64), kind, value


def _run(data: list[tuple[int, float, int, int]], grid: WindowGrid, pieces: int, schedule: WorkSchedule) -> WindowRows:
    engine = OeeEngine(_machines(), grid, schedule)
    machine, ts, kind, value = _streams(data)
    engine.observe(machine, ts)
    closed = []
    for part in np.array_split(np.arange(ts.shape[0]), pieces):
        m, t, k, v = machine[part], ts[part], kind[part], value[part]
        engine.add_states(m[k < 0], t[k < 0], v[k < 0])
        engine.add_counters(m[k >= 0], k[k >= 0].astype(np.intp), t[k >= 0], v[k >= 0])
        if pieces > 1:
            closed.append(engine.close())
    engine.advance(int(ts.max()))  # both machines' data end at the latest reading
    closed.append(engine.close(final=True))
    return WindowRows(*(np.concatenate([getattr(r, f) for r in closed]) for f in WindowRows.__slots__))


def _totals(rows: WindowRows) -> dict[str, NDArray[np.float64]]:
    engine = OeeEngine(_machines(), FixedWindows(NS))
    cols = summable(rows.elements, engine.ideal_cycle_s[rows.machine], engine.has_counter[rows.machine])
    return roll_up(cols, rows.machine, 2)


@settings(max_examples=120, deadline=None)
@given(readings, st.integers(2, 9))
def test_feeding_in_pieces_gives_the_same_windows(data: list[tuple[int, float, int, int]], pieces: int) -> None:
    grid = FixedWindows(3600 * NS)
    whole = _run(data, grid, 1, _schedule())
    split = _run(data, grid, pieces, _schedule())
    a = np.lexsort((whole.key, whole.machine))
    b = np.lexsort((split.key, split.machine))
    assert whole.key[a].tolist() == split.key[b].tolist()
    assert whole.elements[a] == pytest.approx(split.elements[b], abs=1e-6)


@settings(max_examples=120, deadline=None)
@given(readings)
def test_time_elements_of_a_window_sum_to_the_window(data: list[tuple[int, float, int, int]]) -> None:
    rows = _run(data, FixedWindows(3600 * NS), 3, _schedule())
    time = rows.elements[:, : C_UNSCHEDULED + 1].sum(axis=1)
    assert time == pytest.approx((rows.end - rows.start) / NS, abs=1e-6)
    assert (rows.elements >= -1e-9).all(), dict(zip(COLUMNS, rows.elements.min(axis=0).tolist(), strict=True))


@settings(max_examples=100, deadline=None)
@given(readings)
def test_hours_days_and_one_window_roll_up_to_the_same_totals(data: list[tuple[int, float, int, int]]) -> None:
    hours = _totals(_run(data, FixedWindows(3600 * NS), 4, _schedule()))
    days = _totals(_run(data, day_windows("Europe/Berlin"), 2, _schedule()))
    once = _totals(_run(data, FixedWindows(10**6 * 3600 * NS), 1, _schedule()))
    for k in hours:
        assert hours[k] == pytest.approx(once[k], abs=1e-6, nan_ok=True), k
        assert days[k] == pytest.approx(once[k], abs=1e-6, nan_ok=True), k


@settings(max_examples=120, deadline=None)
@given(readings)
def test_ratios_stay_in_bounds_and_oee_is_their_product(data: list[tuple[int, float, int, int]]) -> None:
    rows = _run(data, FixedWindows(3600 * NS), 2, _schedule())
    engine = OeeEngine(_machines(), FixedWindows(NS))
    k = kpis(rows.elements, engine.ideal_cycle_s[rows.machine], engine.has_counter[rows.machine])
    for name in ("availability", "quality", "oee"):
        v = k[name][np.isfinite(k[name])]
        assert ((v >= 0) & (v <= 1 + 1e-9)).all(), name
    assert (k["performance"][np.isfinite(k["performance"])] >= 0).all()
    both = np.isfinite(k["availability"]) & np.isfinite(k["performance"]) & np.isfinite(k["quality"])
    product = k["availability"] * k["performance"] * k["quality"]
    assert k["oee"][both] == pytest.approx(np.minimum(product, 1.0)[both], rel=1e-9)
    # A performance above 1 is flagged, and so is an OEE capped at 1.
    flags = k["flags"].astype(np.int64)
    assert ((flags & 1 > 0) == (np.nan_to_num(k["performance"]) > 1)).all()
    assert (flags[both & (product > 1 + 1e-9)] & 32 > 0).all()
    # A window's unknown time never enters planned busy time.
    assert (k["planned_busy_s"] <= k["scheduled_s"] - rows.elements[:, C_UNKNOWN] + 1e-6).all()
    assert set(ratios(summable(rows.elements, engine.ideal_cycle_s[rows.machine], engine.has_counter[rows.machine])))


outages = st.lists(
    st.tuples(
        st.floats(1.0, 120.0),  # seconds since the previous poll
        st.booleans(),  # the poll failed (the device was unreachable)
        st.integers(0, 30),  # parts made since the previous poll
        st.booleans(),  # the device restarted before this poll: its counter starts again from 0
    ),
    min_size=2,
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(outages, st.integers(1, 6), st.sampled_from([0.0, 65536.0]))
def test_outages_and_resets_never_make_parts_nor_an_oee_above_1(
    polls: list[tuple[float, bool, int, bool]], pieces: int, modulus: float
) -> None:
    """However an outage is cut into polls: no window's OEE exceeds 1, counted parts never exceed
    the parts made, and a reset creates none."""
    cycle = 2.0
    engine = OeeEngine(
        [MachineOeeConfig(CODES, ideal_cycle_s=cycle, stale_after_s=60.0, counters={TOTAL_KIND: modulus})],
        FixedWindows(60 * NS),
    )
    t, made, counter, times, codes, counts, count_ts = START, 0, 1000, [], [], [], []
    for step, failed, wanted, restart in polls:
        t += int(step * NS)
        # A machine makes at most one part per ideal cycle.
        parts = min(wanted, int(step / cycle))
        made += parts
        counter = (0 if restart else counter) + parts
        times.append(t)
        codes.append(np.nan if failed else 1.0)
        if not failed:
            counts.append(counter % modulus if modulus else counter)
            count_ts.append(t)
    m = np.zeros(len(times), np.intp)
    closed = []
    for part in np.array_split(np.arange(len(times)), pieces):
        engine.add_states(m[part], np.array(times)[part], np.array(codes)[part])
        mine = [i for i, x in enumerate(count_ts) if times[part[0]] <= x <= times[part[-1]]] if part.shape[0] else []
        engine.add_counters(
            np.zeros(len(mine), np.intp),
            np.full(len(mine), TOTAL_KIND, np.intp),
            np.array([count_ts[i] for i in mine], np.int64),
            np.array([counts[i] for i in mine], np.float64),
        )
        closed.append(engine.close())
    closed.append(engine.close(final=True))
    rows = WindowRows(*(np.concatenate([getattr(r, f) for r in closed]) for f in WindowRows.__slots__))
    has = np.array([[True, False, False, False]] * len(rows))
    k = kpis(rows.elements, np.full(len(rows), cycle), has)
    oee = k["oee"][np.isfinite(k["oee"])]
    assert (oee <= 1 + 1e-9).all()
    assert k["produced"].sum() + k["unattributed_parts"].sum() <= made
