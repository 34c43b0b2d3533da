"""Registers the Modbus collector: profiles with ``protocol: modbus``; endpoints

* ``modbus://host:port`` (or ``modbus-tcp://``): Modbus TCP;
* ``modbus+rtu:///dev/ttyUSB0?baud=9600&parity=E&stop_bits=1&data_bits=8&frame_gap=4ms``: RTU on
  a serial line (parity N, E or O; defaults 9600 8N1 and 3.5 character times between frames);
* ``modbus+rtutcp://host:port``: RTU frames over TCP (a serial gateway in transparent mode).

Devices on one serial line or RTU gateway share it (one request at a time on the bus); Modbus TCP
devices have their own connection unless ``connection: shared``.

>>> parse_endpoint("modbus+rtu:///dev/ttyUSB0?baud=19200&parity=E").options
{'baud': 19200, 'parity': 'E', 'stop_bits': 1, 'data_bits': 8, 'frame_gap': None}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field

from edge_agent.collectors import Collector, CollectorContext, CollectorPlugin, DeviceOptions, DeviceSpec, register
from edge_agent.collectors.durations import parse_duration
from edge_agent.collectors.endpoints import endpoint_problem
from edge_agent.collectors.modbus.client import Link, ModbusCollector
from edge_agent.collectors.modbus.profile import ModbusProfile
from edge_agent.collectors.modbus.rtu import PARITY, RtuLink
from edge_agent.collectors.modbus.tcp import TcpLink

TCP_SCHEMES = ("modbus", "modbus-tcp")
RTU_SCHEME = "modbus+rtu"
RTU_TCP_SCHEME = "modbus+rtutcp"
_SERIAL_KEYS = {"baud", "parity", "stop_bits", "data_bits", "frame_gap"}


class ModbusDeviceOptions(DeviceOptions):
    """What ``agent.yaml`` says about one Modbus unit besides the common fields."""

    unit_id: Annotated[int, Field(ge=0, le=255, description="Modbus unit id (slave id) of the device")] = 1
    connection: Literal["own", "shared"] | None = Field(
        None,
        description="own: this device has its own TCP connection (default for modbus://); "
        "shared: devices behind one gateway take turns on one connection (default, and the only "
        "choice, for serial lines and RTU gateways)",
    )


@dataclass(frozen=True)
class Endpoint:
    """A parsed Modbus endpoint: ``kind`` tcp, rtu or rtutcp; serial options for rtu."""

    kind: str
    host: str = ""
    port: int = 0
    device: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def _seconds(text: str) -> float:
    return parse_duration(text)


def parse_endpoint(endpoint: str) -> Endpoint:
    """The endpoint's parts; raises ValueError saying what to write."""
    url = urlsplit(endpoint)
    if url.scheme == RTU_SCHEME:
        if not url.path or url.netloc:
            raise ValueError(f"write {RTU_SCHEME}:///dev/ttyUSB0?baud=9600&parity=E (three slashes, then the port)")
        query = dict(parse_qsl(url.query))
        unknown = set(query) - _SERIAL_KEYS
        if unknown:
            raise ValueError(f"unknown serial options {sorted(unknown)}: use {', '.join(sorted(_SERIAL_KEYS))}")
        try:
            options: dict[str, Any] = {
                "baud": int(query.get("baud", 9600)),
                "parity": PARITY[query.get("parity", "N").upper()],
                "stop_bits": int(query.get("stop_bits", 1)),
                "data_bits": int(query.get("data_bits", 8)),
                "frame_gap": _seconds(query["frame_gap"]) if "frame_gap" in query else None,
            }
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"bad serial options in {endpoint!r} ({exc}): baud is a number, parity N, E or O, stop_bits 1 "
                "or 2, data_bits 7 or 8, frame_gap a duration like 4ms"
            ) from None
        if options["stop_bits"] not in (1, 2) or options["data_bits"] not in (7, 8) or options["baud"] <= 0:
            raise ValueError("stop_bits must be 1 or 2, data_bits 7 or 8, baud positive")
        return Endpoint("rtu", device=url.path, options=options)
    wrong = endpoint_problem(endpoint, "modbus://10.0.0.5:502")
    if wrong:
        raise ValueError(wrong)
    return Endpoint("rtutcp" if url.scheme == RTU_TCP_SCHEME else "tcp", url.hostname or "", url.port or 502)


def _check_endpoint(endpoint: str) -> str | None:
    try:
        parse_endpoint(endpoint)
    except ValueError as exc:
        return str(exc)
    return None


def _link(end: Endpoint, device: DeviceSpec) -> Link:
    if end.kind == "rtu":
        o = end.options
        return RtuLink.serial(
            end.device, o["baud"], o["parity"], o["stop_bits"], o["data_bits"], device.timeout, o["frame_gap"]
        )
    if end.kind == "rtutcp":
        return RtuLink.tcp(end.host, end.port, device.timeout)
    return TcpLink(end.host, end.port, device.timeout)


def _make(profile: Any, device: DeviceSpec, context: CollectorContext) -> Collector:
    options = device.options
    assert isinstance(profile, ModbusProfile)
    assert isinstance(options, ModbusDeviceOptions)
    end = parse_endpoint(device.endpoint)
    shared = end.kind != "tcp" or (options.connection or "own") == "shared"
    if shared:
        key = ("modbus", end.kind, end.device or f"{end.host}:{end.port}")
        link = context.shared_resource(key, lambda: _link(end, device))
    else:
        link = _link(end, device)
    return ModbusCollector(profile, link, options.unit_id, context.now_ns, context.state, context.intern_text)


register(
    CollectorPlugin(
        protocol="modbus",
        profile_model=ModbusProfile,
        schemes=(*TCP_SCHEMES, RTU_SCHEME, RTU_TCP_SCHEME),
        device_options=ModbusDeviceOptions,
        factory=_make,
        endpoint_example="modbus://10.0.0.5:502, modbus+rtu:///dev/ttyUSB0?baud=9600&parity=E, modbus+rtutcp://10.0.0.6:4001",
        check_endpoint=_check_endpoint,
    )
)
