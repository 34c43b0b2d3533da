"""The Modbus device profile: which registers and bits a model has and how to decode them.

Addresses are the 0-based protocol addresses a request carries (``address: 0`` is the first
holding register). Documentation that numbers registers Modicon-style (``40001`` is holding
address 0) can be copied as ``register: 40001`` instead of ``table`` and ``address``: the five-
digit form covers addresses 0..9998, the six-digit form (``400001``) the whole table.

>>> f = ModbusField.model_validate({"name": "v", "register": 30011, "type": "float32"})
>>> (f.table, f.address, f.width)
('input', 10, 2)
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from edge_agent.collectors.modbus.decode import TEXT_TYPES, WIDTH
from edge_agent.collectors.profile import (
    NAME_PATTERN,
    Finding,
    Measured,
    ProfileBase,
    Scale,
    SignalKind,
    SignalSpec,
    Strict,
    Unit,
)

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal[
    "int16",
    "uint16",
    "int32",
    "uint32",
    "float32",
    "int64",
    "uint64",
    "float64",
    "int8",
    "uint8",
    "bcd16",
    "bcd32",
    "bool",
    "string",
    "enum",
]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

#: Modicon register number prefixes (first digit) and their tables.
MODICON_TABLE = {0: "coil", 1: "discrete", 3: "input", 4: "holding"}

#: 16-bit registers each fixed-width field type occupies (``string``: its ``length``).
REGISTER_WIDTH: dict[str, int] = dict(WIDTH)


def from_modicon(register: int) -> tuple[str, int]:
    """``(table, 0-based address)`` of a Modicon register number (``40001`` or ``400001``).

    >>> from_modicon(40001), from_modicon(400010), from_modicon(1)
    (('holding', 0), ('holding', 9), ('coil', 0))
    """
    digits = 6 if register >= 100_000 else 5
    prefix, number = divmod(register, 10 ** (digits - 1))
    if prefix not in MODICON_TABLE or number < 1 or number > (65536 if digits == 6 else 9999):
        raise ValueError(
            f"register {register} is not a Modicon register number: use 00001-09999 (coils), 10001-19999 "
            "(discrete inputs), 30001-39999 (input registers), 40001-49999 (holding registers), or six digits "
            "(400001-465536); or give table and a 0-based address"
        )
    return MODICON_TABLE[prefix], number - 1


class ModbusField(Strict):
    """One value read from a Modbus device; ``value = raw * scale + offset``."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    table: Table
    address: Annotated[int, Field(ge=0, le=65535, description="0-based protocol address of the first register")]
    type: RegisterType = "uint16"
    byte_order: ByteOrder = Field(
        "ABCD",
        description="ABCD big-endian; CDAB word-swapped; BADC byte-swapped; DCBA little-endian",
    )
    length: Annotated[int, Field(ge=1, le=125, description="string: registers (two characters each)")] | None = None
    bit: (
        Annotated[int, Field(ge=0, le=15, description="bool in a register: bit 0 (least significant) to 15")] | None
    ) = None
    byte: Literal["high", "low"] | None = Field(None, description="int8/uint8: which byte of the register")
    values: dict[int, str] | None = Field(None, description="enum: register value -> name")
    scale: Scale = 1.0
    offset: Measured = 0.0
    unit: Unit = ""
    kind: SignalKind | None = None
    low: Measured | None = Field(None, description="engineering lower limit, in unit")
    high: Measured | None = Field(None, description="engineering upper limit, in unit")

    @model_validator(mode="before")
    @classmethod
    def _modicon(cls, data: Any) -> Any:
        if isinstance(data, dict) and "register" in data:
            data = dict(data)
            register = data.pop("register")
            if "address" in data:
                raise ValueError("give either register (Modicon, 40001) or address (0-based), not both")
            if not isinstance(register, int) or isinstance(register, bool):
                raise ValueError(f"register is a Modicon register number like 40001 (got {register!r})")
            table, address = from_modicon(register)
            if data.setdefault("table", table) != table:
                raise ValueError(f"register {register} is in the {table} table, not {data['table']}")
            data["address"] = address
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModbusField:
        bits = self.table in ("coil", "discrete")
        if bits and self.type != "bool":
            raise ValueError(f"a {self.table} is one bit: set type: bool (got {self.type})")
        if not bits and self.type == "bool" and self.bit is None:
            raise ValueError("type bool in a register needs bit: 0..15 (or use a coil or discrete table)")
        if self.bit is not None and (bits or self.type != "bool"):
            raise ValueError("bit: picks one bit of a register as type: bool; remove it or set type: bool")
        if (self.type == "string") != (self.length is not None):
            raise ValueError(
                "type string needs length: N (registers)" if self.type == "string" else "length is only for strings"
            )
        if (self.byte is not None) and self.type not in ("int8", "uint8"):
            raise ValueError("byte: high|low is only for int8 and uint8")
        if (self.type == "enum") != (self.values is not None):
            raise ValueError(
                "type enum needs values: {0: name, 1: name}" if self.type == "enum" else "values is only for enum"
            )
        if self.type in TEXT_TYPES and self.kind not in (None, "text"):
            raise ValueError(f"a {self.type} is a text: kind {self.kind} cannot apply")
        if self.address + self.width - 1 > 65535:
            raise ValueError("the field runs past register 65535")
        return self

    @property
    def width(self) -> int:
        return self.length or 0 if self.type == "string" else REGISTER_WIDTH[self.type]

    @property
    def signal_kind(self) -> str:
        return "text" if self.type in TEXT_TYPES else (self.kind or "analog")


