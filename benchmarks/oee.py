"""OEE engine speed: replay 10,000,000 state and counter readings over 1,000 machines, one core.

The readings are a plant's: each machine reports its counters (total, reject) every second and
its state when it changes and every 10 s (a heartbeat), walking through running, idle, down,
setup and planned-stop episodes (some shorter than the 120 s micro-stop threshold). They are
fed to one engine (1-hour windows, two shifts with breaks, Asia/Shanghai) in blocks of one
tick each, as the agent feeds them, closing windows after every block. The readings are
generated before the clock starts. Prints readings per second (goal >= 5,000,000/s) and, in the
same run, the rate of ``np.multiply`` over the readings' values, with the ratio of the two.

    python benchmarks/oee.py [--readings 10000000] [--machines 1000] [--block-s 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.analytics.oee import REJECT_KIND, TOTAL_KIND, MachineOeeConfig, OeeEngine
from edge_agent.analytics.schedule import Break, Shift, WorkSchedule
from edge_agent.analytics.windows import NS, FixedWindows

CODES = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}
EPISODE_S = {1: (120, 900), 2: (20, 300), 3: (60, 600), 4: (300, 900), 5: (600, 1800)}
START = int(dt.datetime(2026, 3, 2, 0, tzinfo=dt.UTC).timestamp()) * NS


def plant_readings(
    machines: int, seconds: int, rng: np.random.Generator
) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Machine, time (ns), kind (-1 state, else counter kind) and value of every reading, by time."""
    cols: list[tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]] = []
    second = np.arange(seconds, dtype=np.int64)
    for m in range(machines):
        # Episodes: a state and a length each, long enough to cover the period.
        codes = rng.choice([1, 1, 2, 3, 4, 5, 1, 2], size=seconds // 60 + 10)
        lengths = np.array([rng.integers(*EPISODE_S[int(c)]) for c in codes])
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        state_now = codes[np.searchsorted(starts, second, side="right") - 1]
        changed = np.ones(seconds, bool)
        changed[1:] = state_now[1:] != state_now[:-1]
        state_at = np.flatnonzero(changed | (second % 10 == 0))
        running = state_now == 1
        made = np.cumsum(running & (rng.random(seconds) < 0.5))
        rejects = np.cumsum(running & (rng.random(seconds) < 0.01))
        jitter = rng.integers(0, NS // 2, size=seconds)
        t = START + second * NS + jitter
        mm = np.full(seconds, m, np.intp)
        cols.append((mm[state_at], t[state_at], np.full(state_at.shape[0], -1), state_now[state_at].astype(float)))
        cols.append((mm, t + 1000, np.full(seconds, TOTAL_KIND), (made % 65536).astype(float)))
        cols.append((mm, t + 2000, np.full(seconds, REJECT_KIND), rejects.astype(float)))
    machine, ts, kind, value = (np.concatenate(c) for c in zip(*cols, strict=True))
    order = np.argsort(ts, kind="stable")
    return machine[order], ts[order], kind[order], value[order]


def engine_for(machines: int) -> OeeEngine:
    cfg = MachineOeeConfig(
        CODES,
        ideal_cycle_s=1.8,
        stale_after_s=60.0,
        microstop_s=120.0,
        counters={TOTAL_KIND: 65536.0, REJECT_KIND: 0.0},
    )
    schedule = WorkSchedule(
        [Shift("day", dt.time(8), dt.time(20)), Shift("night", dt.time(20), dt.time(8))],
        [Break(dt.time(12), dt.time(12, 30)), Break(dt.time(0), dt.time(0, 30))],
        "Asia/Shanghai",
    )
    return OeeEngine([cfg] * machines, FixedWindows(3600 * NS, 0, "1h"), schedule)


def replay(
    engine: OeeEngine,
    blocks: list[tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]],
) -> int:
    """Feed every block as the agent does; the number of window rows closed."""
    rows = 0
    for m, t, k, v in blocks:
        state = k < 0
        engine.observe(m, t)
        engine.add_states(m[state], t[state], v[state])
        engine.add_counters(m[~state], k[~state].astype(np.intp), t[~state], v[~state])
        engine.advance(int(t[-1]))
        rows += len(engine.close())
    rows += len(engine.close(final=True))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--machines", type=int, default=1000)
    parser.add_argument("--block-s", type=float, default=10.0, help="seconds of plant data per tick")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    # About 2.05 readings per machine-second (two counters, states on change and every 10 s).
    seconds = max(int(args.readings / args.machines / 2.0) + 30, 60)
    machine, ts, kind, value = plant_readings(args.machines, seconds, rng)
    n = min(args.readings, machine.shape[0])
    machine, ts, kind, value = machine[:n], ts[:n], kind[:n], value[:n]
    edges = np.searchsorted(ts, np.arange(ts[0], ts[-1] + 1, int(args.block_s * NS)))[1:]
    blocks = [
        (m, t, k, v)
        for m, t, k, v in zip(
            np.split(machine, edges), np.split(ts, edges), np.split(kind, edges), np.split(value, edges), strict=True
        )
        if m.shape[0]
    ]
    states = int((kind < 0).sum())
    print(
        f"{n:,} readings ({states:,} state, {n - states:,} counter) from {args.machines:,} machines over "
        f"{(ts[-1] - ts[0]) / NS / 3600:.1f} h, {len(blocks):,} blocks of {args.block_s:g} s"
    )
    times = []
    for r in range(args.repeat):
        engine = engine_for(args.machines)
        began = time.perf_counter()
        rows = replay(engine, blocks)
        times.append(time.perf_counter() - began)
        print(f"  run {r + 1}: {times[-1]:.2f} s, {n / times[-1]:,.0f} readings/s, {rows:,} window rows")
    best, median = min(times), statistics.median(times)
    reference = multiply_rate(value)
    print(f"OEE engine: {n / median:,.0f} readings/s (median of {args.repeat}; best {n / best:,.0f}); goal 5,000,000")
    print(
        f"reference np.multiply on the readings' values: {reference:,.0f} values/s; "
        f"ratio engine / reference {n / median / reference:.5f} (this box varies: the ratio travels)"
    )


def multiply_rate(values: NDArray[np.float64], repeat: int = 5) -> float:
    """Elements per second of ``np.multiply(values, 2.0, out=...)``: a memory-bound yardstick."""
    out = np.empty_like(values)
    np.multiply(values, 2.0, out=out)
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        np.multiply(values, 2.0, out=out)
        runs.append(time.perf_counter() - began)
    return values.shape[0] / statistics.median(runs)


if __name__ == "__main__":
    main()
