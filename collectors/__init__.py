"""Protocol adapters: one folder per protocol (``modbus/``, ``opcua/``), each registering a plugin.

Collectors turn device replies into columnar :class:`Batch` objects. They import nothing of the
agent but :mod:`edge_agent.registry`; the agent owns scheduling, reconnects and backoff. The
extension point is :mod:`edge_agent.collectors.plugin`; what a protocol needs of it is exported here.
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
    unregister,
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
    "unregister",
]
