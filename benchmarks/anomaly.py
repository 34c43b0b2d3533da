"""Anomaly scoring speed: the default detector set against a memory-bound reference, one run.

Scores a time-major [1000, 10000] float64 block (10,000 signals, 1,000 samples each) with the
whole scorer (alarms, their conditions and the machine score over machines of 8 signals) on the
default detector set (surprise, deviation, shift, variance, stuck on the forecast model; range
has no limits here) and, in the same run, times ``np.multiply(a, 2.0, out=b)`` on the same block.
Output buffers are reused so neither pays page faults. One core (numpy runs these
single-threaded). Prints tag-samples per second for both and the ratio; goal >= 100,000,000 tag-samples/s for the set.

Also, for information, the same block made more like a plant's: 30% of the signals come from
devices that update every 5th poll (each value repeated 5 times) and 10% miss every other
sample (NaN). And the earlier default set (level, spike, cusum, stuck-free) for comparison.

    python benchmarks/anomaly.py [--samples 1000] [--signals 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.analytics.anomaly import AnomalyScorer
from edge_agent.analytics.detectors import DetectorSet, DetectorSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--signals", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    shape = (args.samples, args.signals)
    block = rng.normal(50.0, 1.0, size=shape) + np.sin(np.arange(args.samples) / 50.0)[:, None]
    plant = plant_like(block, rng)
    out, ref_out = np.zeros(shape), np.zeros(shape)
    machines = np.arange(args.signals) // 8
    ts = np.repeat(np.arange(args.samples, dtype=np.int64)[:, None] * 10**9, args.signals, axis=1)
    scorer = AnomalyScorer(args.signals, machines=machines)
    detectors, plant_detectors = DetectorSet(args.signals), DetectorSet(args.signals)
    row_by_row = DetectorSet(args.signals, DetectorSettings(("level", "spike", "cusum")))
    scorer.update(block, ts, out=out)  # warm-up: every signal past its grace period
    detectors.update(block, out=out)
    plant_detectors.update(plant, out=out)
    row_by_row.update(block, out=out)
    ours, alone, ref, plant_times, row_times = [], [], [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        scorer.update(block, ts, out=out)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        detectors.update(block, out=out)
        alone.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.multiply(block, 2.0, out=ref_out)
        ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plant_detectors.update(plant, out=out)
        plant_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        row_by_row.update(block, out=out)
        row_times.append(time.perf_counter() - t0)
    n = block.size
    med_ours, med_ref, med_plant, med_rows, med_alone = (
        statistics.median(t) for t in (ours, ref, plant_times, row_times, alone)
    )
    names = ", ".join(detectors.names)
    print(f"block [{args.samples}, {args.signals}] float64, {args.repeat} runs, medians; detectors: {names}")
    print(
        f"default detector set      {n / med_ours:14,.0f} tag-samples/s  ({med_ours * 1e3:7.1f} ms)"
        "  (the whole scorer: detectors, alarms, conditions, machines of 8)"
    )
    print(f"detectors alone           {n / med_alone:14,.0f} tag-samples/s  ({med_alone * 1e3:7.1f} ms)")
    print(f"reference np.multiply     {n / med_ref:14,.0f} tag-samples/s  ({med_ref * 1e3:7.1f} ms)")
    print(f"ratio set / reference: {med_ref / med_ours:.3f}   goal: set >= 100,000,000 tag-samples/s")
    print(f"best run of the set        {n / min(ours):14,.0f} tag-samples/s  (this box is shared: runs vary)")
    print(f"plant-like block (repeats, gaps)  {n / med_plant:14,.0f} tag-samples/s  ({med_plant * 1e3:7.1f} ms)")
    print(f"earlier set (level, spike, cusum) {n / med_rows:14,.0f} tag-samples/s  ({med_rows * 1e3:7.1f} ms)")


def plant_like(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """30% of the signals repeat each value 5 times, 10% miss every other sample."""
    plant = block.copy()
    signals = rng.permutation(block.shape[1])
    slow, gappy = signals[: block.shape[1] * 3 // 10], signals[block.shape[1] * 3 // 10 : block.shape[1] * 4 // 10]
    held = (np.arange(block.shape[0]) // 5) * 5
    plant[:, slow] = block[held][:, slow]
    plant[1::2, gappy] = np.nan
    return plant


if __name__ == "__main__":
    main()
