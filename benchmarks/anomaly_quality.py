"""Detection quality of the default anomaly settings, event by event, on plant-shaped signals.

Synthetic suite (seeded). Baselines, each with unit noise (sd 1) unless said:

* ``white``: N(0, 1);
* ``ar50`` ... ``ar95``: AR(1) with phi 0.5, 0.8, 0.9, 0.95 and unit level sd (a temperature or
  pressure loop; the step noise is ``sqrt(2 (1 - phi))`` of the level noise);
* ``sine2_600``, ``sine5_600``, ``sine5_150``, ``sine3_1000``: a cycle of amplitude 2, 5 or 3 sd
  over 600, 150 or 1000 samples, plus noise (several periods before any anomaly);
* ``trend``: +3 sd over the series;
* ``regimes``: a machine that switches between two operating levels 6 sd apart (noise 1 and 1.5)
  every 300-800 samples; the scorer is told the machine state, as the agent does;
* ``repeats``: a device that updates 5 times slower than it is polled (each value 5 times);
* ``gaps``: the AR(1) loop of ``ar80`` from a device that misses 30 % of its replies at random
  (NaN; the anomaly's first sample is always there).

On each, series with one labelled anomaly of each kind, starting between samples 1,500 and 3,400:
spike (8 sd for one sample), level shift (4 sd for 300 samples), drift (0.03 sd per sample for 300
samples), stuck (frozen for 150 samples), variance (noise sd 4 for 300 samples); and clean series
with none. Sizes are in the noise sd where the anomaly starts (1.5 in a running machine's state).
An anomaly is caught when an alarm starts inside its window or up to TOLERANCE samples
after it; every other alarm start is a false alarm. Goals: recall >= 0.9 and <= 1 false alarm
per 10,000 samples on every baseline.

Real data: the annotated change-point series that the ``river`` wheel ships (Turing change point
detection benchmark, river.drift.datasets), when river is installed; a change point counts as
caught when an alarm starts within TOLERANCE samples after it.

NAB: ``--nab DIR`` also runs the Numenta Anomaly Benchmark kit in DIR (its ``score.sh``, with
NAB's own data and scorer; nothing of it is copied here) on this checkout's ``edge-agent``.

Segments (``segments.py``): regimes of 300 to 3,000 samples, row-level precision, recall and F1
of the alarm state.

    python benchmarks/anomaly_quality.py [--series 20] [--seed 7] [--segments 5] [--nab ../shared/nab]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import segments  # noqa: E402

from edge_agent.analytics.anomaly import AnomalyScorer, AnomalySettings  # noqa: E402

LENGTH = 4000
TOLERANCE = 50
KINDS = ("spike", "level_shift", "drift", "stuck", "variance")
BASELINES = (
    "white",
    "ar50",
    "ar80",
    "ar90",
    "ar95",
    "sine2_600",
    "sine5_600",
    "sine5_150",
    "sine3_1000",
    "trend",
    "regimes",
    "repeats",
    "gaps",
)
#: Share of samples missing in the ``gaps`` baseline.
GAP_SHARE = 0.3
F64 = NDArray[np.float64]


@dataclass
class Labelled:
    kind: str
    baseline: str
    start: int  # first anomalous sample; -1 for clean series
    end: int  # one past the last
    #: Machine state per sample (regimes only).
    state: NDArray[np.int64] | None = None


def baseline(kind: str, rng: np.random.Generator) -> tuple[F64, NDArray[np.int64] | None]:
    """One clean series of ``kind``, and its machine state (None: the machine has one state)."""
    t = np.arange(LENGTH)
    e = rng.normal(0.0, 1.0, LENGTH)
    if kind.startswith("ar"):
        return segments.loop(int(kind[2:]) / 100, e), None
    if kind.startswith("sine"):
        amplitude, period = (float(v) for v in kind[4:].split("_"))
        return 10.0 + amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3)) + e, None
    if kind == "trend":
        return 10.0 + 3.0 * t / LENGTH + e, None
    if kind == "regimes":
        level = np.zeros(LENGTH)
        i, current = 0, 0.0
        while i < LENGTH:
            n = int(rng.integers(300, 800))
            level[i : i + n] = current
            current, i = 6.0 - current, i + n
        running = level > 0
        return 10.0 + level + (1.0 + 0.5 * running) * e, running.astype(np.int64)
    if kind == "repeats":
        return np.repeat(10.0 + e[::5], 5)[:LENGTH], None
    return 10.0 + e, None


def inject(x: F64, kind: str, rng: np.random.Generator, state: NDArray[np.int64] | None) -> tuple[int, int]:
    """An anomaly of ``kind`` in ``x``, sized in the noise sd where it starts; its window."""
    start = int(rng.integers(1500, 3400))
    sign = rng.choice([-1.0, 1.0]) * (1.5 if state is not None and state[start] else 1.0)  # times the sd
    if kind == "spike":
        x[start] += 8.0 * sign
        return start, start + 1
    end = start + (150 if kind == "stuck" else 300)
    if kind == "level_shift":
        x[start:end] += 4.0 * sign
    elif kind == "drift":
        x[start:end] += 0.03 * np.arange(end - start) * sign
    elif kind == "stuck":
        x[start:end] = x[start - 1]
    elif kind == "variance":
        x[start:end] += rng.normal(0.0, np.sqrt(15.0) * abs(sign), end - start)  # total sd 4
    return start, end


def suite(per_combo: int, seed: int) -> tuple[F64, list[Labelled]]:
    rng = np.random.default_rng(seed)
    columns, labels = [], []
    for base in BASELINES:
        for kind in (*KINDS, "clean"):
            for _ in range(per_combo):
                x, state = baseline("ar80" if base == "gaps" else base, rng)  # gaps: holes cut below
                start, end = (-1, -1) if kind == "clean" else inject(x, kind, rng, state)
                if base == "gaps":  # a device that misses replies: NaN, but never the anomaly's start
                    missing = rng.random(LENGTH) < GAP_SHARE
                    if start >= 0:
                        missing[start] = False
                    x[missing] = np.nan
                columns.append(x)
                labels.append(Labelled(kind, base, start, end, state))
    return np.column_stack(columns), labels


def alarm_starts(block: F64, labels: list[Labelled], settings: AnomalySettings | None = None) -> list[list[int]]:
    """Alarm start rows per series: one scorer for the block, one per series that has states."""
    ts = np.repeat(np.arange(block.shape[0], dtype=np.int64)[:, None] * 10**9, block.shape[1], axis=1)
    starts: list[list[int]] = [[] for _ in range(block.shape[1])]
    plain = [j for j, lab in enumerate(labels) if lab.state is None]
    _, _, events = AnomalyScorer(len(plain), settings).update(block[:, plain].copy(), ts[:, plain])
    for e in events:
        if e.new:
            starts[plain[e.signal]].append(int(e.start_ns // 10**9))
    for j, lab in enumerate(labels):
        if lab.state is None:
            continue
        scorer = AnomalyScorer(1, settings)
        edges = [0, *(np.flatnonzero(np.diff(lab.state)) + 1).tolist(), block.shape[0]]
        for a, b in itertools.pairwise(edges):
            scorer.switch(np.array([0]), int(lab.state[a]), int(ts[a, j]))
            _, _, part = scorer.update(block[a:b, j : j + 1].copy(), ts[a:b, j : j + 1])
            starts[j] += [int(e.start_ns // 10**9) for e in part if e.new]
    return starts


def caught(label: Labelled, starts: list[int]) -> bool:
    return any(label.start <= s < label.end + TOLERANCE for s in starts)


def false_alarms(label: Labelled, starts: list[int]) -> int:
    return sum(not (label.start >= 0 and label.start <= s < label.end + TOLERANCE) for s in starts)


def fmt(v: float, spec: str = ".2f") -> str:
    return "-" if np.isnan(v) else format(v, spec)


def print_suite(labels: list[Labelled], starts: list[list[int]]) -> bool:
    """The recall per baseline and kind and the false alarms per baseline; True when every goal holds."""
    print("| baseline | " + " | ".join(KINDS) + " | recall | false alarms / 10k samples |")
    print("| --- " * (len(KINDS) + 3) + "|")
    ok = True
    for base in BASELINES:
        mine = [(lab, starts[j]) for j, lab in enumerate(labels) if lab.baseline == base]
        cells = []
        for kind in KINDS:
            hits = [caught(lab, s) for lab, s in mine if lab.kind == kind]
            cells.append(f"{np.mean(hits):.2f}")
        recall = float(np.mean([caught(lab, s) for lab, s in mine if lab.kind != "clean"]))
        fa = sum(false_alarms(lab, s) for lab, s in mine) / (len(mine) * LENGTH) * 10_000
        ok &= recall >= 0.9 and fa <= 1.0
        print(f"| {base} | " + " | ".join(cells) + f" | {recall:.2f} | {fa:.2f} |")
    delays = [
        min(s for s in st if lab.start <= s < lab.end + TOLERANCE) - lab.start
        for lab, st in zip(labels, starts, strict=True)
        if lab.kind != "clean" and caught(lab, st)
    ]
    print(f"\nmean detection delay {np.mean(delays):.1f} samples from the anomaly's start")
    return ok


def river_change_points() -> list[tuple[str, str, F64, list[int]]]:
    """(dataset, column, values, change points) from river's bundled change-point datasets."""
    try:
        from river.drift import datasets  # noqa: PLC0415
    except ImportError:
        return []
    out = []
    bundled = (
        datasets.RunLog,
        datasets.Occupancy,
        datasets.Apple,
        datasets.UKCoalEmploy,
        datasets.BrentSpotPrice,
        datasets.Bitcoin,
        datasets.AirlinePassengers,
    )
    for cls in bundled:
        ds = cls()
        rows = [y if isinstance(y, dict) else {"value": y} for _, y in ds]  # the values are the targets
        points = sorted({p for annotator in ds.annotations.values() for p in annotator})
        for column in rows[0]:
            if not all(isinstance(r[column], int | float) or r[column] is None for r in rows):
                continue  # timestamps and labels are not signals
            values = np.array([np.nan if r[column] is None else float(r[column]) for r in rows])
            if np.isfinite(values).sum() > 50:
                out.append((cls.__name__, column, values, points))
    return out


