"""The Modbus TCP collector. Every pymodbus call of the project lives in this module.

pymodbus has changed its API often; keeping it here means one file to touch on upgrade
(pinned to 3.16: ``device_id=`` and keyword ``count=``). One request is in flight per TCP
connection at a time, because many gateways (and pymodbus' own server) answer only one
request per read: devices behind the same gateway share one :class:`ModbusLink`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from collectors.batch import QUALITY_BAD_DECODE, QUALITY_BAD_DEVICE, Batch
from collectors.modbus.decode import decode_fields
from collectors.modbus.plan import plan_requests
from collectors.modbus.profile import ModbusProfile
from collectors.plugin import DeviceUnreachable

logging.getLogger("pymodbus").setLevel(logging.WARNING)


class ModbusLink:
    """One TCP connection to a device or gateway, shared by the unit ids behind it."""

    def __init__(self, host: str, port: int, timeout_s: float = 2.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._client: Any = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def connect(self) -> None:
        async with self._lock:
            if self.connected:
                return
            if self._client is not None:
                self._client.close()
            # retries=0 and reconnect_delay=0: the agent owns retries and backoff.
            client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=self.timeout_s, retries=0, reconnect_delay=0
            )
            ok = await client.connect()
            if not ok:
                client.close()
                raise DeviceUnreachable(f"no Modbus TCP answer at {self.host}:{self.port}")
            self._client = client

    async def read(self, table: str, address: int, count: int, unit_id: int) -> Any:
        """The pymodbus response of one read; raises DeviceUnreachable on transport failure."""
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise DeviceUnreachable(f"not connected to {self.host}:{self.port}")
            call = {
                "holding": client.read_holding_registers,
                "input": client.read_input_registers,
                "coil": client.read_coils,
                "discrete": client.read_discrete_inputs,
            }[table]
            try:
                return await call(address, count=count, device_id=unit_id)
            except (TimeoutError, ModbusException, OSError) as exc:
                client.close()
                raise DeviceUnreachable(
                    f"{self.host}:{self.port} unit {unit_id}: {table} read at {address} failed: {exc}"
                ) from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class ModbusCollector:
    """Polls one Modbus unit with the fewest requests its profile allows.

    ``collect()`` returns one batch whose signal indexes follow the profile's field order.
    A request answered with a Modbus exception marks its fields ``QUALITY_BAD_DEVICE``;
    a transport failure raises :class:`DeviceUnreachable`.
    """

    def __init__(
        self,
        profile: ModbusProfile,
        link: ModbusLink,
        unit_id: int,
        now_ns: Callable[[], int],
    ) -> None:
        self.profile, self.link, self.unit_id, self.now_ns = profile, link, unit_id, now_ns
        self.requests = plan_requests(profile.fields, profile.max_registers_per_request, profile.max_gap)
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return f"modbus://{self.link.host}:{self.link.port}/{self.unit_id}"

    async def connect(self) -> None:
        await self.link.connect()

    async def collect(self) -> Batch:
        n = len(self.profile.fields)
        values = np.full(n, np.nan)
        quality = np.zeros(n, np.uint8)
        errors: list[str] = []
        for req in self.requests:
            reply = await self.link.read(req.table, req.address, req.count, self.unit_id)
            index = np.asarray(req.field_index, np.intp)
            if reply.isError():
                quality[index] = QUALITY_BAD_DEVICE
                errors.append(f"{req.table}@{req.address}x{req.count}: {reply}")
                continue
            if req.table in ("coil", "discrete"):
                words = np.asarray(reply.bits[: req.count], dtype=np.uint16)
            else:
                words = np.asarray(reply.registers, dtype=np.uint16)
            if words.shape[0] < req.count:
                quality[index] = QUALITY_BAD_DEVICE
                errors.append(f"{req.table}@{req.address}: {words.shape[0]} of {req.count} registers")
                continue
            values[index] = decode_fields(words, req.decoders)
        bad_number = ~np.isfinite(values) & (quality == 0)
        quality[bad_number] = QUALITY_BAD_DECODE
        self.last_error = "; ".join(errors) or None
        return Batch.of(self.now_ns(), np.arange(n, dtype=np.int32), values, quality)

    def health(self) -> dict[str, Any]:
        return {
            "unit_id": self.unit_id,
            "reads": [f"{r.table} {r.address}..{r.address + r.count - 1} ({r.count})" for r in self.requests],
        }

    async def close(self) -> None:
        self.link.close()