def _raw_width(item: dict[str, Any]) -> int | None:
    type_ = item.get("type", "uint16")
    if type_ == "string":
        length = item.get("length")
        return length if isinstance(length, int) and length > 0 else None
    return REGISTER_WIDTH.get(type_) if isinstance(type_, str) else None


def _raw_place(item: dict[str, Any]) -> tuple[str, int] | None:
    if isinstance(item.get("register"), int):
        try:
            return from_modicon(item["register"])
        except ValueError:
            return None
    table, address = item.get("table"), item.get("address")
    if isinstance(table, str) and isinstance(address, int) and not isinstance(address, bool):
        return table, address
    return None


class ModbusProfile(ProfileBase):
    """A Modbus device model (TCP, RTU or RTU over TCP)."""

    protocol: Literal["modbus"]
    max_registers_per_request: Annotated[int, Field(ge=1, le=125)] = 125
    max_gap: Annotated[int, Field(ge=0, le=64, description="unused registers a request may span")] = 8
    fields: Annotated[list[ModbusField], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_and_disjoint(self) -> ModbusProfile:
        errors = [f for f in self.lint(self.model_dump()) if not f.warning]
        if errors:
            raise ValueError("; ".join(f.message for f in errors))
        return self

    @classmethod
    def lint(cls, data: dict[str, Any]) -> list[Finding]:
        """Repeated names, overlapping fields and Modicon-looking addresses, at each field."""
        items = data.get("fields")
        if not isinstance(items, list):
            return []
        found: list[Finding] = []
        seen: dict[str, int] = {}
        spans: dict[str, list[tuple[int, int, int]]] = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            name = item.get("name")
            if isinstance(name, str):
                if name in seen:
                    found.append(Finding(("fields", i, "name"), f"{name!r} repeats fields[{seen[name]}]: rename one"))
                seen.setdefault(name, i)
            place, width = _raw_place(item), _raw_width(item)
            if place is None or width is None:
                continue
            table, address = place
            if table in ("coil", "discrete"):
                width = 1
            spans.setdefault(table, []).append((address, address + width, i))
            if "register" not in item and table in ("holding", "input") and _modicon_like(table, address):
                found.append(
                    Finding(
                        ("fields", i, "address"),
                        f"address {address} looks like Modicon register {address} ({table} address "
                        f"{address % 10000 - 1}); address is 0-based: write register: {address} if that is meant",
                        warning=True,
                    )
                )
        for table, table_spans in spans.items():
            table_spans.sort()
            for (start_a, end_a, a), (start_b, _, b) in itertools.pairwise(table_spans):
                if start_b < end_a:
                    found.append(
                        Finding(
                            ("fields", b, "address"),
                            f"{_name(items[b])} ({table} {start_b}) overlaps {_name(items[a])} ({table} "
                            f"{start_a}..{end_a - 1}, fields[{a}]): give each its own registers",
                        )
                    )
        return found

    def signals(self) -> list[SignalSpec]:
        return [SignalSpec(f.name, f.signal_kind, f.unit, f.low, f.high) for f in self.fields]


def _modicon_like(table: str, address: int) -> bool:
    first = 4 if table == "holding" else 3
    return first * 10000 < address < (first + 1) * 10000


def _name(item: Any) -> str:
    return repr(item.get("name")) if isinstance(item, dict) else "?"
