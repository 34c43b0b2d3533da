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

A ratio whose denominator is 0 is NaN here (absent, ``null``, in output). :func:`summable`
turns rows into columns that add up (PRI * PQ and PRI * GQ are summed as seconds, so machines
with different ideal cycle times roll up right); :func:`ratios` divides sums. Never average ratios.

>>> import numpy as np
>>> from analytics.episodes import NCOL, C_RUNNING, C_DOWN, C_TOTAL, C_GOOD
>>> e = np.zeros((1, NCOL)); e[0, C_RUNNING], e[0, C_DOWN], e[0, C_TOTAL], e[0, C_GOOD] = 45, 15, 20, 19
>>> cols = summable(e, np.array([2.0]), np.array([[True, True, False, False]]))
>>> k = ratios(cols)
>>> [round(float(k[x][0]), 4) for x in ("availability", "performance", "quality", "oee")]
[0.75, 0.8889, 0.95, 0.6333]
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from analytics.episodes import C_ENERGY, C_FAILURES, C_GOOD, C_REJECT, C_TOTAL, C_UNKNOWN, COLUMNS

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
    }
    return {k: out[k] for k in SUMMABLE}


def roll_up(cols: Columns, group: NDArray[np.intp], n_groups: int) -> Columns:
    """Sum summable columns by group (energy stays NaN where no row of the group is metered)."""
    out: Columns = {}
    for k, v in cols.items():
        finite = np.isfinite(v)
        total = np.bincount(group[finite], weights=v[finite], minlength=n_groups).astype(np.float64)
        metered = np.bincount(group[finite], minlength=n_groups) > 0
        out[k] = np.where(metered, total, np.nan) if k == "energy_kwh" else total
    return out


def _ratio(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=(den > 0) & np.isfinite(num))
    return out


def ratios(c: Columns) -> Columns:
    """ISO 22400-2 KPIs (0..1 ratios, s, per hour, kWh per unit; NaN when undefined)."""
    apt, pbt = c["actual_production_s"], c["planned_busy_s"]
    return {
        "availability": _ratio(apt, pbt),
        "performance": _ratio(c["ideal_produced_s"], apt),
        "quality": _ratio(c["good"], c["produced"]),
        "oee": _ratio(c["ideal_good_s"], pbt),
        "mtbf_s": _ratio(apt, c["failures"]),
        "mttr_s": _ratio(c["down_s"], c["failures"]),
        "scrap_ratio": _ratio(c["reject"], c["produced"]),
        "throughput_per_h": _ratio(c["produced"] * 3600.0, apt),
        "energy_per_good_kwh": _ratio(c["energy_kwh"], c["good"]),
        "speed_loss_s": apt - c["ideal_produced_s"],
        "reject_loss_s": c["ideal_produced_s"] - c["ideal_good_s"],
    }


def kpis(elements: NDArray[np.float64], ideal_cycle_s: NDArray[np.float64], has_counter: NDArray[np.bool_]) -> Columns:
    """Summable columns and ratios of each row."""
    cols = summable(elements, ideal_cycle_s, has_counter)
    return {**cols, **ratios(cols)}
