"""Registers the Modbus collector: profiles with ``protocol: modbus``, endpoints ``modbus://host:port``."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field

from collectors.modbus.client import ModbusCollector
from collectors.modbus.profile import ModbusProfile
from collectors.modbus.tcp import TcpLink
from collectors.plugin import Collector, CollectorContext, CollectorPlugin, DeviceOptions, DeviceSpec, register


class ModbusDeviceOptions(DeviceOptions):
    """What ``agent.yaml`` says about one Modbus unit besides the common fields."""

    unit_id: Annotated[int, Field(ge=0, le=255, description="Modbus unit id (slave id) of the device")] = 1
    connection: Literal["own", "shared"] | None = Field(
        None,
        description="own: this device has its own TCP connection (default for modbus://); "
        "shared: devices behind one gateway take turns on one connection",
    )


def _make(profile: Any, device: DeviceSpec, context: CollectorContext) -> Collector:
    options = device.options
    assert isinstance(profile, ModbusProfile)
    assert isinstance(options, ModbusDeviceOptions)
    url = urlsplit(device.endpoint)
    host, port = url.hostname or "", url.port or 502
    if (options.connection or "own") == "shared":
        link = context.shared_resource(("modbus", host, port), lambda: TcpLink(host, port, device.timeout))
    else:
        link = TcpLink(host, port, device.timeout)
    return ModbusCollector(profile, link, options.unit_id, context.now_ns)


register(
    CollectorPlugin(
        protocol="modbus",
        profile_model=ModbusProfile,
        schemes=("modbus", "modbus-tcp"),
        device_options=ModbusDeviceOptions,
        factory=_make,
        endpoint_example="modbus://10.0.0.5:502",
    )
)
