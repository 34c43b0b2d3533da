"""Device profiles: the declarative description of a device *model* (pydantic, extra fields forbidden).

A profile says which registers or nodes a model has, how to decode them, and their units. Which
machine an instance is, where it is reached and what its signals mean for OEE is the agent
configuration's job, not the profile's.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Table = Literal["holding", "input", "coil", "discrete"]
RegisterType = Literal["int16", "uint16", "int32", "uint32", "float32", "bool"]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
SignalKind = Literal["analog", "state", "counter", "energy"]

#: 16-bit registers each field type occupies.
REGISTER_WIDTH: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "bool": 1,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusField(_Strict):
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


class ModbusProfile(_Strict):
    """A Modbus TCP device model."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    protocol: Literal["modbus"]
    description: str = ""
    vendor: str = ""
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


class OpcUaNode(_Strict):
    """One OPC UA variable. ``node`` may hold ``{placeholders}`` filled from the instance."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    node: Annotated[str, Field(min_length=3, description="node id, e.g. 'nsu=urn:x;s=M1.Temp' or 'ns=2;i=7'")]
    subscribe: bool = Field(False, description="deliver every change (exact source timestamps)")
    unit: str = ""
    kind: SignalKind = "analog"
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _node_form(self) -> OpcUaNode:
        text = _PLACEHOLDER.sub("x", self.node)
        if not re.match(r"^(nsu=[^;]+;|ns=\d+;)?[isgb]=.+$", text):
            raise ValueError(
                f"node {self.node!r} is not an OPC UA node id: write 'ns=2;s=Name', 'nsu=URI;s=Name' or 'i=2258'"
            )
        return self


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class OpcUaProfile(_Strict):
    """An OPC UA device model."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]
    protocol: Literal["opcua"]
    description: str = ""
    vendor: str = ""
    nodes: Annotated[list[OpcUaNode], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> OpcUaProfile:
        seen: set[str] = set()
        for i, n in enumerate(self.nodes):
            if n.name in seen:
                raise ValueError(f"nodes[{i}].name {n.name!r} is used twice")
            seen.add(n.name)
        return self

    def placeholders(self) -> set[str]:
        return {m for n in self.nodes for m in _PLACEHOLDER.findall(n.node)}


DeviceProfile = Annotated[ModbusProfile | OpcUaProfile, Field(discriminator="protocol")]


def signal_names(profile: ModbusProfile | OpcUaProfile) -> list[str]:
    """Signal names in the order collectors index them."""
    if isinstance(profile, ModbusProfile):
        return [f.name for f in profile.fields]
    return [n.name for n in profile.nodes]


def fill_placeholders(template: str, values: dict[str, str]) -> str:
    def _sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(key)
        return values[key]

    return _PLACEHOLDER.sub(_sub, template)


def builtin_profile_dir() -> Path:
    """Folder of the profiles shipped with the package."""
    return Path(__file__).with_name("profiles")
