"""The Modbus collector: one unit id, polled with the fewest reads its profile allows.

The connection (a :class:`~collectors.modbus.tcp.TcpLink`, or a serial line) is a *link*: devices
behind one gateway may share one (``connection: shared``), taking turns with one request in
flight, or each have their own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, Batch
from collectors.modbus.plan import plan_requests
from collectors.modbus.profile import ModbusProfile
from collectors.modbus.tcp import ReadReply, TcpLink
from collectors.plugin import DeviceUnreachable


class Link(Protocol):
    """A connection that reads registers; raises DeviceUnreachable (or TimeoutError) when it fails."""

    @property
    def where(self) -> str: ...

    async def connect(self) -> None: ...

    async def read(self, table: str, address: int, count: int, unit_id: int) -> ReadReply: ...

    def close(self) -> None: ...


#: Gateway exceptions that mean the unit behind it cannot be reached.
UNIT_DOWN = frozenset({10, 11})

#: The TCP link under the name earlier releases used.
ModbusLink = TcpLink


class ModbusCollector:
    """Polls one Modbus unit; signal indexes follow the profile's field order.

    A read answered with a Modbus exception marks its fields ``QUALITY_BAD_DEVICE``; a transport
    failure raises (the agent reconnects with backoff). So do the gateway's exceptions 10 (path
    unavailable) and 11 (target device failed to respond): the unit behind the gateway is down,
    whatever the gateway itself does.
    """

    def __init__(self, profile: ModbusProfile, link: Link, unit_id: int, now_ns: Callable[[], int]) -> None:
        self.profile, self.link, self.unit_id, self.now_ns = profile, link, unit_id, now_ns
        self.requests = plan_requests(profile.fields, profile.max_registers_per_request, profile.max_gap)
        self._index = [np.asarray(r.field_index, np.intp) for r in self.requests]
        self._signals = np.arange(len(profile.fields), dtype=np.int32)
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return f"modbus://{self.link.where}/{self.unit_id}"

    async def connect(self) -> None:
        await self.link.connect()

    async def collect(self) -> Batch:
        n = len(self.profile.fields)
        values = np.full(n, np.nan)
        quality = np.zeros(n, np.uint8)
        errors: list[str] = []
        for req, index in zip(self.requests, self._index, strict=True):
            reply = await self.link.read(req.table, req.address, req.count, self.unit_id)
            span = f"{req.table} {req.address}..{req.address + req.count - 1} ({req.count})"
            if reply.words is None:
                if reply.exception in UNIT_DOWN:
                    raise DeviceUnreachable(
                        f"unit {self.unit_id} behind {self.link.where}: {reply.exception_name}", link_ok=True
                    )
                quality[index] = QUALITY_BAD_DEVICE
                errors.append(f"{span}: {reply.exception_name}")
                continue
            if reply.words.shape[0] < req.count:
                quality[index] = QUALITY_BAD_DEVICE
                errors.append(f"{span}: {reply.words.shape[0]} of {req.count} answered")
                continue
            values[index] = req.plan.decode(reply.words)
        bad_number = ~np.isfinite(values) & (quality == 0)
        quality[bad_number] = QUALITY_BAD_DECODE
        self.last_error = "; ".join(errors) or None
        return Batch(np.full(n, self.now_ns(), np.int64), self._signals, values, quality)

    def health(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "reads": [f"{r.table} {r.address}..{r.address + r.count - 1} ({r.count})" for r in self.requests],
        }

    async def close(self) -> None:
        self.link.close()
