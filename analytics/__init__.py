"""Pure numpy analytics: OEE time elements and KPIs, streaming anomaly detectors.

No I/O and no asyncio here; every function works on arrays, vectorised over machines or signals.
"""

from edge_agent.analytics.alarms import AlarmEvent, Alarms
from edge_agent.analytics.anomaly import AnomalyScorer, AnomalySettings
from edge_agent.analytics.detectors import DetectorSet, DetectorSettings
from edge_agent.analytics.oee import COLUMNS, MachineOeeConfig, OeeEngine, WindowRows
from edge_agent.analytics.oee_kpis import kpis, ratios, roll_up, summable
from edge_agent.analytics.schedule import Break, Shift, WorkSchedule
from edge_agent.analytics.windows import FixedWindows, ShiftWindows, WindowGrid

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
