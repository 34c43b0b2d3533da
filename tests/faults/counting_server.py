"""A Modbus TCP server that numbers every reply, for fault tests (a real server on loopback).

Written from the Modbus application protocol specification (MBAP header, function 3, exception
replies), independently of the agent's client. Each unit id has holding registers:

* 0-1: the reply's sequence number for that unit (uint32, big-endian), +1 per reply;
* 2: the machine state (1 running);
* 3: a part counter (uint16, wraps), +1 every ``part_every`` replies;
* 100-103 and 104-105: ``reading(seq)`` as a float64 and a float32 (big-endian), when the unit
  has a ``reading``: tests send exact values, extreme ones included, reply by reply;
* 4 and up otherwise: ``register + unit`` (static values).

Behaviours per unit (:class:`Unit`): ``exception`` (answer every read with that code, e.g. 11),
``delay_s`` (answer late), ``cut`` (send half a reply, then close), ``silent`` (accept, never
answer). The server runs its own event loop in a thread; :meth:`CountingServer.stop` closes
the port and every connection, :meth:`CountingServer.start` opens it again (counters kept, or
reset with ``reset_counts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Unit:
    seq: int = 0
    state: int = 1
    parts: int = 0
    part_every: int = 1
    exception: int | None = None
    delay_s: float = 0.0
    cut: bool = False
    silent: bool = False
    #: The value of registers 100-105 (float64, float32) in the reply numbered ``seq``.
    reading: Callable[[int], float] | None = None
    #: Sequence numbers answered (in order), for the test to compare with what landed.
    answered: list[int] = field(default_factory=list)
    #: When (time.monotonic) each request arrived and each answer left, for ordering checks.
    requested_at: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)


class CountingServer:
    def __init__(self, port: int, units: dict[int, Unit]) -> None:
        self.port, self.units = port, units
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="counting-modbus", daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.lock = threading.Lock()

    # -- control (any thread) ----------------------------------------------------------------
    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset_counts(self) -> None:
        """A restart of the device: counters start again from 0."""
        with self.lock:
            for unit in self.units.values():
                unit.parts = 0

    # -- the server (its own loop) ---------------------------------------------------------------
    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, proto, length, unit_id = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                reply = self._answer(unit_id, pdu)
                unit = self.units.get(unit_id)
                if unit is not None:
                    unit.requested_at.append(time.monotonic())
                if reply is None or (unit is not None and unit.silent):
                    continue
                if unit is not None and unit.delay_s:
                    await asyncio.sleep(unit.delay_s)
                frame = struct.pack(">HHHB", tid, proto, len(reply) + 1, unit_id) + reply
                if unit is not None and unit.cut:
                    writer.write(frame[: len(frame) // 2])
                    await writer.drain()
                    writer.close()
                    return
                writer.write(frame)
                await writer.drain()
                if unit is not None:
                    unit.answered_at.append(time.monotonic())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def _answer(self, unit_id: int, pdu: bytes) -> bytes | None:
        function = pdu[0]
        unit = self.units.get(unit_id)
        if unit is None:
            return bytes([function | 0x80, 11])  # the gateway found no such unit
        if unit.exception is not None:
            return bytes([function | 0x80, unit.exception])
        if function != 3 or len(pdu) != 5:
            return bytes([function | 0x80, 1])
        address, count = struct.unpack(">HH", pdu[1:5])
        with self.lock:
            unit.seq += 1
            if unit.seq % unit.part_every == 0:
                unit.parts = (unit.parts + 1) % 65536
            unit.answered.append(unit.seq)
            registers = {0: unit.seq >> 16, 1: unit.seq & 0xFFFF, 2: unit.state, 3: unit.parts}
            if unit.reading is not None:
                value = unit.reading(unit.seq)
                words = struct.unpack(">4H", struct.pack(">d", value)) + _float32_words(value)
                registers.update(zip(range(100, 106), words, strict=True))
        words = [registers.get(a, (a + unit_id) & 0xFFFF) for a in range(address, address + count)]
        return bytes([3, 2 * count]) + struct.pack(f">{count}H", *words)


def _float32_words(value: float) -> tuple[int, ...]:
    """``value`` as a big-endian float32 (its largest magnitude where float64 goes beyond)."""
    try:
        packed = struct.pack(">f", value)
    except OverflowError:
        packed = struct.pack(">f", float("inf") if value > 0 else float("-inf"))
    return struct.unpack(">2H", packed)


PROFILE = """\
name: counting-device
protocol: modbus
description: the fault tests' counting server
fields:
  - {{name: seq, table: holding, address: 0, type: uint32, byte_order: ABCD}}
  - {{name: state, table: holding, address: 2, type: uint16, kind: state}}
  - {{name: parts, table: holding, address: 3, type: uint16, kind: counter}}
{extra}"""


READINGS = """\
  - {name: reading, table: holding, address: 100, type: float64, byte_order: ABCD}
  - {name: reading32, table: holding, address: 104, type: float32, byte_order: ABCD}
"""


def profile_yaml(extra_registers: int = 0, readings: bool = False) -> str:
    """The device profile of a counting unit, with ``extra_registers`` more values (and the
    analog ``reading`` registers)."""
    extra = "".join(
        f"  - {{name: r{a}, table: holding, address: {a}, type: uint16}}\n" for a in range(4, 4 + extra_registers)
    )
    return PROFILE.format(extra=extra + (READINGS if readings else ""))
