"""A three-phase energy meter and a machine controller on one bus, served by pymodbus (its own
value encoding: big-endian words, ABCD) over Modbus TCP, RTU over TCP, or RTU on a serial line.

The meter's map is like a real one's: float32 voltages and frequency at holding 0..7, registers
8..9 not mapped (the meter refuses any read that touches them: exception 2), a uint64 energy
counter in Wh and a float64 kWh at 10..17, a 16-character serial number at 20..27 and a status
word at 28, and an int32 total power (W) in the input table. The serial line is a pair of
pseudo-terminals joined by a relay thread (a null-modem cable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import threading
import tty
from typing import Any

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

METER_UNIT, CONTROLLER_UNIT = 2, 3
METER = {
    "voltage_l1": 230.5,
    "voltage_l2": 231.25,
    "voltage_l3": 229.75,
    "frequency": 50.0,
    "energy_wh": 123_456_789_012,
    "energy_kwh": 123_456.789012,
    "serial": "EM340-0001234567",
    "status": "ok",
    "power_w": -1_500_000,
}
CONTROLLER = {"state": 2.0, "good_parts": 4_000_000_000}

METER_PROFILE = """\
name: three-phase-meter
protocol: modbus
vendor: test
fields:
  - {name: voltage_l1, register: 40001, type: float32, unit: V}
  - {name: voltage_l2, register: 40003, type: float32, unit: V}
  - {name: voltage_l3, register: 40005, type: float32, unit: V}
  - {name: frequency, register: 40007, type: float32, unit: Hz}
  - {name: energy_wh, table: holding, address: 10, type: uint64, unit: Wh, kind: counter}
  - {name: energy_kwh, table: holding, address: 14, type: float64, unit: kWh, kind: energy}
  - {name: serial, table: holding, address: 20, type: string, length: 8}
  - {name: status, table: holding, address: 28, type: enum, values: {0: ok, 1: overvoltage, 2: phase_loss}}
  - {name: power_w, table: input, address: 0, type: int32, unit: W}
"""

CONTROLLER_PROFILE = """\
name: machine-controller
protocol: modbus
fields:
  - {name: state, table: holding, address: 0, type: uint16, kind: state}
  - {name: good_parts, table: holding, address: 1, type: uint32, kind: counter}
"""


def devices() -> list[SimDevice]:
    registers = [
        SimData(0, values=[METER["voltage_l1"], METER["voltage_l2"], METER["voltage_l3"]], datatype=DataType.FLOAT32),
        SimData(6, values=METER["frequency"], datatype=DataType.FLOAT32),
        SimData(10, values=METER["energy_wh"], datatype=DataType.UINT64),
        SimData(14, values=METER["energy_kwh"], datatype=DataType.FLOAT64),
        SimData(20, values=str(METER["serial"]), datatype=DataType.STRING),
        SimData(28, values=0, datatype=DataType.UINT16),
    ]
    meter = SimDevice(
        id=METER_UNIT,
        simdata=(
            [SimData(0, count=1, datatype=DataType.BITS)],
            [SimData(0, count=1, datatype=DataType.BITS)],
            registers,
            [SimData(0, values=METER["power_w"], datatype=DataType.INT32)],
        ),
    )
    controller = SimDevice(
        id=CONTROLLER_UNIT,
        simdata=(
            [SimData(0, count=1, datatype=DataType.BITS)],
            [SimData(0, count=1, datatype=DataType.BITS)],
            [
                SimData(0, values=int(CONTROLLER["state"]), datatype=DataType.UINT16),
                SimData(1, values=CONTROLLER["good_parts"], datatype=DataType.UINT32),
            ],
            [SimData(0, count=1, datatype=DataType.REGISTERS)],
        ),
    )
    return [meter, controller]


class NullModem:
    """Two pseudo-terminals whose masters a thread joins: what one side writes, the other reads."""

    def __init__(self) -> None:
        self._fds = [os.openpty(), os.openpty()]
        for _, slave in self._fds:
            tty.setraw(slave)
        self.ends = [os.ttyname(slave) for _, slave in self._fds]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True, name="null-modem")
        self._thread.start()

    def _relay(self) -> None:
        a, b = self._fds[0][0], self._fds[1][0]
        other = {a: b, b: a}
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.05)
            for fd in ready:
                with contextlib.suppress(OSError):
                    os.write(other[fd], os.read(fd, 4096))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for master, slave in self._fds:
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)


class Bus:
    """The two units served over ``transport`` (tcp, rtutcp or serial), on an asyncio loop."""

    def __init__(self, transport: str, port: int = 0, serial: dict[str, Any] | None = None) -> None:
        self.transport, self.port = transport, port
        self.modem: NullModem | None = None
        self.server: Any = None
        # Linux pseudo-terminals refuse parity bits (EINVAL): the serial bus runs 8N1 here, and
        # parity is checked where the endpoint is parsed.
        self.serial = serial or {"baudrate": 19200, "parity": "N", "stopbits": 1}
        self._task: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        if self.transport == "serial":
            assert self.modem is not None
            s = self.serial
            return (
                f"modbus+rtu://{self.modem.ends[1]}?baud={s['baudrate']}&parity={s['parity']}&stop_bits={s['stopbits']}"
            )
        scheme = "modbus+rtutcp" if self.transport == "rtutcp" else "modbus"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self.transport == "serial":
            self.modem = NullModem()
            self.server = ModbusSerialServer(devices(), framer=FramerType.RTU, port=self.modem.ends[0], **self.serial)
        else:
            framer = FramerType.RTU if self.transport == "rtutcp" else FramerType.SOCKET
            self.server = ModbusTcpServer(devices(), framer=framer, address=("127.0.0.1", self.port))
        self._task = asyncio.create_task(self.server.serve_forever())
        for _ in range(500):
            if getattr(self.server, "transport", None) is not None:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the {self.transport} test bus did not start")

    async def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.shutdown()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.modem is not None:
            self.modem.close()
