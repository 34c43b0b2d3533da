"""Registers the OPC UA collector: profiles with ``protocol: opcua``, endpoints ``opc.tcp://host:port/path``."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from collectors.opcua.profile import OpcUaProfile
from collectors.plugin import Collector, CollectorContext, CollectorPlugin, DeviceOptions, DeviceSpec, register


class OpcUaDeviceOptions(DeviceOptions):
    """What ``agent.yaml`` says about one OPC UA device besides the common fields."""

    params: dict[str, str] = Field(default_factory=dict, description="fills {placeholders} in node ids")


def _make(profile: Any, device: DeviceSpec, context: CollectorContext) -> Collector:
    # asyncua costs ~27 MB of memory: imported only when an OPC UA device is configured.
    from collectors.opcua.client import OpcUaCollector  # noqa: PLC0415

    options = device.options
    assert isinstance(profile, OpcUaProfile)
    assert isinstance(options, OpcUaDeviceOptions)
    return OpcUaCollector(profile, device.endpoint, options.params, context.now_ns, device.timeout)


def _check(profile: Any, device: DeviceSpec) -> list[tuple[tuple[str | int, ...], str]]:
    options = device.options
    assert isinstance(profile, OpcUaProfile)
    assert isinstance(options, OpcUaDeviceOptions)
    missing = profile.placeholders() - set(options.params)
    if missing:
        return [(("params",), f"profile {profile.name!r} needs params {sorted(missing)}")]
    return []


register(
    CollectorPlugin(
        protocol="opcua",
        profile_model=OpcUaProfile,
        schemes=("opc.tcp",),
        device_options=OpcUaDeviceOptions,
        factory=_make,
        check_device=_check,
        endpoint_example="opc.tcp://10.0.0.7:4840/path",
    )
)
