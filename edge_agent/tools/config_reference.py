"""``docs/configuration.md``: every field of ``agent.yaml``, generated from the config model.

Run ``python -m edge_agent.tools.config_reference`` after changing the model; a test fails when
the committed page differs from what the model says. Sections follow the file's nesting; a sink
``type:`` and a device protocol each get their own section, from what is registered.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edge_agent.collectors.durations import format_duration
from edge_agent.collectors.plugin import plugins
from edge_agent.config.model import Device, agent_config_model, device_model
from edge_agent.sinks.base import plugins as sink_plugins

PAGE = Path(__file__).parents[2] / "docs" / "configuration.md"
HEADER = """# `agent.yaml` reference

Generated from the configuration model by `python -m edge_agent.tools.config_reference`; do not
edit by hand. [`examples/agent.yaml`](../examples/agent.yaml) is a commented example, and
`edge-agent config show agent.yaml` prints a file with every default filled in.

Durations take a unit: `500ms`, `2s`, `5m`, `1h30m`, `1d` (a bare number is refused in a file).
`${VAR}` and `${VAR:-default}` are taken from the environment; a secret field `x` may be given as
`x_file: PATH` instead (docs: README, Secrets). A field marked *required* has no default.
"""


def _is_duration(info: FieldInfo) -> bool:
    return any(getattr(getattr(m, "func", None), "__name__", "") == "_duration_field" for m in info.metadata)


def _args(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation)


def _plain(annotation: Any) -> Any:
    """The type under ``Annotated`` and ``X | None``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _plain(_args(annotation)[0])
    if origin in (Union, types.UnionType):
        rest = [a for a in _args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _plain(rest[0])
    return annotation


def type_name(annotation: Any, info: FieldInfo | None = None) -> str:  # noqa: PLR0911 - a return per kind
    if info is not None and _is_duration(info):
        return "duration"
    annotation = _plain(annotation)
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in _args(annotation))
    if origin is list:
        return f"list of {type_name(_args(annotation)[0])}"
    if origin is dict:
        key, value = _args(annotation)
        return f"map of {type_name(key)} to {type_name(value)}"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in _args(annotation) if a is not type(None))
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "section"
    names = {str: "text", int: "integer", float: "number", bool: "true/false", Any: "any"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(info: FieldInfo) -> str:  # noqa: PLR0911 - a return per kind
    if info.is_required():
        return "*required*"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(section)"
        return f"`{json.dumps(value)}`"
    value = info.default
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    if value is None and "default" in extra:  # a detector's own default, or one derived from the others
        return f"`{extra['default']}`"
    if value is None or value is PydanticUndefined:
        return "none"
    if _is_duration(info) and isinstance(value, int | float):
        return f"`{format_duration(float(value))}`"
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _limits(info: FieldInfo) -> str:
    words = []
    for m in info.metadata:
        unit = " s" if _is_duration(info) else ""
        if isinstance(m, Ge):
            words.append(f">= {m.ge}{unit}")
        elif isinstance(m, Gt):
            words.append(f"> {m.gt}{unit}")
        elif isinstance(m, Le):
            words.append(f"<= {m.le}{unit}")
        elif isinstance(m, Lt):
            words.append(f"< {m.lt}{unit}")
        elif isinstance(m, MinLen) and m.min_length > 1:
            words.append(f"at least {m.min_length}")
        elif isinstance(m, MaxLen):
            words.append(f"at most {m.max_length} long")
    return ", ".join(words)


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|").strip()


def _nested(annotation: Any) -> list[type[BaseModel]]:
    """The sections a field holds (itself, a list's or map's items, union members)."""
    annotation = _plain(annotation)
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is list:
        return _nested(_args(annotation)[0])
    if origin is dict:
        return _nested(_args(annotation)[1])
    return []


def section(
    model: type[BaseModel],
    path: str,
    out: list[str],
    seen: dict[type[BaseModel], str],
    skip: frozenset[str] = frozenset(),
) -> None:
    """A table of ``model``'s fields at ``path``, then the sections it holds (each model once)."""
    seen[model] = path
    doc = model.__dict__.get("__doc__") or ""
    out.append(f"\n## `{path}`\n")
    if doc and not doc.startswith("The whole file"):
        out.append(_cell(inspect.cleandoc(doc)) + "\n")
    out.append("| field | type | default | limits | meaning |\n| --- | --- | --- | --- | --- |")
    children: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        origin = typing.get_origin(_plain(info.annotation))
        suffix = "[]" if origin is list else ".*" if origin is dict else ""
        meaning = info.description or ""
        for child in _nested(info.annotation):
            if child in seen:
                meaning += f" (as `{seen[child]}`)"
            else:
                children.append((f"{path}.{name}{suffix}", child))
                seen[child] = f"{path}.{name}{suffix}"
        out.append(
            f"| `{name}` | {_cell(type_name(info.annotation, info))} | {_cell(_default(info))} | "
            f"{_cell(_limits(info))} | {_cell(meaning)} |"
        )
    for child_path, child in children:
        section(child, child_path, out, seen)


def render() -> str:
    model = agent_config_model()
    out = [HEADER]
    seen: dict[type[BaseModel], str] = {}
    out.append("\n## The file\n\n| section | meaning |\n| --- | --- |")
    for name, info in model.model_fields.items():
        out.append(f"| `{name}` | {_cell(info.description or '')} |")
    for name in ("agent", "analytics", "kpis"):
        (child,) = _nested(model.model_fields[name].annotation)
        section(child, name, out, seen)
    for sink_type, sink in sorted(sink_plugins().items()):
        section(sink.config_model, f"sinks[] with type: {sink_type}", out, seen)
    shared = frozenset(Device.model_fields)
    section(Device, "devices[] (every protocol)", out, seen)
    for protocol, plugin in sorted(plugins().items()):
        schemes = ", ".join(f"{s}://" for s in plugin.schemes)
        section(device_model(plugin), f"devices[] with endpoint {schemes} ({protocol})", out, seen, shared)
    return "\n".join(out) + "\n"


def main() -> None:
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
