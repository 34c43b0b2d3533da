"""Protocol adapters: one folder per protocol (``modbus/``, ``opcua/``), each registering a plugin.

Collectors turn device replies into columnar :class:`Batch` objects. They never import
``edge_agent``; the agent owns scheduling, reconnects and backoff. The extension point is
:mod:`collectors.plugin`.
"""

from edge_agent.collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, QUALITY_GOOD, QUALITY_UNREACHABLE, Batch
from edge_agent.collectors.plugin import (
    Collector,
    CollectorContext,
    CollectorPlugin,
    DeviceOptions,
    DeviceSpec,
    DeviceUnreachable,
    plugins,
    register,
)
from edge_agent.collectors.profile import ProfileBase, SignalSpec, builtin_profile_dir, signal_names

__all__ = [
    "QUALITY_BAD_DECODE",
    "QUALITY_BAD_DEVICE",
    "QUALITY_GOOD",
    "QUALITY_UNREACHABLE",
    "Batch",
    "Collector",
    "CollectorContext",
    "CollectorPlugin",
    "DeviceOptions",
    "DeviceSpec",
    "DeviceUnreachable",
    "ProfileBase",
    "SignalSpec",
    "builtin_profile_dir",
    "plugins",
    "register",
    "signal_names",
]