def print_river() -> None:
    real = river_change_points()
    if not real:
        print("\nriver is not installed (pip install river) : no real change-point table")
        return
    print("\nriver change-point datasets (TCPD, bundled in the river wheel):\n")
    print("| dataset | column | samples | change points | caught | alarms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, column, values, points in real:
        v = values.copy()
        v[~np.isfinite(v)] = np.nan
        st = alarm_starts(v[:, None], [Labelled("real", name, -1, -1)])[0]
        hit = sum(any(p <= s < p + TOLERANCE for s in st) for p in points)
        print(f"| {name} | {column} | {len(values)} | {len(points)} | {hit} | {len(st)} |")


def run_nab(kit: Path) -> None:
    """The NAB kit's own runner and scorer on this checkout's agent (about a minute)."""
    agent = shutil.which("edge-agent", path=str(Path(sys.executable).parent)) or "edge-agent"
    print(f"\nNAB kit {kit}: {kit / 'score.sh'} {agent}\n", flush=True)
    subprocess.run([str(kit / "score.sh"), agent, "--name", "edge-agent"], cwd=kit, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20, help="series per baseline and kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--nab", type=Path, help="the NAB kit's folder (runs its score.sh)")
    parser.add_argument("--segments", type=int, default=5, help="machines per baseline and kind in the segment suite")
    args = parser.parse_args()
    block, labels = suite(args.series, args.seed)
    print(
        f"synthetic suite: {block.shape[1]} series x {LENGTH} samples, {args.series} per baseline and kind, "
        f"seed {args.seed}, tolerance {TOLERANCE} samples, default settings\n"
    )
    met = print_suite(labels, alarm_starts(block, labels))
    print(f"goals (recall >= 0.9, <= 1 false alarm / 10k on every baseline): {'met' if met else 'NOT met'}")
    print()
    segments.run(args.segments, args.seed)
    segments.plant_files()
    print_river()
    if args.nab is not None:
        run_nab(args.nab.resolve())


if __name__ == "__main__":
    main()
