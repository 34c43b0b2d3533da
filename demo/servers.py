"""Real protocol servers for the demo plant: asyncua (OPC UA) and pymodbus (Modbus TCP).

OPC UA machines live in one server under namespace ``urn:edge-monitor:demo-plant`` with node ids
``s=<machine>.<Signal>``; values are written with the plant-time ``SourceTimestamp``, state
changes stamped with the exact moment the machine changed. Modbus machines are unit ids on one
server whose registers are filled from the plant at the moment a request is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import socket
import time
from typing import Any

from asyncua import ua
from asyncua.server.server import Server
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.collectors.modbus.decode import encode_value
from edge_agent.demo.plant import ENERGY_METER_UNIT, IDLE, RUNNING, Plant
from edge_agent.demo.workshop import demo_config
from edge_agent.runtime.clock import Clock, ScaledClock

NAMESPACE = "urn:edge-monitor:demo-plant"
OPCUA_SIGNALS = ("State", "PartCount", "RejectCount", "SpindleTemp", "Vibration", "Power")
_ONE_BLOCK = 32

for _name in ("asyncua", "pymodbus"):
    logging.getLogger(_name).setLevel(logging.ERROR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stamp(ns: int) -> Any:
    """An OPC UA DateTime (asyncua takes naive UTC datetimes; 100 ns resolution)."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).replace(tzinfo=None)


