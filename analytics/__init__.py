"""Pure numpy analytics: OEE time elements and KPIs, streaming anomaly detectors.

No I/O and no asyncio here; every function works on arrays, vectorised over machines or signals.
"""

from analytics.anomaly import EwmaZScore
from analytics.oee import (
    COLUMNS,
    MachineOeeConfig,
    OeeEngine,
    WindowRows,
    kpis,
)
from analytics.windows import FixedWindows, ShiftWindows, WindowGrid

__all__ = [
    "COLUMNS",
    "EwmaZScore",
    "FixedWindows",
    "MachineOeeConfig",
    "OeeEngine",
    "ShiftWindows",
    "WindowGrid",
    "WindowRows",
    "kpis",
]
