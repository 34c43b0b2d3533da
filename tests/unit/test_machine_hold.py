"""A machine's alarm holds the normal of the signals its fault moved, not of every signal: a signal
that wanders slowly by nature, held still, would keep the machine in alarm after the fault ended."""

from __future__ import annotations

import numpy as np

from tests.unit.machine_faults import machine_incident

ROWS, START, END = 3000, 1500, 1900


def incident_after_the_fault(seed: int) -> int:
    """Samples the machine's incident lasts after a fault of 3 sds on 3 of its 6 signals ends.

    Signals 0 to 2 are AR(1) loops (phi 0.8); 3 to 5 wander slowly (phi 0.99, a time constant of
    100 samples); all have unit level sd under sensor noise of 0.3."""
    incident = machine_incident(seed, np.array([0.8, 0.8, 0.8, 0.99, 0.99, 0.99]), ROWS, START, END)
    assert incident[START:END].mean() > 0.9, f"seed {seed}: the fault was not in alarm while it lasted"
    over = np.flatnonzero(~incident[END:])
    return int(over[0]) if over.shape[0] else ROWS - END


def test_a_machine_alarm_ends_after_its_fault_however_its_other_signals_wander() -> None:
    lasted = [incident_after_the_fault(seed) for seed in range(16)]
    # While the machine's alarm held every signal, 2 of these 16 incidents lasted to the end of the
    # recording (1,100 samples after the fault; the median was 92). Now the longest is about half
    # of that, and the median 60.
    assert max(lasted) < 800, lasted
    assert float(np.median(lasted)) < 100, lasted