class DemoServers:
    """Starts and feeds both servers; ``plant_s(now_ns)`` is plant time for a clock reading."""

    def __init__(
        self,
        plant: Plant,
        clock: Clock,
        opcua_port: int = 0,
        modbus_port: int = 0,
        host: str = "127.0.0.1",
        update_s: float = 0.02,
    ) -> None:
        self.plant, self.clock, self.host = plant, clock, host
        self.opcua_port = opcua_port or free_port()
        self.modbus_port = modbus_port or free_port()
        self.update_s = update_s
        self.start_ns = clock.now_ns()
        self._opcua: Any = None
        self._modbus: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._nodes: dict[tuple[str, str], Any] = {}
        self._last_state: dict[str, int] = {}
        self.modbus_up = asyncio.Event()

    @classmethod
    async def started(cls, seed: int, speed: float, lead_s: float = 0.0) -> DemoServers:
        """A new plant for ``seed``, serving, on a clock running ``speed`` times real time.

        Plant time 0 is ``lead_s`` seconds before the moment the servers are up: the clock stands
        still while they start (seconds of wall time, minutes of plant time at 30x).
        """
        clock = ScaledClock(time.time_ns() - int(lead_s * 1e9), speed=speed, held=True)
        servers = cls(Plant(seed=seed), clock)
        await servers.start()
        servers.start_ns = time.time_ns() - int(lead_s * 1e9)
        clock.release(servers.start_ns)
        return servers

    def agent_config(self, buffer_path: str, sinks: list[dict[str, Any]]) -> dict[str, Any]:
        """``agent.yaml`` content for an agent on this plant (see :func:`demo_config`)."""
        return demo_config(
            self.plant, self.opcua_endpoint, self.modbus_port, buffer_path, sinks, speed=self.clock.speed
        )

    def plant_s(self, now_ns: int) -> float:
        return (now_ns - self.start_ns) / 1e9

    def to_ns(self, plant_s: float) -> int:
        return self.start_ns + int(plant_s * 1e9)

    @property
    def opcua_endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.opcua_port}/demo"

    # -- OPC UA ------------------------------------------------------------------------------
    async def start_opcua(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.opcua_endpoint)
        server.set_server_name("edge-agent demo plant")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        objects = server.nodes.objects
        for name, sim in self.plant.machines.items():
            if sim.spec.protocol != "opcua":
                continue
            folder = await objects.add_object(ua.NodeId.from_string(f"ns={ns};s={name}"), ua.QualifiedName(name, ns))
            for signal in OPCUA_SIGNALS:
                variant = (
                    ua.VariantType.Int32 if signal in ("State", "PartCount", "RejectCount") else ua.VariantType.Double
                )
                node = await folder.add_variable(
                    ua.NodeId.from_string(f"ns={ns};s={name}.{signal}"),
                    ua.QualifiedName(signal, ns),
                    ua.Variant(0, variant),
                )
                self._nodes[(name, signal)] = (node, variant)
        await server.start()
        self._opcua = server
        await self._write_opcua(self.clock.now_ns())
        self._tasks.append(asyncio.create_task(self._feed_opcua()))

    async def _write(self, name: str, signal: str, value: float, ns: int, server_ns: int | None = None) -> None:
        """Write a value that changed at ``ns`` (source time) and reached the server at ``server_ns``."""
        node, variant = self._nodes[(name, signal)]
        v = int(value) if variant == ua.VariantType.Int32 else float(value)
        server = _stamp(ns if server_ns is None else server_ns)
        dv = ua.DataValue(ua.Variant(v, variant), SourceTimestamp=_stamp(ns), ServerTimestamp=server)
        await self._opcua.write_attribute_value(node.nodeid, dv)

    async def _write_opcua(self, now_ns: int) -> None:
        t = self.plant_s(now_ns)
        for name, sim in self.plant.machines.items():
            if sim.spec.protocol != "opcua":
                continue
            episode = sim.episode(t)
            state = sim.states[episode]
            if self._last_state.get(name) != state:
                # Stamp the change with the moment it happened, not with this update.
                changed_at = self.to_ns(max(sim.starts[episode], 0.0))
                await self._write(name, "State", state, changed_at, server_ns=now_ns)
                self._last_state[name] = state
            good, reject = self.plant.counts(name, t)
            await self._write(name, "PartCount", sim.spec.counter_start + good + reject, now_ns)
            await self._write(name, "RejectCount", reject, now_ns)
            await self._write(name, "SpindleTemp", self.plant.spindle_temp(name, t), now_ns)
            await self._write(name, "Vibration", self.plant.vibration(name, t), now_ns)
            await self._write(name, "Power", self.plant.power_kw(name, t), now_ns)

    async def _feed_opcua(self) -> None:
        while True:
            await asyncio.sleep(self.update_s)
            await self._write_opcua(self.clock.now_ns())

    # -- Modbus ------------------------------------------------------------------------------
    async def _fill(
        self,
        unit: int,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: Any,
    ) -> None:
        """pymodbus action: fill the registers from the plant at the moment of the request."""
        t = self.plant_s(self.clock.now_ns())
        words = self.registers(unit, function_code, t)
        for i, w in enumerate(words):
            if i < len(current_registers):
                current_registers[i] = w

    def registers(self, unit: int, function_code: int, t: float) -> list[int]:
        """The register image of a unit: coils (fc 1), holding (fc 3) or input (fc 4)."""
        if unit == ENERGY_METER_UNIT:
            if function_code == 4:
                total_kw = sum(self.plant.power_kw(n, t) for n in self.plant.machines)
                return encode_value(self.plant.energy_kwh(t), "float32", "CDAB") + encode_value(
                    total_kw, "float32", "ABCD"
                )
            return [1]
        name = next(n for n, m in self.plant.machines.items() if m.spec.unit_id == unit)
        sim = self.plant.machines[name]
        if function_code == 1:  # coil 0: guard closed; coils are packed 16 to a word here
            return [1 if sim.state_at(t) in (RUNNING, IDLE) else 0]
        if function_code == 3:
            good, reject = self.plant.counts(name, t)
            return [sim.state_at(t), (sim.spec.counter_start + good) & 0xFFFF, *encode_value(reject, "int32", "ABCD")]
        if function_code == 4:
            return (
                encode_value(self.plant.spindle_temp(name, t), "float32", "CDAB")
                + encode_value(self.plant.vibration(name, t), "float32", "ABCD")
                + encode_value(self.plant.power_kw(name, t), "float32", "CDAB")
            )
        return [0]

    async def start_modbus(self) -> None:
        units = [m.spec.unit_id for m in self.plant.machines.values() if m.spec.protocol == "modbus"]
        devices = []
        for unit in [*units, ENERGY_METER_UNIT]:
            blocks = (
                [SimData(0, count=16, datatype=DataType.BITS)],
                [SimData(0, count=16, datatype=DataType.BITS)],
                [SimData(0, count=_ONE_BLOCK, datatype=DataType.REGISTERS)],
                [SimData(0, count=_ONE_BLOCK, datatype=DataType.REGISTERS)],
            )
            devices.append(SimDevice(id=unit, simdata=blocks, action=functools.partial(self._fill, unit)))
        self._modbus = ModbusTcpServer(devices, address=(self.host, self.modbus_port))
        self._tasks.append(asyncio.create_task(self._modbus.serve_forever()))
        for _ in range(200):
            if getattr(self._modbus, "transport", None) is not None:
                self.modbus_up.set()
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the demo Modbus server did not start on {self.host}:{self.modbus_port}")

    async def start(self) -> None:
        await self.start_modbus()
        await self.start_opcua()

    async def stop_modbus(self) -> None:
        if self._modbus is not None:
            await self._modbus.shutdown()
            self._modbus = None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.stop_modbus()
        if self._opcua is not None:
            with contextlib.suppress(Exception):
                await self._opcua.stop()
            self._opcua = None
