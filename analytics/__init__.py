"""Pure numpy analytics: OEE time elements and KPIs, streaming anomaly detectors.

No I/O and no asyncio here; every function works on arrays, vectorised over machines or signals.
"""

from analytics.alarms import AlarmEvent, Alarms
from analytics.anomaly import AnomalyScorer, AnomalySettings
from analytics.detectors import DetectorSet, DetectorSettings
from analytics.oee import COLUMNS, MachineOeeConfig, OeeEngine, WindowRows
from analytics.oee_kpis import kpis, ratios, roll_up, summable
from analytics.schedule import Break, Shift, WorkSchedule
from analytics.windows import FixedWindows, ShiftWindows, WindowGrid

__all__ = [
    "COLUMNS",
    "AlarmEvent",
    "Alarms",
    "AnomalyScorer",
    "AnomalySettings",
    "Break",
    "DetectorSet",
    "DetectorSettings",
    "FixedWindows",
    "MachineOeeConfig",
    "OeeEngine",
    "Shift",
    "ShiftWindows",
    "WindowGrid",
    "WindowRows",
    "WorkSchedule",
    "kpis",
    "ratios",
    "roll_up",
    "summable",
]
