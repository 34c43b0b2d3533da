"""Request planning: fewest reads that cover every field of a device.

Fields of one table are sorted by address and merged into one request while the span stays
within the per-request limit (125 registers, 2000 bits) and the hole between two fields is at
most ``max_gap`` registers (reading a few unused registers is cheaper than another round trip,
but some devices reject reads of unmapped addresses: set ``max_gap: 0`` for those).

>>> from edge_agent.collectors.modbus.profile import ModbusField
>>> fields = [ModbusField(name="a", table="holding", address=0),
...           ModbusField(name="b", table="holding", address=1, type="float32"),
...           ModbusField(name="c", table="holding", address=200)]
>>> [(r.table, r.address, r.count) for r in plan_requests(fields)]
[('holding', 0, 3), ('holding', 200, 1)]
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from edge_agent.collectors.modbus.decode import DecodePlan, FieldDecoder
from edge_agent.collectors.modbus.profile import ModbusField

#: Protocol limits per read request (Modbus application protocol v1.1b3, 6.1 to 6.4).
MAX_REGISTERS = 125
MAX_BITS = 2000


#: The names of a field that has none (one empty mapping, shared: a plant has 50,000 fields).
NO_NAMES: Mapping[int, str] = MappingProxyType({})


@dataclass(slots=True)
class Request:
    """One read: ``count`` registers (or bits) of ``table`` from ``address``."""

    table: str
    address: int
    count: int
    #: Indexes of the profile's fields this request carries, in profile order.
    field_index: list[int] = field(default_factory=list)
    decoders: list[FieldDecoder] = field(default_factory=list)
    _plan: DecodePlan | None = None

    @property
    def plan(self) -> DecodePlan:
        """The decoding of this request's reply, worked out once."""
        if self._plan is None or self._plan.size != len(self.decoders):
            self._plan = DecodePlan(self.decoders)
        return self._plan


def plan_requests(fields: Sequence[ModbusField], max_registers: int = MAX_REGISTERS, max_gap: int = 8) -> list[Request]:
    """Merge fields into requests; every field lands in exactly one request."""
    order = sorted(range(len(fields)), key=lambda i: (fields[i].table, fields[i].address))
    requests: list[Request] = []
    current: Request | None = None
    for i in order:
        f = fields[i]
        limit = MAX_BITS if f.table in ("coil", "discrete") else max_registers
        end = f.address + f.width
        if (
            current is not None
            and current.table == f.table
            and f.address - (current.address + current.count) <= max_gap
            and end - current.address <= limit
        ):
            current.count = max(current.count, end - current.address)
        else:
            current = Request(f.table, f.address, f.width)
            requests.append(current)
        current.field_index.append(i)
        current.decoders.append(field_decoder(f, f.address - current.address))
    return requests


def field_decoder(f: ModbusField, offset: int) -> FieldDecoder:
    """How to decode ``f`` when it starts ``offset`` registers into a reply (one decoder, frozen, for
    every device that reads the same field at the same offset: 1,000 devices of one profile)."""
    try:
        return _shared_decoder(f, offset)
    except TypeError:  # a field with a table of names cannot be a key: its own decoder
        return _decoder(f, offset)


@functools.lru_cache(maxsize=8192)
def _shared_decoder(f: ModbusField, offset: int) -> FieldDecoder:
    return _decoder(f, offset)


def _decoder(f: ModbusField, offset: int) -> FieldDecoder:
    return FieldDecoder(
        offset,
        f.type,
        f.byte_order,
        f.scale,
        f.offset,
        length=f.length or 0,
        bit=f.bit,
        byte=f.byte or "high",
        names=f.values or NO_NAMES,
    )


def split_request(req: Request, fields: Sequence[ModbusField]) -> list[Request]:
    """``req`` as one request per field (each field's own range), for a device that refused the
    merged read: fields that can be read then arrive even when a neighbour or a gap cannot."""
    out = []
    for i in req.field_index:
        f = fields[i]
        out.append(Request(f.table, f.address, f.width, [i], [field_decoder(f, 0)]))
    return out


def span(table: str, address: int, count: int) -> str:
    """A range as messages show it: ``holding 0..17 (18 registers)``."""
    unit = "bits" if table in ("coil", "discrete") else "registers"
    if count == 1:
        unit = unit[:-1]
    return f"{table} {address}..{address + count - 1} ({count} {unit})"
