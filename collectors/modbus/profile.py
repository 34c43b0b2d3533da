"""The Modbus device profile: which registers and bits a model has and how to decode them."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, model_validator

from collectors.profile import NAME_PATTERN, ProfileBase, SignalKind, SignalSpec, Strict

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32", "bool"]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

#: 16-bit registers each field type occupies.
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "bool": 1,
}


class ModbusField(Strict):
    """One value read from a Modbus device; ``value = raw * scale + offset``."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    table: Table
    address: Annotated[int, Field(ge=0, le=65535, description="0-based register or bit address")]
    type: RegisterType = "uint16"
    byte_order: ByteOrder = Field(
        "ABCD",
        description="ABCD big-endian; CDAB word-swapped; BADC byte-swapped; DCBA little-endian",
    )
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    kind: SignalKind = "analog"
    low: float | None = Field(None, description="engineering lower limit, in unit")
    high: float | None = Field(None, description="engineering upper limit, in unit")

    @model_validator(mode="after")
    def _bits_are_bools(self) -> ModbusField:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} is one bit: set type: bool (got {self.type})")
        if self.table in ("holding", "input") and self.type == "bool":
            raise ValueError("type bool is for coil and discrete tables; registers use int16/uint16")
        if self.address + REGISTER_WIDTH[self.type] - 1 > 65535:
            raise ValueError("the field runs past register 65535")
        return self

    @property
    def width(self) -> int:
        return REGISTER_WIDTH[self.type]


class ModbusProfile(ProfileBase):
    """A Modbus device model (TCP or serial)."""

    protocol: Literal["modbus"]
    max_registers_per_request: Annotated[int, Field(ge=1, le=125)] = 125
    max_gap: Annotated[int, Field(ge=0, le=64, description="unused registers a request may span")] = 8
    fields: Annotated[list[ModbusField], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_and_disjoint(self) -> ModbusProfile:
        seen: dict[str, int] = {}
        for i, f in enumerate(self.fields):
            if f.name in seen:
                raise ValueError(f"fields[{i}].name {f.name!r} repeats fields[{seen[f.name]}]")
            seen[f.name] = i
        by_table: dict[str, list[tuple[int, int, str]]] = {}
        for f in self.fields:
            by_table.setdefault(f.table, []).append((f.address, f.address + f.width, f.name))
        for table, spans in by_table.items():
            spans.sort()
            for (_, end_a, name_a), (start_b, _, name_b) in itertools.pairwise(spans):
                if start_b < end_a:
                    raise ValueError(
                        f"fields {name_a!r} and {name_b!r} overlap in the {table} table: give each its own registers"
                    )
        return self

    def signals(self) -> list[SignalSpec]:
        return [SignalSpec(f.name, f.kind, f.unit, f.low, f.high) for f in self.fields]
