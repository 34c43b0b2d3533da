"""Modbus RTU links: a serial line (RS-485/RS-232 through pyserial), or RTU frames over TCP (the
raw mode of serial-to-Ethernet gateways). Both go through pymodbus' client with its RTU framer
(CRC, framing); the bus is half duplex, so one request is in flight per line.

Timing (Modbus over serial line v1.02, 2.5.1.1): frames are separated by at least 3.5 character
times of silence; above 19,200 baud the specification fixes it at 1.75 ms. A character is 11 bits
(start, 8 data, parity or a second stop bit, stop). ``frame_gap`` overrides it (slow converters).

>>> round(frame_gap_s(9600) * 1000, 2), frame_gap_s(115200) * 1000
(4.01, 1.75)
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from edge_agent.collectors.modbus.tcp import EXCEPTION_NAMES, ReadReply
from edge_agent.collectors.plugin import DeviceUnreachable

#: Parity letters pyserial takes.
PARITY = {"N": "N", "E": "E", "O": "O", "NONE": "N", "EVEN": "E", "ODD": "O"}


def frame_gap_s(baud: int) -> float:
    """Silence between two frames at ``baud`` (seconds): 3.5 characters, 1.75 ms above 19,200 baud."""
    return 0.00175 if baud > 19200 else 3.5 * 11 / baud


class RtuLink:
    """One RTU line (serial port, or a TCP socket carrying RTU frames); one request at a time."""

    def __init__(self, client: Any, where: str, timeout_s: float, frame_gap: float) -> None:
        self._client, self._where, self.timeout_s, self.frame_gap = client, where, timeout_s, frame_gap
        self._lock = asyncio.Lock()
        self._quiet_since = 0.0
        #: Connections made so far (devices sharing this line notice when it comes back).
        self.generation = 0

    @classmethod
    def serial(
        cls,
        port: str,
        baud: int = 9600,
        parity: str = "N",
        stop_bits: int = 1,
        data_bits: int = 8,
        timeout_s: float = 1.0,
        frame_gap: float | None = None,
    ) -> RtuLink:
        from pymodbus.client import AsyncModbusSerialClient  # noqa: PLC0415 - only serial devices need it

        client = AsyncModbusSerialClient(
            port,
            baudrate=baud,
            parity=PARITY[parity.upper()],
            stopbits=stop_bits,
            bytesize=data_bits,
            timeout=timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        where = f"{port} ({baud} {data_bits}{PARITY[parity.upper()]}{stop_bits})"
        return cls(client, where, timeout_s, frame_gap_s(baud) if frame_gap is None else frame_gap)

    @classmethod
    def tcp(cls, host: str, port: int, timeout_s: float = 2.0, frame_gap: float = 0.0) -> RtuLink:
        from pymodbus.client import AsyncModbusTcpClient  # noqa: PLC0415
        from pymodbus.framer import FramerType  # noqa: PLC0415

        client = AsyncModbusTcpClient(
            host, port=port, framer=FramerType.RTU, timeout=timeout_s, retries=0, reconnect_delay=0
        )
        return cls(client, f"{host}:{port} (RTU over TCP)", timeout_s, frame_gap)

    @property
    def where(self) -> str:
        return self._where

    async def connect(self) -> None:
        async with self._lock:
            if self._client.connected:
                return
            try:
                ok = await self._client.connect()
            except Exception as exc:
                raise DeviceUnreachable(f"cannot open {self.where}: {exc}") from exc
            if not ok:
                raise DeviceUnreachable(f"cannot open {self.where}")
            self.generation += 1

    async def read(self, table: str, address: int, count: int, unit_id: int) -> ReadReply:
        """``count`` registers (or bits) of ``table`` from ``address``; raises DeviceUnreachable."""
        from pymodbus.exceptions import ModbusException  # noqa: PLC0415

        call = {
            "holding": self._client.read_holding_registers,
            "input": self._client.read_input_registers,
            "coil": self._client.read_coils,
            "discrete": self._client.read_discrete_inputs,
        }[table]
        async with self._lock:
            if not self._client.connected:
                raise DeviceUnreachable(f"{self.where} is not open")
            if self.frame_gap:
                wait = self._quiet_since + self.frame_gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                # pymodbus' client times out after timeout_s (no retries); the agent bounds the poll too.
                reply = await call(address, count=count, device_id=unit_id)
            except (ModbusException, TimeoutError) as exc:
                raise TimeoutError(
                    f"{self.where} unit {unit_id}: no valid reply to {table} {address}..{address + count - 1}: {exc}"
                ) from None
            finally:
                if self.frame_gap:
                    self._quiet_since = time.monotonic()
        if reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            return ReadReply(None, code if code in EXCEPTION_NAMES else code or 4)
        if table in ("coil", "discrete"):
            return ReadReply(np.asarray(reply.bits[:count], np.uint16))
        return ReadReply(np.asarray(reply.registers, np.uint16))

    def close(self) -> None:
        self._client.close()
