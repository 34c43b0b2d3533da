"""Protocol adapters: Modbus TCP and OPC UA collectors, decoding, request planning, profiles.

Collectors turn device replies into columnar :class:`Batch` objects. They never import
``edge_agent``; the agent owns scheduling, reconnects and backoff.
"""

from collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, QUALITY_GOOD, Batch
from collectors.profile import (
    DeviceProfile,
    ModbusField,
    ModbusProfile,
    OpcUaNode,
    OpcUaProfile,
    builtin_profile_dir,
)

__all__ = [
    "QUALITY_BAD_DECODE",
    "QUALITY_BAD_DEVICE",
    "QUALITY_GOOD",
    "Batch",
    "DeviceProfile",
    "ModbusField",
    "ModbusProfile",
    "OpcUaNode",
    "OpcUaProfile",
    "builtin_profile_dir",
]
