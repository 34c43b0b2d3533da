"""Modbus TCP framing (MBAP), written against the Modbus Messaging on TCP/IP Implementation Guide v1.0b.

A request is a 7-byte MBAP header (transaction id, protocol id 0, length, unit id) and a PDU
(function code, start address, quantity); the reply echoes the header and carries a byte count
and the data, or ``function | 0x80`` and an exception code. We keep one request in flight per
connection (many gateways, and pymodbus' own server, answer only one request per read) and
match replies by transaction id, so a late reply to a request that timed out is dropped rather
than taken for the next one. Replies are decoded with numpy: no Python object per register.

This is the hot path of the agent (a 10 ms poll of 10 units is 1,000 requests a second), which is
why it is ours and not a general-purpose client's: benchmarks/modbus.py measures it against
pymodbus' client in the same run.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from edge_agent.collectors.plugin import DeviceUnreachable

#: Read function codes by table (Modbus application protocol v1.1b3, 6.1 to 6.4).
FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}

#: Exception codes (Modbus application protocol v1.1b3, 7) with the names messages use.
EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

_HEADER = struct.Struct(">HHHB")
_REQUEST = struct.Struct(">HHHBBHH")


@dataclass(frozen=True, slots=True)
class ReadReply:
    """One read's answer: 16-bit words (registers, or one word per bit), or an exception code."""

    words: NDArray[np.uint16] | None
    exception: int | None = None

    @property
    def exception_name(self) -> str:
        code = self.exception or 0
        return f"exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})"


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 7:
            tid, pid, length, _unit = _HEADER.unpack_from(buffer)
            if pid != 0 or length < 2 or length > 254:
                self._fail(DeviceUnreachable(f"not a Modbus TCP reply (protocol id {pid}, length {length})"))
                return
            end = 6 + length
            if len(buffer) < end:
                return
            pdu = bytes(buffer[7:end])
            del buffer[:end]
            future = self.waiting.pop(tid, None)
            if future is not None and not future.done():
                future.set_result((pdu[0], pdu[1:]))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(DeviceUnreachable(f"connection closed by the device{f': {exc}' if exc else ''}"))

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)
        self.waiting.clear()
        if self.transport is not None:
            self.transport.close()


#: How often the reads in flight are checked for their time-out (s): a read times out between
#: its ``timeout_s`` and that plus this.
SWEEP_S = 0.1

_Reply = asyncio.Future[tuple[int, bytes]]


class ReadDeadlines:
    """Every read in flight on one event loop and when it times out, checked every ``SWEEP_S`` by
    one timer. A thousand devices at 1 s make a thousand reads a second: a timer each (a heap
    entry, cancelled a millisecond later) cost more than the read's own Python."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: dict[_Reply, float] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, future: _Reply, timeout_s: float) -> None:
        self.due[future] = self.loop.time() + timeout_s
        if self._handle is None:
            self._handle = self.loop.call_later(SWEEP_S, self._sweep)

    def discard(self, future: _Reply) -> None:
        self.due.pop(future, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        late = [f for f, at in self.due.items() if at <= now]
        for future in late:
            del self.due[future]
            if not future.done():  # the waiter gets a TimeoutError
                future.set_exception(TimeoutError())
        self._handle = self.loop.call_later(SWEEP_S, self._sweep) if self.due else None


_deadlines: dict[asyncio.AbstractEventLoop, ReadDeadlines] = {}


def deadlines_of(loop: asyncio.AbstractEventLoop) -> ReadDeadlines:
    """The deadlines of ``loop``'s reads (closed loops' are forgotten)."""
    found = _deadlines.get(loop)
    if found is None:
        for old in [k for k in _deadlines if k.is_closed()]:
            del _deadlines[old]
        found = _deadlines[loop] = ReadDeadlines(loop)
    return found


class TcpLink:
    """One TCP connection to a device or gateway; one request in flight at a time.

    Every wait is bounded (connecting and each read, by ``timeout_s``), so a poll through it
    cannot hang (``bounds_its_waits``: the poller adds no bound of its own).
    """

    bounds_its_waits = True

    def __init__(self, host: str, port: int, timeout_s: float = 2.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._protocol: _Protocol | None = None
        self._lock = asyncio.Lock()
        self._tid = 0
        self._deadlines: ReadDeadlines | None = None
        #: Connections made so far (devices sharing this link notice when it comes back).
        self.generation = 0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        p = self._protocol
        return p is not None and p.lost is None and p.transport is not None and not p.transport.is_closing()

    async def connect(self) -> None:
        async with self._lock:
            if self.connected:
                return
            self._close()
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout_s):
                    _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
            except (OSError, TimeoutError) as exc:
                raise DeviceUnreachable(f"no Modbus TCP answer at {self.where}: {exc or 'timed out'}") from exc
            self._protocol = protocol
            self.generation += 1

    async def read(self, table: str, address: int, count: int, unit_id: int) -> ReadReply:
        """``count`` registers (or bits) of ``table`` from ``address``; raises DeviceUnreachable."""
        function = FUNCTION[table]
        async with self._lock:
            protocol = self._protocol
            if protocol is None or not self.connected or protocol.transport is None:
                raise DeviceUnreachable(f"not connected to {self.where}")
            self._tid = tid = (self._tid + 1) & 0xFFFF
            loop = asyncio.get_running_loop()
            future: _Reply = loop.create_future()
            protocol.waiting[tid] = future
            protocol.transport.write(_REQUEST.pack(tid, 0, 6, unit_id, function, address, count))
            deadlines = self._deadlines
            if deadlines is None or deadlines.loop is not loop:
                deadlines = self._deadlines = deadlines_of(loop)
            deadlines.add(future, self.timeout_s)
            try:
                code, data = await future
            except TimeoutError:
                protocol.waiting.pop(tid, None)
                raise TimeoutError(
                    f"{self.where} unit {unit_id}: no reply to {table} {address}..{address + count - 1} "
                    f"within {self.timeout_s:g} s"
                ) from None
            finally:
                deadlines.discard(future)
        if code == function | 0x80:
            return ReadReply(None, data[0] if data else 0)
        if code != function or not data or len(data) - 1 < data[0]:
            raise DeviceUnreachable(f"{self.where} unit {unit_id}: malformed reply to function {function}")
        body = data[1 : 1 + data[0]]
        if function <= 2:
            bits = np.unpackbits(np.frombuffer(body, np.uint8), bitorder="little")[:count]
            return ReadReply(bits.astype(np.uint16))
        return ReadReply(np.frombuffer(body, ">u2").astype(np.uint16))

    def _close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    def close(self) -> None:
        self._close()
