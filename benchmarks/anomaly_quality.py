"""Detection quality of the default anomaly settings, event by event.

Synthetic suite (seeded): baselines noisy (N(0, 1)), periodic (2 sin(2 pi t / 600) + noise) and
trending (+1.5 over the series, + noise); on each, series with one labelled anomaly of each kind
- spike (+8 for one sample), level shift (+4 for 300 samples), drift (+0.03 per sample for 300
samples), stuck (frozen for 150 samples), variance (noise x4 for 300 samples) - and clean series
with none. An anomaly is caught when an alarm starts inside its window or up to TOLERANCE samples
after it; every other alarm start is a false alarm. Reported per kind: recall, precision, F1,
false alarms per 10,000 samples, mean detection delay (samples from the window start).

Real data: the annotated change-point series that the ``river`` wheel ships (Turing change point
detection benchmark, river.drift.datasets), loaded from the installed package at run time; a
change point counts as caught when an alarm starts within TOLERANCE samples after it.

    python benchmarks/anomaly_quality.py [--series 40] [--seed 7] [--row-by-row]

``--row-by-row`` scores every row through each detector's own float64 ``step`` instead of the
default set's fused path for clean rows (analytics/detectors/fused.py), for comparison.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analytics.anomaly import AnomalyScorer, AnomalySettings
from analytics.detectors import DetectorSettings

#: Settings for the run: the defaults, or with ``--row-by-row`` the defaults without the fused path.
SETTINGS = AnomalySettings()

LENGTH = 3000
TOLERANCE = 50
KINDS = ("spike", "level_shift", "drift", "stuck", "variance")
BASELINES = ("noisy", "periodic", "trending")


@dataclass
class Labelled:
    kind: str
    baseline: str
    start: int  # first anomalous sample; -1 for clean series
    end: int  # one past the last


def baseline(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(LENGTH)
    noise = rng.normal(0.0, 1.0, LENGTH)
    if kind == "periodic":
        return 10.0 + 2.0 * np.sin(2 * np.pi * t / 600 + rng.uniform(0, 6.3)) + noise
    if kind == "trending":
        return 10.0 + 1.5 * t / LENGTH + noise
    return 10.0 + noise


def inject(x: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[int, int]:
    start = int(rng.integers(1000, 2500))
    if kind == "spike":
        x[start] += 8.0 * rng.choice([-1.0, 1.0])
        return start, start + 1
    end = start + (150 if kind == "stuck" else 300)
    if kind == "level_shift":
        x[start:end] += 4.0 * rng.choice([-1.0, 1.0])
    elif kind == "drift":
        x[start:end] += 0.03 * np.arange(end - start) * rng.choice([-1.0, 1.0])
    elif kind == "stuck":
        x[start:end] = x[start - 1]
    elif kind == "variance":
        x[start:end] += rng.normal(0.0, 3.0 * np.sqrt(1.67), end - start)  # total sd about 4
    return start, end


def suite(per_combo: int, seed: int) -> tuple[np.ndarray, list[Labelled]]:
    rng = np.random.default_rng(seed)
    columns, labels = [], []
    for base in BASELINES:
        for kind in (*KINDS, "clean"):
            for _ in range(per_combo):
                x = baseline(base, rng)
                start, end = (-1, -1) if kind == "clean" else inject(x, kind, rng)
                columns.append(x)
                labels.append(Labelled(kind, base, start, end))
    return np.column_stack(columns), labels


def alarm_starts(block: np.ndarray) -> list[list[int]]:
    ts = np.repeat(np.arange(block.shape[0], dtype=np.int64)[:, None], block.shape[1], axis=1)
    _, _, events = AnomalyScorer(block.shape[1], SETTINGS).update(block, ts)
    starts: list[list[int]] = [[] for _ in range(block.shape[1])]
    for e in events:
        if e.new:
            starts[e.signal].append(int(e.start_ns))
    return starts


def caught_in(label: Labelled, starts: list[int]) -> bool:
    return any(label.start <= s < label.end + TOLERANCE for s in starts)


def score(labels: list[Labelled], starts: list[list[int]], group: str) -> dict[str, float]:
    rows = [i for i, lab in enumerate(labels) if lab.kind == group]
    caught, false_alarms, delays = 0, 0, []
    for i in rows:
        lab = labels[i]
        hits = [s for s in starts[i] if lab.start >= 0 and lab.start <= s < lab.end + TOLERANCE]
        false_alarms += len(starts[i]) - len(hits)
        if hits:
            caught += 1
            delays.append(min(hits) - lab.start)
    n_anomalies = len(rows) if group != "clean" else 0
    recall = caught / n_anomalies if n_anomalies else float("nan")
    precision = caught / (caught + false_alarms) if caught + false_alarms else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if n_anomalies and precision + recall > 0 else float("nan")
    return {
        "series": len(rows),
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "fa_per_10k": false_alarms / (len(rows) * LENGTH) * 10_000,
        "delay": float(np.mean(delays)) if delays else float("nan"),
    }


def river_change_points() -> list[tuple[str, str, np.ndarray, list[int]]]:
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


def fmt(v: float, spec: str = ".2f") -> str:
    return "-" if np.isnan(v) else format(v, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40, help="series per baseline and kind")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--row-by-row", action="store_true", help="no fused path: every row detector by detector")
    args = parser.parse_args()
    if args.row_by_row:
        SETTINGS.detectors = DetectorSettings(fused=False)
    block, labels = suite(args.series, args.seed)
    starts = alarm_starts(block)
    print(
        f"synthetic suite: {block.shape[1]} series x {LENGTH} samples, seed {args.seed}, "
        f"tolerance {TOLERANCE} samples, default settings"
        f"{', row by row (no fused path)' if args.row_by_row else ''}\n"
    )
    print("| kind | series | recall | precision | F1 | false alarms / 10k samples | mean delay (samples) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for group in (*KINDS, "clean"):
        s = score(labels, starts, group)
        cells = [f"{s['series']:.0f}", fmt(s["recall"]), fmt(s["precision"]), fmt(s["f1"])]
        cells += [fmt(s["fa_per_10k"]), fmt(s["delay"], ".1f")]
        print(f"| {group} | " + " | ".join(cells) + " |")
    anomalous = [i for i, lab in enumerate(labels) if lab.kind != "clean"]
    caught = sum(caught_in(labels[i], starts[i]) for i in anomalous)
    clean = score(labels, starts, "clean")
    print(
        f"\nall kinds: event recall {caught / len(anomalous):.3f} (goal >= 0.9); "
        f"clean series: {clean['fa_per_10k']:.2f} false alarms per 10,000 samples (goal <= 1)"
    )
    for base in BASELINES:
        idx = [i for i, lab in enumerate(labels) if lab.baseline == base]
        rec = np.mean([caught_in(labels[i], starts[i]) for i in idx if labels[i].kind != "clean"])
        print(f"  baseline {base:9s} recall {rec:.3f}")
    real = river_change_points()
    if not real:
        print("\nriver is not installed: pip install river  (for the real-data table)")
        return
    print("\nriver change-point datasets (TCPD, bundled in the river wheel, BSD-3-Clause package):\n")
    print("| dataset | column | samples | change points | caught | alarms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, column, values, points in real:
        v = values.copy()
        v[~np.isfinite(v)] = np.nan
        st = alarm_starts(v[:, None])[0]
        hit = sum(any(p <= s < p + TOLERANCE for s in st) for p in points)
        print(f"| {name} | {column} | {len(values)} | {len(points)} | {hit} | {len(st)} |")


if __name__ == "__main__":
    main()
