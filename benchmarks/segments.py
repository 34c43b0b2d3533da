"""Segment anomalies: regimes that last 300 to 3,000 samples, and whether the alarm lasts as long.

Used by ``anomaly_quality.py --segments``. Baselines (unit noise, as in the event suite):
``ar80`` and ``ar95`` (AR(1) loops, unit level sd), ``sine5_600`` (a cycle of 5 sd over 600
samples plus noise) and ``repeats`` (a device that updates 5 times slower than it is polled: a
step-wise signal). Every series has 8,000 samples; its segment starts between samples 2,000 and
4,000 and lasts 300 to 3,000 samples:

* ``level``: a level shift of 1 to 4 sd;
* ``drift``: a ramp from 0 to 2 to 4 sd over the segment;
* ``variance``: the noise sd times 2 to 3;
* ``machine``: 3 of a machine's 8 signals shifted by 1.5 sd each, together.

Signals are scored as machines of 8 (as the agent scores a device's signals). For single-signal
kinds the signal's own alarm state is compared with the segment, row by row; for ``machine`` the
machine's incident state (its score in alarm, or any of its signals). Precision counts every
alarm row of the series outside the segment as false. Also: event recall (an alarm starts
inside the segment or up to 50 samples after it) and false alarm starts per 10,000 samples of
clean series (machines without a segment). Goals: row-level F1 >= 0.8 on every kind, event
recall >= 0.9, <= 1 false alarm per 10,000 clean samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.anomaly import AnomalyScorer, AnomalySettings

LENGTH = 8000
TOLERANCE = 50
MACHINE = 8
BASELINES = ("ar80", "ar95", "sine5_600", "repeats")
KINDS = ("level", "drift", "variance", "machine", "clean")
F64 = NDArray[np.float64]


@dataclass
class Machine:
    baseline: str
    kind: str
    start: int
    end: int
    #: Signals of the machine carrying the segment (single kinds: one per signal, see ``starts``).
    starts: list[int]
    ends: list[int]


def loop(phi: float, e: F64) -> F64:
    """An AR(1) loop of unit level sd around 10 driven by unit noise ``e``."""
    x = np.empty(e.shape[0])
    x[0] = e[0]
    innovation = np.sqrt(1 - phi * phi) * e
    for i in range(1, e.shape[0]):
        x[i] = phi * x[i - 1] + innovation[i]
    return 10.0 + x


def clean(kind: str, rng: np.random.Generator) -> F64:
    e = rng.normal(0.0, 1.0, LENGTH)
    if kind.startswith("ar"):
        return loop(int(kind[2:]) / 100, e)
    if kind.startswith("sine"):
        amplitude, period = (float(v) for v in kind[4:].split("_"))
        t = np.arange(LENGTH)
        return 10.0 + amplitude * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3)) + e
    return np.repeat(10.0 + e[::5], 5)[:LENGTH]


def segment(x: F64, kind: str, start: int, end: int, rng: np.random.Generator, size: float | None = None) -> None:
    n = end - start
    sign = rng.choice([-1.0, 1.0])
    if kind in ("level", "machine"):
        x[start:end] += sign * (rng.uniform(1.0, 4.0) if size is None else size)
    elif kind == "drift":
        x[start:end] += sign * rng.uniform(2.0, 4.0) * np.arange(1, n + 1) / n
    elif kind == "variance":
        extra = np.sqrt(rng.uniform(2.0, 3.0) ** 2 - 1.0)
        x[start:end] += rng.normal(0.0, extra, n)


def suite(machines_per: int, seed: int) -> tuple[F64, list[Machine]]:
    """Columns in machines of 8; ``machines_per`` machines per baseline and kind."""
    rng = np.random.default_rng(seed)
    columns: list[F64] = []
    out: list[Machine] = []
    for base in BASELINES:
        for kind in KINDS:
            for _ in range(machines_per):
                signals = [clean(base, rng) for _ in range(MACHINE)]
                starts, ends = [-1] * MACHINE, [-1] * MACHINE
                start = int(rng.integers(2000, 4000))
                end = start + int(rng.integers(300, 3001))
                if kind == "machine":
                    for j in rng.choice(MACHINE, 3, replace=False).tolist():
                        segment(signals[j], kind, start, end, rng, 1.5 * float(rng.choice([-1.0, 1.0])))
                elif kind != "clean":
                    for j in range(MACHINE):
                        s = int(rng.integers(2000, 4000))
                        e = s + int(rng.integers(300, 3001))
                        segment(signals[j], kind, s, e, rng)
                        starts[j], ends[j] = s, e
                columns += signals
                out.append(Machine(base, kind, start if kind == "machine" else -1, end, starts, ends))
    return np.column_stack(columns), out


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    events: int = 0
    caught: int = 0

    def add(self, flags: NDArray[np.bool_], start: int, end: int, onsets: NDArray[np.intp]) -> None:
        inside = np.zeros(flags.shape[0], bool)
        inside[start:end] = True
        self.tp += int((flags & inside).sum())
        self.fp += int((flags & ~inside).sum())
        self.fn += int((~flags & inside).sum())
        self.events += 1
        self.caught += bool(((onsets >= start) & (onsets < end + TOLERANCE)).any())

    def f1(self) -> tuple[float, float, float]:
        p = self.tp / max(self.tp + self.fp, 1)
        r = self.tp / max(self.tp + self.fn, 1)
        return p, r, 2 * p * r / max(p + r, 1e-12)


def onsets(flags: NDArray[np.uint8]) -> NDArray[np.intp]:
    f = flags.astype(np.int8)
    return np.flatnonzero(np.diff(np.r_[0, f]) == 1)


def run(machines_per: int = 5, seed: int = 7, settings: AnomalySettings | None = None) -> bool:
    block, machines = suite(machines_per, seed)
    n = block.shape[1]
    ts = np.repeat(np.arange(LENGTH, dtype=np.int64)[:, None] * 10**9, n, axis=1)
    scorer = AnomalyScorer(n, settings, machines=np.arange(n) // MACHINE)
    _, flags, _ = scorer.update(block, ts)
    incident = scorer.last_machines.incident
    print(
        f"segment suite: {len(machines)} machines of {MACHINE} signals x {LENGTH} samples, "
        f"{machines_per} machines per baseline and kind, seed {seed}, default settings\n"
    )
    print("| baseline | kind | precision | recall | F1 | event recall | false alarms / 10k clean samples |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    ok = True
    for base in BASELINES:
        for kind in KINDS:
            counts, false_starts, clean_samples = Counts(), 0, 0
            for m, mach in enumerate(machines):
                if mach.baseline != base or mach.kind != kind:
                    continue
                cols = range(m * MACHINE, (m + 1) * MACHINE)
                if kind == "machine":
                    counts.add(incident[:, m].astype(bool), mach.start, mach.end, onsets(incident[:, m]))
                elif kind == "clean":
                    false_starts += sum(onsets(flags[:, c]).shape[0] for c in cols)
                    false_starts += onsets(scorer.last_machines.incident[:, m]).shape[0]
                    clean_samples += LENGTH * MACHINE
                else:
                    for j, c in enumerate(cols):
                        counts.add(flags[:, c].astype(bool), mach.starts[j], mach.ends[j], onsets(flags[:, c]))
            if kind == "clean":
                fa = false_starts / clean_samples * 10_000
                ok &= fa <= 1.0
                print(f"| {base} | clean | - | - | - | - | {fa:.2f} |")
                continue
            p, r, f1 = counts.f1()
            recall = counts.caught / max(counts.events, 1)
            ok &= f1 >= 0.8 and recall >= 0.9
            print(f"| {base} | {kind} | {p:.2f} | {r:.2f} | {f1:.2f} | {recall:.2f} | - |")
    print(f"\ngoals (row-level F1 >= 0.8, event recall >= 0.9, <= 1 false alarm / 10k): {'met' if ok else 'NOT met'}")
    return ok


def plant_files(files: int = 12, seed: int = 0) -> float:
    """Short recordings of one machine, shaped like a pump test rig: 8 sensors driven by 3 shared
    AR(1) factors (phi 0.9) plus sensor noise, 1,000 to 1,300 samples at 1 Hz, one abnormal
    period of 200 to 450 samples after 400 to 700 normal ones, in which 4 sensors shift by 1 to
    2.5 of their normal sds (in turn: a step, a ramp from 30 % to 100 %, a step of 70 % with noise).
    Prints the row-level F1 of the machine's incident (``_machine_alarm``) and of the signals'
    alarms alone (any of them) per file; returns the mean of the first."""
    print("\n| file | kind | F1 machine incident | precision | recall | F1 any signal alarm |")
    print("| --- | --- | --- | --- | --- | --- |")
    scores = []
    for k in range(files):
        rng = np.random.default_rng(seed + k)
        n, p = int(rng.integers(1000, 1300)), MACHINE
        z = np.zeros((n, 3))
        for i in range(1, n):
            z[i] = 0.9 * z[i - 1] + rng.normal(0.0, np.sqrt(1 - 0.81), 3)
        x = z @ rng.normal(0.0, 1.0, (3, p)) * 0.7 + rng.normal(0.0, 0.7, (n, p))
        sd = x[:400].std(axis=0)
        start = int(rng.integers(400, 700))
        end = min(start + int(rng.integers(200, 450)), n - 50)
        kind = ("step", "ramp", "noisy step")[k % 3]
        for c, a in zip(
            rng.choice(p, 4, replace=False), rng.uniform(1.0, 2.5, 4) * rng.choice([-1, 1], 4), strict=True
        ):
            if kind == "step":
                x[start:end, c] += a * sd[c]
            elif kind == "ramp":
                x[start:end, c] += a * sd[c] * np.linspace(0.3, 1.0, end - start)
            else:
                x[start:end, c] += a * sd[c] * 0.7 + rng.normal(0.0, abs(a) * sd[c] * 0.5, end - start)
        ts = np.repeat(np.arange(n, dtype=np.int64)[:, None] * 10**9, p, axis=1)
        scorer = AnomalyScorer(p, machines=np.zeros(p, np.intp))
        _, flags, _ = scorer.update(50.0 + x, ts)
        incident = scorer.last_machines.incident[:, 0].astype(bool)
        machine, signals = Counts(), Counts()
        machine.add(incident, start, end, onsets(scorer.last_machines.incident[:, 0]))
        signals.add(flags.any(axis=1), start, end, onsets(flags.any(axis=1).astype(np.uint8)))
        pm, rm, fm = machine.f1()
        scores.append(fm)
        print(f"| {k} | {kind} | {fm:.2f} | {pm:.2f} | {rm:.2f} | {signals.f1()[2]:.2f} |")
    print(f"\nmean row-level F1 of the machine's incident: {np.mean(scores):.2f}")
    return float(np.mean(scores))
