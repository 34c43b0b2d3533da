"""YAML read as people mean it: the YAML 1.2 core schema on PyYAML's safe loader.

PyYAML implements YAML 1.1, where ``20:00`` is the number 1200 (base 60), ``yes``, ``no``, ``on``
and ``off`` are booleans, ``010`` is 8 (octal) and ``2026-12-01`` a date. In YAML 1.2's core schema,
which this loader follows, they are the text ``20:00``, the words ``yes`` ... ``off``, the number 10
and the text ``2026-12-01``: a shift that ends at ``20:00`` ends at 20:00.

Only these are typed: ``null``, ``~`` and nothing (null); ``true``/``false`` in any of their three
cases (booleans); ``[-+]?[0-9]+``, ``0o17`` and ``0x1F`` (integers); decimals with an optional
exponent, ``.inf`` and ``.nan`` (floats; the configuration refuses the last two where it takes a
number). Everything else is text.

>>> import yaml
>>> yaml.load("end: 20:00\\nenabled: yes\\nunit: 010\\nday: 2026-12-01\\nmask: 0x1F\\non: true", Loader=Yaml12Loader)
{'end': '20:00', 'enabled': 'yes', 'unit': 10, 'day': '2026-12-01', 'mask': 31, 'on': True}
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_FIRST = {
    "tag:yaml.org,2002:null": ["~", "n", "N", ""],
    "tag:yaml.org,2002:bool": list("tTfF"),
    "tag:yaml.org,2002:int": list("-+0123456789"),
    "tag:yaml.org,2002:float": list("-+0123456789."),
}


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's scalars (see the module docstring)."""


Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern in (
    ("tag:yaml.org,2002:bool", _BOOL),
    ("tag:yaml.org,2002:int", _INT),
    ("tag:yaml.org,2002:float", _FLOAT),
    ("tag:yaml.org,2002:null", _NULL),
):
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, _FIRST[_tag])
# The merge key (<<) is kept: anchors and aliases are how a file says "the same as above".
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)


def _float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = str(loader.construct_scalar(node)).lower()  # type: ignore[arg-type]
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text == ".nan":
        return math.nan
    return float(text)


def _text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """Timestamps are text in YAML 1.2 (a date field parses it itself)."""
    return loader.construct_scalar(node)  # type: ignore[arg-type]


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _float)
Yaml12Loader.add_constructor("tag:yaml.org,2002:timestamp", _text)

__all__ = ["Yaml12Loader"]
