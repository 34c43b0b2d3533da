"""The OPC UA device profile: which variables a model has; node ids may hold ``{placeholders}``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, model_validator

from edge_agent.collectors.durations import Duration
from edge_agent.collectors.profile import NAME_PATTERN, Measured, ProfileBase, SignalKind, SignalSpec, Strict, Unit

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: What each kind of node identifier looks like (OPC UA Part 6, 5.3.1.10).
_IDENTIFIER = {
    "i": re.compile(r"^\d{1,10}$"),
    "s": re.compile(r"^.+$"),
    "g": re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
    "b": re.compile(r"^[A-Za-z0-9+/]+={0,2}$"),
}
_IDENTIFIER_HINT = {
    "i": "a numeric identifier (i=) is a whole number, e.g. 'ns=2;i=1042'; a name is s=, e.g. 'ns=2;s=Temp'",
    "s": "a string identifier (s=) needs a name",
    "g": "a GUID identifier (g=) is written 8-4-4-4-12 hex digits, e.g. g=09087e75-8e5e-499b-954f-f2a9603db28a",
    "b": "an opaque identifier (b=) is base64",
}


class Deadband(Strict):
    """Report a change only beyond this: ``absolute`` in the node's unit, or ``percent`` of its
    EURange (the server must know the range)."""

    type: Literal["absolute", "percent"]
    value: Annotated[Measured, Field(gt=0)]


class OpcUaNode(Strict):
    """One OPC UA variable. ``node`` may hold ``{placeholders}`` filled from the instance.

    Scalars only: a node holding an array or a structure is reported as a bad reading (quality
    2) naming what it holds; declare one node per element instead.
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    node: Annotated[str, Field(min_length=3, description="node id, e.g. 'nsu=urn:x;s=M1.Temp' or 'ns=2;i=7'")]
    subscribe: bool = Field(False, description="deliver every change (exact source timestamps)")
    poll: bool = Field(
        True, description="read each poll; false (subscribed nodes): only changes, the latest value reported per poll"
    )
    data_type: str = Field("", description="the server's DataType, as browsed (informational)")
    sampling_interval: Duration | None = Field(
        None, description="subscribe: how often the server samples the value (default: the publishing interval)"
    )
    queue_size: Annotated[
        int,
        Field(
            ge=0,
            le=10_000,
            description="subscribe: changes the server queues (0: the samples of 1 s or 2 publishes)",
        ),
    ] = 0
    deadband: Deadband | None = None
    unit: Unit = ""
    kind: SignalKind = "analog"
    low: Measured | None = None
    high: Measured | None = None

    @model_validator(mode="after")
    def _node_form(self) -> OpcUaNode:
        if not self.subscribe and (self.sampling_interval is not None or self.queue_size or self.deadband):
            raise ValueError(
                "sampling_interval, queue_size and deadband apply to subscribed nodes: set subscribe: true"
            )
        if not self.subscribe and not self.poll:
            raise ValueError("a node that is neither polled nor subscribed is never read: set subscribe: true")
        text = _PLACEHOLDER.sub("1", self.node)
        match = re.match(r"^(?:nsu=[^;]+;|ns=\d+;)?([isgb])=(.+)$", text)
        if not match:
            raise ValueError(
                f"node {self.node!r} is not an OPC UA node id: write 'ns=2;s=Name', 'nsu=URI;s=Name' or 'i=2258'"
            )
        kind, identifier = match.groups()
        if not _IDENTIFIER[kind].match(identifier):
            raise ValueError(f"node {self.node!r}: {_IDENTIFIER_HINT[kind]}")
        return self


class OpcUaProfile(ProfileBase):
    """An OPC UA device model."""

    protocol: Literal["opcua"]
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

    def signals(self) -> list[SignalSpec]:
        return [SignalSpec(n.name, n.kind, n.unit, n.low, n.high) for n in self.nodes]


def fill_placeholders(template: str, values: dict[str, str]) -> str:
    def _sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(key)
        return values[key]

    return _PLACEHOLDER.sub(_sub, template)
