"""YAML with line numbers, and error messages that name file, line and field path.

Files are read with the YAML 1.2 core schema (:mod:`.yaml12`: ``20:00`` is text, ``yes`` is a
word), and a key given twice in one mapping is an error at its line, never silently overwritten.

Hostile or broken files are refused before they can cost memory or time: a file over
``MAX_BYTES``, nesting deeper than ``MAX_DEPTH`` levels, or aliases that would expand to more
than ``MAX_VALUES`` values (a "billion laughs" file) is an error naming the line. Messages never
echo a value under a secret-bearing key, nor the password of a URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_agent.collectors.profile import NAME_PATTERN, ONE_LINE_PATTERN, PROFILE_NAME_PATTERN
from edge_agent.config.types import DEVICE_NAME_PATTERN, ENDPOINT_PATTERN, TAG_KEY_PATTERN
from edge_agent.config.yaml12 import Yaml12Loader
from edge_agent.secrets import hide_url_password, is_secret_key

Loc = tuple[str | int, ...]

#: Limits on a configuration or profile file.
MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_VALUES = 200_000


class ConfigError(Exception):
    """Invalid configuration or profile; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class YamlDocument:
    """Parsed YAML plus the line (1-based) where each field path starts."""

    path: Path
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Iterable[str | int]) -> int:
        parts = tuple(loc)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Iterable[str | int], message: str) -> str:
        loc = tuple(loc)
        return f"{self.path}:{self.line_of(loc)}: {format_loc(loc) or '(top level)'}: {message}"


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            child = (*loc, int(k) if isinstance(k, str) and k.isdigit() else k)
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines)


def load_yaml(path: Path) -> YamlDocument:
    """Read and parse ``path``; syntax errors and hostile shapes become a ConfigError with the line."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError([f"{path}: {size:,} bytes is too large for a configuration file (limit {MAX_BYTES:,})"])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file: check the path"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        _check_shape(path, text)
        node = yaml.compose(text, Loader=Yaml12Loader)
        if node is not None:
            _check_expansion(path, node)
            twice = _duplicate_keys(path, node)
            if twice:
                raise ConfigError(twice)
        data = yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - Yaml12Loader is PyYAML's safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: YAML syntax error: {what}: fix the indentation or quoting"]) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDocument(path, data, lines)


def _check_shape(path: Path, text: str) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` (read from the event stream, which never recurses)."""
    depth = 0
    for event in yaml.parse(text, Loader=Yaml12Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                raise ConfigError(
                    [
                        f"{path}:{line}: nesting deeper than {MAX_DEPTH} levels: "
                        "a configuration never needs that many; flatten it"
                    ]
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _check_expansion(path: Path, root: yaml.Node) -> None:
    """Refuse aliases that expand the document to more than ``MAX_VALUES`` values (counted on the
    node graph, where an alias is one shared node: linear time whatever the expansion)."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order without recursion
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if children_done:
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            order.append(node)
            if sizes[id(node)] > MAX_VALUES:
                raise ConfigError(
                    [
                        f"{path}:{node.start_mark.line + 1}: aliases here expand to more than {MAX_VALUES:,} "
                        "values: write the values out, or use fewer nested aliases"
                    ]
                )
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _duplicate_keys(path: Path, root: yaml.Node) -> list[str]:
    """Every key given twice in one mapping (a later one would silently replace the first)."""
    problems: list[str] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, loc = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                line = key.start_mark.line + 1
                if name in first and name != "<<":
                    where = format_loc((*loc, name))
                    problems.append(
                        f"{path}:{line}: {where}: given twice (first at line {first[name]}): keep one; "
                        "a second one would silently replace the first"
                    )
                first.setdefault(name, line)
                stack.append((value, (*loc, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return sorted(problems, key=lambda p: int(p.split(":")[1]) if p.split(":")[1].isdigit() else 0)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


_HINTS = {
    "extra_forbidden": "unknown field: remove it or check its spelling",
    "missing": "required field is missing: add it",
}
#: What each pattern the models use asks for, in words.
_PATTERNS = {
    ONE_LINE_PATTERN: "one line of printable text: remove line breaks and control characters",
    TAG_KEY_PATTERN: "a tag name starts with a letter, then letters, digits, _ . or - (at most 64)",
    DEVICE_NAME_PATTERN: "use letters, digits, _ . or - only",
    PROFILE_NAME_PATTERN: "use letters, digits, _ . or - only",
    NAME_PATTERN: "a signal name starts with a letter or _, then letters, digits or _",
    ENDPOINT_PATTERN: "write a URL with its scheme, e.g. modbus://10.0.0.5:502 or opc.tcp://10.0.0.6:4840",
}


def validation_problems(
    doc: YamlDocument,
    exc: ValidationError,
    prefix: Loc = (),
    union_tags: set[str] | None = None,
    skip_whole: bool = False,
) -> list[str]:
    """One message per pydantic error, located in the YAML file.

    ``skip_whole`` leaves out errors of the whole document (found again, located, by a lint).
    ``union_tags`` are the names of tagged-union members (protocols, sink types) that pydantic
    puts into error locations; the YAML file has no such level.
    """
    problems = []
    for err in exc.errors(include_url=False):
        loc = prefix + _strip_union_tags(tuple(err["loc"]), union_tags or set())
        if skip_whole and len(loc) <= len(prefix):
            continue  # ``skip_whole``: errors of the whole document are reported where they arise
        hint = _HINTS.get(err["type"], err["msg"].removeprefix("Value error, "))
        if err["type"] == "string_pattern_mismatch":
            hint = _PATTERNS.get(str(err.get("ctx", {}).get("pattern")), hint)
        if loc and loc[-1] == "[key]":  # the name of an entry, not its value
            loc, hint = loc[:-1], f"the name: {hint}"
        shown = _shown(loc, err.get("input"))
        if err["type"] not in _HINTS and shown is not None and shown not in hint:
            hint += f" (got {shown})"
        problems.append(doc.problem(loc, hint))
    return problems


def _shown(loc: Loc, value: object) -> str | None:
    """How a wrong value is echoed in a message: never under a secret-bearing key, a URL without
    its password, nothing for a whole mapping or list."""
    if isinstance(value, dict | list) or any(is_secret_key(part) for part in loc):
        return None
    if isinstance(value, str) and "://" in value:
        value = hide_url_password(value)
    return repr(value)


def _strip_union_tags(loc: Loc, tags: set[str]) -> Loc:
    """pydantic puts the chosen member of a tagged union right after the list index (or at the top)."""
    out: list[str | int] = []
    for part in loc:
        after_index = not out or isinstance(out[-1], int)
        if isinstance(part, str) and part in tags and after_index:
            continue
        out.append(part)
    return tuple(out)
