"""``edge-agent profile browse``: walk an OPC UA server's address space and write a profile.

From ``--root`` (default: the Objects folder) down ``--depth`` levels, every scalar variable
(properties such as EngineeringUnits left out, and the server's own namespace 0) becomes a node
with its ``nsu=`` namespace URI (never an index, which may change when the server restarts), its
data type and its engineering unit. Names come from the browse path below the root.

Where several sibling objects have the same variables and node ids that differ only by the
object's name (``s=M1.Temp``, ``s=M2.Temp``), one set is written with ``{machine}`` in the node
ids: each device entry then fills it (``params: {machine: M1}``), one profile for many machines.

Kinds are guessed where the companion specifications name things: OPC 40001 (Machinery)
``MachineryItemState``/``CurrentState`` and names ending in ``State`` are ``state``; OPC 40501
(Machine Tools) production counters (``PartsProduced``, ``ProductionCounter``, names with
``Count``) are ``counter``; numbers with a unit of energy are ``energy``. Check them: the guess
is only where to start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

NUMERIC_TYPES = {
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "Number",
    "Integer",
    "UInteger",
    "Enumeration",
}
_PROPERTY_TYPE = 68  # PropertyType (i=68): properties of a variable, not signals
_ENERGY_UNITS = {"kWh", "Wh", "MWh", "J", "kJ", "MJ"}


@dataclass
class Variable:
    path: list[str]
    node_id: str
    data_type: str
    unit: str
    #: The object the variable sits under (its browse name) and that object's node id text.
    parent: str


async def browse(client: Any, root: str = "i=85", depth: int = 6) -> list[Variable]:
    """Every scalar variable under ``root`` (a connected asyncua client)."""
    namespaces = await client.get_namespace_array()
    found: list[Variable] = []
    await _walk(client, client.get_node(root), [], depth, namespaces, found, "")
    return found


async def _walk(
    client: Any, node: Any, path: list[str], depth: int, ns: list[str], out: list[Variable], parent: str
) -> None:
    if depth < 0:
        return
    children = await node.get_children(refs=ObjectIds.HierarchicalReferences)
    for child in children:
        if child.nodeid.NamespaceIndex == 0:
            continue  # the server's own objects (Server, types)
        name = (await child.read_browse_name()).Name
        cls = await child.read_node_class()
        if cls == ua.NodeClass.Object:
            await _walk(client, child, [*path, name], depth - 1, ns, out, name)
        elif cls == ua.NodeClass.Variable:
            type_def = await child.read_type_definition()
            if type_def is not None and type_def.Identifier == _PROPERTY_TYPE and type_def.NamespaceIndex == 0:
                continue
            if name == "CurrentState":  # a state machine's state: its number (OPC 40001 MachineryItemState)
                number = await _child(child, "0:Number")
                if number is not None:
                    out.append(Variable([*path, name], _nsu(number.nodeid, ns), "UInt32", "", parent))
                    continue
            rank = await child.read_attribute(AttributeIds.ValueRank)
            if rank.Value.Value not in (-1, None):
                continue  # arrays are not collected
            data_type = await _type_name(client, await child.read_data_type())
            out.append(Variable([*path, name], _nsu(child.nodeid, ns), data_type, await _unit(child), parent))
            await _walk(client, child, [*path, name], depth - 1, ns, out, parent)


async def _child(node: Any, path: str) -> Any:
    try:
        return await node.get_child(path)
    except Exception:
        return None


async def _type_name(client: Any, type_id: Any) -> str:
    try:
        return str((await client.get_node(type_id).read_browse_name()).Name)
    except Exception:
        return str(type_id.to_string())


async def _unit(node: Any) -> str:
    try:
        eu = await node.get_child("0:EngineeringUnits")
        info = await eu.read_value()
    except Exception:
        return ""
    text = getattr(getattr(info, "DisplayName", None), "Text", None)
    return str(text) if text else ""


def _nsu(node_id: Any, namespaces: list[str]) -> str:
    text = str(node_id.to_string())
    rest = text.split(";", 1)[1] if text.startswith("ns=") else text
    return f"nsu={namespaces[node_id.NamespaceIndex]};{rest}"


def _name(parts: list[str]) -> str:
    text = "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_") for p in parts if p)
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text).lower()
    text = re.sub(r"_+", "_", text).strip("_") or "signal"
    return text if re.match(r"^[A-Za-z_]", text) else f"s_{text}"


def _kind(path: list[str], data_type: str, unit: str) -> str | None:
    last = path[-1]
    joined = "/".join(path)
    if "MachineryItemState" in joined or last.endswith("State") or last == "CurrentState":
        return "state"
    if re.search(r"Count|PartsProduced|ProductionCounter", last):
        return "counter"
    if unit in _ENERGY_UNITS:
        return "energy"
    return None


def to_profile(variables: list[Variable], name: str, description: str = "") -> tuple[dict[str, Any], list[str]]:
    """The profile (as data for YAML) and notes (comments) for ``variables``."""
    notes: list[str] = []
    groups: dict[str, list[Variable]] = {}
    for v in variables:
        groups.setdefault(v.parent, []).append(v)
    shape = {p: tuple(sorted("/".join(v.path[-1:]) for v in vs)) for p, vs in groups.items()}
    by_shape: dict[tuple[str, ...], list[str]] = {}
    for parent, key in shape.items():
        by_shape.setdefault(key, []).append(parent)
    chosen: list[Variable] = []
    templated = False
    for parents in by_shape.values():
        template = _template(groups, parents) if len(parents) > 1 else None
        if template is not None:
            templated = True
            chosen += template
            notes.append(f"{{machine}}: one of {', '.join(sorted(parents))} (params: {{machine: ...}} per device)")
        else:
            for parent in parents:
                chosen += groups[parent]
    nodes, skipped = _entries(chosen, templated)
    if skipped:
        notes.append(
            "left out (not numbers; the OPC UA collector reads numbers and booleans): "
            + ", ".join(f"{'/'.join(v.path)} ({v.data_type})" for v in skipped[:20])
            + (" ..." if len(skipped) > 20 else "")
        )
    profile = {"name": name, "protocol": "opcua", "description": description, "nodes": nodes}
    return profile, notes


def _entries(chosen: list[Variable], templated: bool) -> tuple[list[dict[str, Any]], list[Variable]]:
    """Profile entries of the numeric variables; the others, left out."""
    nodes: list[dict[str, Any]] = []
    seen: set[str] = set()
    skipped = []
    for v in chosen:
        if v.data_type not in NUMERIC_TYPES:
            skipped.append(v)
            continue
        name = _name(v.path[-1:] if templated else v.path)
        base, k = name, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        entry: dict[str, Any] = {"name": name, "node": v.node_id, "data_type": v.data_type}
        kind = _kind(v.path, v.data_type, v.unit)
        if kind:
            entry["kind"] = kind
        if v.unit:
            entry["unit"] = v.unit
        if kind == "state":
            entry["subscribe"] = True
        nodes.append(entry)
    return nodes, skipped


def _template(groups: dict[str, list[Variable]], parents: list[str]) -> list[Variable] | None:
    """The variables of ``parents[0]`` with its name replaced by ``{machine}``, when every sibling's
    node ids are the same text with its own name."""
    first = parents[0]
    out = []
    for v in sorted(groups[first], key=lambda v: v.path[-1]):
        if first not in v.node_id:
            return None
        out.append(Variable(v.path, v.node_id.replace(first, "{machine}"), v.data_type, v.unit, "{machine}"))
    for other in parents[1:]:
        ids = sorted(v.node_id for v in groups[other])
        if ids != sorted(v.node_id.replace("{machine}", other) for v in out):
            return None
    return out
