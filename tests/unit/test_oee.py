"""OEE arithmetic: pro-rata windows, stale time, counter wrap and reset, KPI formulas."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.analytics.episodes import (
    C_DELAY,
    C_DOWN,
    C_FAILURES,
    C_GOOD,
    C_MICROSTOP,
    C_PLANNED_STOP,
    C_REJECT,
    C_RESETS,
    C_RUNNING,
    C_TOTAL,
    C_UNATTRIBUTED,
    C_UNKNOWN,
    NCOL,
)
from edge_agent.analytics.oee import (
    DOWN,
    GOOD_KIND,
    IDLE,
    PLANNED_STOP,
    REJECT_KIND,
    RUNNING,
    TOTAL_KIND,
    MachineOeeConfig,
    OeeEngine,
)
from edge_agent.analytics.oee_kpis import flag_names, kpis
from edge_agent.analytics.windows import NS, FixedWindows, Shift, ShiftWindows

# Idle episodes are delay time here (no micro-stop threshold); columns 0..7 are scheduled time.
SCHEDULED = slice(0, C_UNKNOWN + 1)
CODES = {1: RUNNING, 2: IDLE, 3: DOWN, 5: PLANNED_STOP}
MIN = 60 * NS


def engine(**kw: object) -> OeeEngine:
    cfg = MachineOeeConfig(CODES, **kw)  # type: ignore[arg-type]
    return OeeEngine([cfg], FixedWindows(MIN))


def states(e: OeeEngine, seconds: list[float], codes: list[int]) -> None:
    e.add_states(
        np.zeros(len(codes), np.intp),
        (np.array(seconds) * NS).astype(np.int64),
        np.array(codes, float),
    )


def counters(e: OeeEngine, kind: int, seconds: list[float], values: list[float]) -> None:
    n = len(values)
    e.add_counters(
        np.zeros(n, np.intp),
        np.full(n, kind, np.intp),
        (np.array(seconds) * NS).astype(np.int64),
        np.array(values),
    )


def test_state_spanning_a_window_edge_is_split_pro_rata() -> None:
    e = engine(stale_after_s=600.0)
    states(e, [30, 100, 130], [1, 3, 1])
    rows = e.close()
    assert rows.key.tolist() == [0, MIN]
    # [30, 60) running in window 0; [60, 100) running and [100, 120) down in window 1.
    assert rows.elements[0, C_RUNNING] == 30
    assert rows.elements[1, C_RUNNING] == 40
    assert rows.elements[1, C_DOWN] == 20
    assert len(e.close()) == 0  # the window holding 130 s is still open


def test_stale_state_becomes_unknown_and_leaves_planned_busy_time() -> None:
    e = engine(stale_after_s=10.0)
    states(e, [0, 50], [1, 1])
    rows = e.close(final=True)
    assert rows.elements[0, C_RUNNING] == 10
    assert rows.elements[0, C_UNKNOWN] == 40
    k = kpis(rows.elements, np.array([1.0]), e.has_counter[rows.machine])
    assert k["planned_busy_s"][0] == 10
    assert k["availability"][0] == 1.0


def test_advance_extends_held_state_then_unknown() -> None:
    e = engine(stale_after_s=30.0)
    states(e, [0], [2])
    e.advance(60 * NS)
    assert len(e.close()) == 0, "a window closes once time has passed its end"
    e.advance(61 * NS)
    rows = e.close()
    assert len(rows) == 1 and rows.elements[0, C_DELAY] == 30 and rows.elements[0, C_UNKNOWN] == 30


def test_counter_wrap_with_modulus() -> None:
    e = engine(counters={GOOD_KIND: 65536.0})
    states(e, [0, 59], [1, 1])
    counters(e, GOOD_KIND, [0, 20, 40], [65530, 65535, 4])  # +5, then wrap: +5
    rows = e.close(final=True)
    assert rows.elements[0, C_GOOD] == 10


def test_a_counter_reset_inside_a_window_counts_what_it_shows_since_and_is_flagged() -> None:
    e = engine(counters={TOTAL_KIND: 0.0})
    states(e, [0, 59], [1, 1])
    counters(e, TOTAL_KIND, [0, 20, 40, 50], [100, 110, 3, 7])  # +10, reset (3 made since), +4
    rows = e.close(final=True)
    assert rows.elements[0, C_TOTAL] == 17
    assert rows.elements[0, C_UNATTRIBUTED + TOTAL_KIND] == 0
    assert rows.elements[0, C_RESETS] == 1
    k = kpis(rows.elements, np.array([1.0]), np.array([[True, False, False, False]]), rows.partial)
    assert flag_names(k["flags"][0]) == ["counter_reset", "partial_window"]


def test_a_counter_reset_between_two_windows_keeps_its_count_apart() -> None:
    """Which window the parts made since the reset belong to is not known: unattributed, flagged."""
    e = engine(counters={TOTAL_KIND: 0.0})
    states(e, [0, 119], [1, 1])
    counters(e, TOTAL_KIND, [0, 50, 70, 110], [100, 110, 3, 7])  # the reset lies between 50 s and 70 s
    rows = e.close(final=True)
    assert rows.elements[:, C_TOTAL].tolist() == [10, 4]
    assert rows.elements[:, C_UNATTRIBUTED + TOTAL_KIND].tolist() == [0, 3]
    assert rows.elements[:, C_RESETS].tolist() == [0, 1]


def test_an_implausible_restart_count_inside_a_window_is_not_counted() -> None:
    """A counter that shows more after its restart than the machine could have made is not believed."""
    e = engine(counters={TOTAL_KIND: 0.0}, ideal_cycle_s=1.0, counter_margin=2.0)
    states(e, [0, 59], [1, 1])
    counters(e, TOTAL_KIND, [0, 10, 20], [100, 110, 90])  # 90 > (10 + 1) x 2: a drop, not a restart
    rows = e.close(final=True)
    assert rows.elements[0, C_TOTAL] == 10
    assert rows.elements[0, C_UNATTRIBUTED + TOTAL_KIND] == 0
    assert rows.elements[0, C_RESETS] == 1


def test_a_wrap_is_counted_only_when_the_machine_could_have_made_that_many() -> None:
    """A uint16 counter that restarts at 895 and then reads 65502: not 64,607 parts in a minute."""
    e = engine(counters={TOTAL_KIND: 65536.0}, ideal_cycle_s=2.0)
    states(e, [0, 119], [1, 1])
    counters(e, TOTAL_KIND, [0, 30, 60, 90], [880, 895, 65502, 65510])
    rows = e.close(final=True)
    assert rows.elements[:, C_TOTAL].sum() == 15 + 8
    assert rows.elements[:, C_RESETS].sum() == 1
    k = kpis(rows.elements, np.array([2.0, 2.0]), np.array([[True, False, False, False]] * 2), rows.partial)
    assert np.nanmax(k["oee"]) <= 1.0 and np.nanmax(k["performance"]) <= 1.0


def test_an_implausible_jump_is_a_re_baseline() -> None:
    e = engine(counters={TOTAL_KIND: 0.0}, ideal_cycle_s=1.0, counter_margin=2.0)
    states(e, [0, 59], [1, 1])
    counters(e, TOTAL_KIND, [0, 10, 20, 30], [0, 22, 5000, 5010])  # 22 <= (10 + 1) x 2; 4978 is not
    rows = e.close(final=True)
    assert rows.elements[0, C_TOTAL] == 32
    assert rows.elements[0, C_RESETS] == 1
    assert rows.elements[0, C_UNATTRIBUTED + TOTAL_KIND] == 0  # 5000 parts could not have been made since a reset


def test_an_outage_is_unknown_time_and_its_parts_are_unattributed() -> None:
    e = engine(counters={TOTAL_KIND: 0.0}, stale_after_s=3600.0)
    states(e, [0, 10], [1, 1])
    counters(e, TOTAL_KIND, [0, 10], [0, 10])
    e.add_states(np.zeros(1, np.intp), np.array([20 * NS]), np.array([np.nan]))  # unreachable
    states(e, [80, 119], [1, 1])
    counters(e, TOTAL_KIND, [80, 119], [70, 109])  # +60 over the outage, then +39
    rows = e.close(final=True)
    by_key = {int(k // NS): r for k, r in zip(rows.key.tolist(), rows.elements, strict=True)}
    assert by_key[0][C_RUNNING] == 20 and by_key[0][C_UNKNOWN] == 40
    assert by_key[60][C_UNKNOWN] == 20 and by_key[60][C_RUNNING] == 39
    assert by_key[0][C_TOTAL] == 10 and by_key[60][C_TOTAL] == 39
    assert by_key[60][C_UNATTRIBUTED + TOTAL_KIND] == 60 and by_key[60][C_RESETS] == 1


def test_counter_increase_counts_in_window_of_later_reading() -> None:
    e = engine(counters={TOTAL_KIND: 0.0})
    states(e, [0, 119], [1, 1])
    counters(e, TOTAL_KIND, [50, 70], [0, 8])
    rows = e.close(final=True)
    by_start = dict(zip(rows.key.tolist(), rows.elements[:, C_TOTAL].tolist(), strict=True))
    assert by_start == {0: 0.0, MIN: 8.0}


def test_kpi_formulas_and_absent_ratios() -> None:
    elements = np.zeros((2, NCOL))
    # 40 s running, 10 s down, 10 s planned stop; 15 good + 1 reject at 2 s ideal cycle.
    elements[0, [C_RUNNING, C_DOWN, C_PLANNED_STOP]] = [40, 10, 10]
    elements[0, C_GOOD], elements[0, C_REJECT] = 15, 1
    # second row: a machine that only stood in planned stop
    elements[1, C_PLANNED_STOP] = 60
    has = np.zeros((2, 4), bool)
    has[:, [GOOD_KIND, REJECT_KIND]] = True
    k = kpis(elements, np.array([2.0, 2.0]), has)
    assert k["availability"][0] == pytest.approx(40 / 50)
    assert k["performance"][0] == pytest.approx(2 * 16 / 40)
    assert k["quality"][0] == pytest.approx(15 / 16)
    assert k["oee"][0] == pytest.approx(k["availability"][0] * k["performance"][0] * k["quality"][0])
    assert np.isnan([k["availability"][1], k["performance"][1], k["quality"][1], k["oee"][1]]).all()


def test_machine_that_never_ran_has_oee_zero() -> None:
    e = engine()
    states(e, [0, 59], [3, 3])
    rows = e.close(final=True)
    k = kpis(rows.elements, np.array([1.0]), e.has_counter[rows.machine])
    assert k["oee"][0] == 0.0 and k["availability"][0] == 0.0
    assert np.isnan(k["performance"][0])


def test_unknown_state_codes_take_the_default() -> None:
    e = engine()
    states(e, [0, 10, 20], [1, 77, 1])
    rows = e.close(final=True)
    assert rows.elements[0, C_DOWN] == 10


def test_late_readings_are_ignored_not_double_counted() -> None:
    e = engine()
    states(e, [0, 30], [1, 1])
    states(e, [10], [3])  # older than what was accounted
    rows = e.close(final=True)
    assert rows.elements[0, SCHEDULED].sum() == 30 and rows.elements[0, C_DOWN] == 0


def test_many_machines_in_one_call() -> None:
    cfg = MachineOeeConfig(CODES)
    e = OeeEngine([cfg] * 3, FixedWindows(MIN))
    m = np.array([0, 1, 2, 0, 1, 2], np.intp)
    ts = np.array([0, 0, 0, 60, 60, 60], np.int64) * NS
    e.add_states(m, ts, np.array([1, 2, 3, 1, 1, 1], float))
    rows = e.close(final=True)
    order = np.argsort(rows.machine)
    assert rows.elements[order][:, [C_RUNNING, C_DELAY, C_DOWN]].tolist() == [
        [60, 0, 0],
        [0, 60, 0],
        [0, 0, 60],
    ]


def test_night_shift_over_midnight_in_shanghai() -> None:
    grid = ShiftWindows(
        [Shift("day", dt.time(8), dt.time(20)), Shift("night", dt.time(20), dt.time(8))],
        "Asia/Shanghai",
    )
    # 2026-03-01 23:00 in Shanghai is 15:00 UTC.
    t = int(dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.UTC).timestamp()) * NS
    start, end = grid.locate(np.array([t], np.int64))
    assert dt.datetime.fromtimestamp(start[0] / NS, dt.UTC) == dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    assert (end[0] - start[0]) // NS == 12 * 3600
    assert grid.label(int(start[0])) == "night"


def test_shift_across_a_clock_change_is_an_hour_short() -> None:
    grid = ShiftWindows([Shift("night", dt.time(22), dt.time(6))], "Europe/Berlin")
    # Night of 28 to 29 March 2026: clocks go forward at 02:00.
    t = int(dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC).timestamp()) * NS
    start, end = grid.locate(np.array([t], np.int64))
    assert (end[0] - start[0]) // NS == 7 * 3600


def test_time_between_shifts_is_not_scheduled() -> None:
    grid = ShiftWindows([Shift("day", dt.time(8), dt.time(16))], "UTC")
    e = OeeEngine([MachineOeeConfig(CODES, stale_after_s=1e9)], grid)
    day = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()) * NS
    states(e, [(day / NS) + 6 * 3600, (day / NS) + 10 * 3600], [1, 1])
    rows = e.close(final=True)
    assert rows.elements[0, SCHEDULED].sum() == 2 * 3600  # 08:00 to 10:00 only


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.1, 200.0), st.sampled_from([1, 2, 3, 5])), min_size=2, max_size=40),
    st.integers(1, 7),
)
def test_time_elements_sum_to_covered_time_however_fed(steps: list[tuple[float, int]], pieces: int) -> None:
    t = np.cumsum([s for s, _ in steps])
    t = np.round(t * 1000).astype(np.int64) * 1_000_000  # whole milliseconds
    codes = np.array([c for _, c in steps], float)
    whole = engine(stale_after_s=1e6)
    whole.add_states(np.zeros(t.shape[0], np.intp), t, codes)
    a = whole.close(final=True)
    split = engine(stale_after_s=1e6)
    rows = []
    for chunk_t, chunk_c in zip(np.array_split(t, pieces), np.array_split(codes, pieces), strict=True):
        split.add_states(np.zeros(chunk_t.shape[0], np.intp), chunk_t, chunk_c)
        rows.append(split.close())
    rows.append(split.close(final=True))
    b = np.concatenate([r.elements for r in rows])
    covered = (t[-1] - t[0]) / NS
    assert a.elements[:, SCHEDULED].sum() == pytest.approx(covered)
    assert b[:, SCHEDULED].sum(axis=0) == pytest.approx(a.elements[:, SCHEDULED].sum(axis=0))
    width = (a.end - a.start) / NS
    assert (a.elements[:, SCHEDULED].sum(axis=1) <= width + 1e-6).all()


def test_a_window_waits_for_an_open_stop_to_be_classified() -> None:
    e = OeeEngine([MachineOeeConfig(CODES, stale_after_s=1e6, microstop_s=300.0)], FixedWindows(3600 * NS))
    states(e, [0, 3500, 3650], [1, 2, 2])  # idle since 3500 s: 150 s so far, not classifiable yet
    assert len(e.close()) == 0, "the first hour holds part of an idle episode that may still become a micro-stop"
    states(e, [3700], [1])  # the idle episode ends after 200 s: a micro-stop, 100 s of it in each hour
    rows = e.close()
    assert rows.key.tolist() == [0] and rows.elements[0, C_MICROSTOP] == 100
    states(e, [3800, 4200, 7200], [2, 1, 1])  # idle 400 s: delay, classified as soon as it reaches 300 s
    rows = e.close(final=True)
    assert rows.key.tolist() == [3600 * NS]
    assert rows.elements[0, C_MICROSTOP] == 100 and rows.elements[0, C_DELAY] == 400


def test_a_long_down_episode_is_one_failure_however_it_is_fed() -> None:
    for split in ([0, 100, 200, 400, 500], [0, 100], [0]):
        e = OeeEngine([MachineOeeConfig(CODES, stale_after_s=1e6, microstop_s=250.0)], FixedWindows(60 * NS))
        t, c = [0, 100, 200, 300, 400, 500, 600], [3, 3, 3, 3, 1, 3, 1]
        bounds = [*split[1:], len(t)] if len(split) > 1 else [len(t)]
        lo = 0
        for hi in [b // 100 for b in bounds[:-1]] + [len(t)]:
            states(e, t[lo:hi], c[lo:hi])
            lo = hi
        rows = e.close(final=True)
        assert rows.elements[:, C_FAILURES].sum() == 1 and rows.elements[:, C_DOWN].sum() == 400
        assert rows.elements[:, C_MICROSTOP].sum() == 100  # the second down episode: 100 s
        assert rows.elements[rows.key == 0, C_FAILURES][0] == 1  # counted where it began
