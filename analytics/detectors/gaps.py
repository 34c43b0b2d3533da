"""Gaps in a chunk of the fused path: the few columns that have one, and what they need.

A column with a gap (NaN) in a chunk, or without any sample before it, is handled apart: its
samples are carried over the gaps (so a step is always from the last sample), and the fused
path uses ``valid`` and ``no_step`` to leave its state untouched at the gaps and to score its
gaps NaN. Every other column goes through the chunk without a mask.

Examples
--------
>>> import numpy as np
>>> z = np.array([[1.0, 5.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 8.0]], np.float32)
>>> x = z.astype(np.float64) + 100.0
>>> last = np.array([101.0, 105.0])
>>> gaps = find_gaps(z, x[1:], last)
>>> gaps.columns.tolist(), z[1:, 0].tolist(), z[1:, 1].tolist(), last.tolist()
([0, 1], [2.0, 2.0, 4.0], [5.0, 5.0, 8.0], [104.0, 108.0])
>>> gaps.valid.tolist(), gaps.no_step.any()
([[True, False], [False, False], [True, True]], np.False_)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Gaps:
    """The columns with a gap in a chunk (or no sample before it), with their masks ``[rows, k]``."""

    columns: NDArray[np.intp]
    valid: NDArray[np.bool_]  # a sample is there
    no_step: NDArray[np.bool_]  # a sample is there, but none came before it: no step to score
    never: NDArray[np.intp]  # columns (of the chunk) without any sample yet, even at its end


def find_gaps(z: NDArray[np.float32], x: NDArray[np.float64], last: NDArray[np.float64]) -> Gaps:
    """Find the columns with a gap in ``z[1:]`` (``z[0]`` is the sample before the chunk) and
    carry their last sample over the gaps, in place; ``last`` (float64) takes each column's
    last sample of ``x`` (the chunk's rows). Where a column has had no sample yet, ``z`` is set
    to 0 (``valid`` and ``no_step`` say so), so that masks can be multiplied in."""
    n = z.shape[0] - 1
    # A column with a NaN sums to NaN: one pass, no [rows, columns] mask for the whole chunk.
    columns = np.flatnonzero(np.isnan(np.add.reduce(z, axis=0)))
    sub = z[:, columns]
    valid = ~np.isnan(sub[1:])
    no_step = np.zeros((n, columns.size), bool)
    for t in range(n):
        before, now, here = sub[t], sub[t + 1], valid[t]
        no_step[t] = here & np.isnan(before)
        now[~here] = before[~here]
    never = columns[np.isnan(sub[n])]
    sub[np.isnan(sub)] = 0.0  # (np.nan_to_num is several times slower)
    z[:, columns] = sub
    recent = last[columns]
    last[:] = x[n - 1]
    if columns.size:
        samples = x[:, columns]
        for t in range(n):
            recent = np.where(valid[t], samples[t], recent)
        last[columns] = recent
    return Gaps(columns, valid, no_step, never)
