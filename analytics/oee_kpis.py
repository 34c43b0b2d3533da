"""ISO 22400-2 KPIs from window elements, and roll-ups that sum before they divide.

Time elements (seconds) and quantities of one window row (see ``docs/oee.md``)::

    scheduled  = running + micro-stop + delay + down + setup + planned stop + break + unknown
    PBT        = scheduled - break - planned stop - unknown          (planned busy time)
    APT        = running + micro-stop                               (actual production time)
    PQ         = total delta, or good + reject deltas;  GQ = good delta, or PQ - reject
    availability = APT / PBT      performance = PRI * PQ / APT      quality = GQ / PQ
    OEE          = PRI * GQ / PBT (= A * P * Q when all three exist; 0 for a machine that never ran)
    MTBF = APT / failures         MTTR = down / failures
    speed loss = APT - PRI * PQ   reject loss = PRI * (PQ - GQ)    throughput = PQ / APT (per hour)

Availability, quality and OEE never exceed 1 (OEE is capped; a quality above 1 means the good
counter ran ahead of the total one, and is capped too). Performance may: parts made faster than
the ideal cycle time says they can be. Each row carries ``flags``, a bit mask of
:data:`FLAGS` (``performance_above_1`` = 1, ``counter_reset`` = 2, ``unknown_time`` = 4,
``partial_window`` = 8, ``unattributed_counts`` = 16, ``capped`` = 32).

A ratio whose denominator is 0 is NaN here (absent, ``null``, in output). :func:`summable`
turns rows into columns that add up (PRI * PQ and PRI * GQ are summed as seconds, so machines
with different ideal cycle times roll up right); :func:`ratios` divides sums. Never average ratios.

>>> import numpy as np
>>> from edge_agent.analytics.episodes import NCOL, C_RUNNING, C_DOWN, C_TOTAL, C_GOOD
>>> e = np.zeros((1, NCOL)); e[0, C_RUNNING], e[0, C_DOWN], e[0, C_TOTAL], e[0, C_GOOD] = 45, 15, 20, 19
>>> cols = summable(e, np.array([2.0]), np.array([[True, True, False, False]]))
>>> k = ratios(cols)
>>> [round(float(k[x][0]), 4) for x in ("availability", "performance", "quality", "oee")]
[0.75, 0.8889, 0.95, 0.6333]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from edge_agent.analytics.episodes import (
    C_ENERGY,
    C_FAILURES,
    C_GOOD,
    C_REJECT,
    C_RESETS,
    C_TOTAL,
    C_UNATTRIBUTED,
    C_UNKNOWN,
    COLUMNS,
)

Columns = dict[str, NDArray[np.float64]]
# Counter kinds, as in analytics.oee.
_TOTAL, _GOOD, _REJECT, _ENERGY = range(4)
#: Columns of :func:`summable`, in output order.
#: Scheduled time is made of the engine's time columns up to unknown (running ... unknown).
TIME_ELEMENTS = COLUMNS[: C_UNKNOWN + 1]
SUMMABLE = (
    "scheduled_s",
    "planned_busy_s",
    *TIME_ELEMENTS,
    "actual_production_s",
    "produced",
    "good",
    "reject",
    "failures",
    "energy_kwh",
    "ideal_produced_s",
    "ideal_good_s",
    "unattributed_parts",
    "unattributed_kwh",
    "counter_resets",
)
#: Bits of the ``flags`` field, in order (bit 0 first).
FLAGS = (
    "performance_above_1",
    "counter_reset",
    "unknown_time",
    "partial_window",
    "unattributed_counts",
    "capped",
)
#: Columns of :func:`ratios`.
RATIOS = (
    "availability",
    "performance",
    "quality",
    "oee",
    "mtbf_s",
    "mttr_s",
    "scrap_ratio",
    "throughput_per_h",
    "energy_per_good_kwh",
    "speed_loss_s",
    "reject_loss_s",
)


def summable(
    elements: NDArray[np.float64], ideal_cycle_s: NDArray[np.float64], has_counter: NDArray[np.bool_]
) -> Columns:
    """Columns that add up across windows and machines (s, counts, kWh; energy NaN if not metered)."""
    e = elements
    time = {name: e[:, i] for i, name in enumerate(TIME_ELEMENTS)}
    scheduled = sum(time.values(), np.zeros(e.shape[0]))
    produced = np.where(has_counter[:, _TOTAL], e[:, C_TOTAL], e[:, C_GOOD] + e[:, C_REJECT])
    good = np.where(has_counter[:, _GOOD], e[:, C_GOOD], produced - e[:, C_REJECT])
    out = {
        "scheduled_s": scheduled,
        "planned_busy_s": scheduled - time["break_s"] - time["planned_stop_s"] - time["unknown_s"],
        **time,
        "actual_production_s": time["running_s"] + time["microstop_s"],
        "produced": produced,
        "good": good,
        "reject": produced - good,
        "failures": e[:, C_FAILURES],
        "energy_kwh": np.where(has_counter[:, _ENERGY], e[:, C_ENERGY], np.nan),
        "ideal_produced_s": ideal_cycle_s * produced,
        "ideal_good_s": ideal_cycle_s * good,
        "unattributed_parts": np.where(
            has_counter[:, _TOTAL],
            e[:, C_UNATTRIBUTED + _TOTAL],
            e[:, C_UNATTRIBUTED + _GOOD] + e[:, C_UNATTRIBUTED + _REJECT],
        ),
        "unattributed_kwh": np.where(has_counter[:, _ENERGY], e[:, C_UNATTRIBUTED + _ENERGY], np.nan),
        "counter_resets": e[:, C_RESETS],
    }
    return {k: out[k] for k in SUMMABLE}


def roll_up(cols: Columns, group: NDArray[np.intp], n_groups: int) -> Columns:
    """Sum summable columns by group (energy stays NaN where no row of the group is metered)."""
    out: Columns = {}
    for k, v in cols.items():
        finite = np.isfinite(v)
        total = np.bincount(group[finite], weights=v[finite], minlength=n_groups).astype(np.float64)
        metered = np.bincount(group[finite], minlength=n_groups) > 0
        out[k] = np.where(metered, total, np.nan) if k in ("energy_kwh", "unattributed_kwh") else total
    return out


def _ratio(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=(den > 0) & np.isfinite(num))
    return out


def ratios(c: Columns) -> Columns:
    """ISO 22400-2 KPIs (0..1 ratios, s, per hour, kWh per unit; NaN when undefined)."""
    apt, pbt = c["actual_production_s"], c["planned_busy_s"]
    return {
        "availability": np.minimum(_ratio(apt, pbt), 1.0),
        "performance": _ratio(c["ideal_produced_s"], apt),
        "quality": np.minimum(_ratio(c["good"], c["produced"]), 1.0),
        "oee": np.minimum(_ratio(c["ideal_good_s"], pbt), 1.0),
        "mtbf_s": _ratio(apt, c["failures"]),
        "mttr_s": _ratio(c["down_s"], c["failures"]),
        "scrap_ratio": _ratio(c["reject"], c["produced"]),
        "throughput_per_h": _ratio(c["produced"] * 3600.0, apt),
        "energy_per_good_kwh": _ratio(c["energy_kwh"], c["good"]),
        "speed_loss_s": apt - c["ideal_produced_s"],
        "reject_loss_s": c["ideal_produced_s"] - c["ideal_good_s"],
    }


def flags(c: Columns, partial: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    """The ``flags`` bit mask (:data:`FLAGS`) of rows of summable columns."""
    apt, pbt = c["actual_production_s"], c["planned_busy_s"]
    with np.errstate(invalid="ignore", divide="ignore"):
        performance = _ratio(c["ideal_produced_s"], apt)
        over = (
            (_ratio(c["ideal_good_s"], pbt) > 1.0)
            | (_ratio(apt, pbt) > 1.0 + 1e-9)
            | (_ratio(c["good"], c["produced"]) > 1.0)
        )
    bits = [
        performance > 1.0,
        c["counter_resets"] > 0,
        c["unknown_s"] > 0,
        np.zeros(apt.shape, bool) if partial is None else partial,
        (c["unattributed_parts"] > 0) | (np.nan_to_num(c["unattributed_kwh"]) > 0),
        over,
    ]
    mask = np.zeros(apt.shape, np.int64)
    for i, bit in enumerate(bits):
        mask |= bit.astype(np.int64) << i
    return mask.astype(np.float64)


def flag_names(mask: float) -> list[str]:
    """The names of the bits set in a ``flags`` value."""
    return [name for i, name in enumerate(FLAGS) if int(mask) >> i & 1]


def kpis(
    elements: NDArray[np.float64],
    ideal_cycle_s: NDArray[np.float64],
    has_counter: NDArray[np.bool_],
    partial: NDArray[np.bool_] | None = None,
) -> Columns:
    """Summable columns, ratios and flags of each row."""
    cols = summable(elements, ideal_cycle_s, has_counter)
    return {**cols, **ratios(cols), "flags": flags(cols, partial)}
