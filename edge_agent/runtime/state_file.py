"""The analytics state as bytes that cannot run code when read back (not pickle).

The state of the OEE engines and the anomaly scorer is plain data: numpy arrays, numbers,
strings, lists and dicts, held by objects of the ``analytics`` package. It is written as an
``.npz`` archive (``numpy.load`` with ``allow_pickle=False`` reads it): every array is a member,
and one member holds the rest as JSON, where an object is ``{"o": "module:QualName", "a": {...}}``.

Reading imports nothing and calls no constructor: a class must be one of the analytics' own, in a
module already imported (``sys.modules``) under a trusted package; the object is made with
``object.__new__`` and its attributes are set one by one. Objects reached twice (a detector that
others read) come back as one object.

>>> import numpy as np
>>> from edge_agent.analytics.alarms import Alarms
>>> alarms = Alarms(3)
>>> back = loads(dumps({"alarms": alarms, "same": alarms, "x": np.arange(3.0), "t": (1, "a", None)}))
>>> back["alarms"] is back["same"], back["alarms"].active.tolist(), back["x"].tolist(), back["t"]
(True, [False, False, False], [0.0, 1.0, 2.0], (1, 'a', None))
>>> value = loads(dumps(np.float64("nan")))
>>> type(value).__name__, bool(np.isnan(value))
('float64', True)
"""

from __future__ import annotations

import datetime
import io
import json
import math
import sys
import zipfile
import zoneinfo
from collections.abc import Callable
from typing import Any

import numpy as np

#: Packages whose classes the state may hold.
TRUSTED = ("edge_agent.analytics.",)
_JSON = "__state__.json"


class StateFormatError(ValueError):
    """The bytes are not a state this version can read (or hold a class it does not trust)."""


def dumps(value: Any) -> bytes:
    """``value`` as ``.npz`` bytes; raises TypeError for what cannot be written as data."""
    arrays: dict[str, np.ndarray] = {}
    ids: dict[int, int] = {}
    keep: list[Any] = []  # objects stay alive while encoding, so ids stay unique
    tree = _encode(value, arrays, ids, keep)
    out = io.BytesIO()
    members = {f"a{i}": a for i, a in enumerate(arrays.values())}
    members[_JSON] = np.frombuffer(json.dumps(tree, allow_nan=False).encode(), np.uint8)
    np.savez(out, **members)  # type: ignore[arg-type]
    return out.getvalue()


def loads(blob: bytes) -> Any:
    """What :func:`dumps` wrote; raises :class:`StateFormatError` for anything else."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
        tree = json.loads(members.pop(_JSON).tobytes().decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise StateFormatError(f"not an analytics state: {exc}") from None
    return _decode(tree, members, {})


def _encode(value: Any, arrays: dict[str, np.ndarray], ids: dict[int, int], keep: list[Any]) -> Any:  # noqa: PLR0911, PLR0912
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        return {"s": value.dtype.str, "v": _encode(value.item(), arrays, ids, keep)}
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"f": repr(value)}
    if id(value) in ids:
        return {"r": ids[id(value)]}
    ref = ids[id(value)] = len(ids)
    keep.append(value)
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("an array of Python objects is not data")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"n": key, "i": ref}
    if isinstance(value, list):
        return {"l": [_encode(v, arrays, ids, keep) for v in value], "i": ref}
    if isinstance(value, tuple):
        return {"t": [_encode(v, arrays, ids, keep) for v in value], "i": ref}
    if isinstance(value, set | frozenset):
        return {"set": [_encode(v, arrays, ids, keep) for v in value], "i": ref}
    if isinstance(value, dict):
        items = [[_encode(k, arrays, ids, keep), _encode(v, arrays, ids, keep)] for k, v in value.items()]
        return {"d": items, "i": ref}
    if isinstance(value, datetime.datetime):  # before date: a datetime is a date too
        return {"datetime": value.isoformat(), "i": ref}
    if isinstance(value, datetime.date):
        return {"date": value.isoformat(), "i": ref}
    if isinstance(value, datetime.timedelta):
        return {"timedelta": [value.days, value.seconds, value.microseconds], "i": ref}
    if isinstance(value, datetime.time):
        return {"time": value.isoformat(), "i": ref}
    if isinstance(value, zoneinfo.ZoneInfo):
        return {"tz": value.key, "i": ref}
    if isinstance(value, np.dtype):
        return {"dtype": value.str, "i": ref}
    cls = type(value)
    name = f"{cls.__module__}:{cls.__qualname__}"
    if not cls.__module__.startswith(TRUSTED):
        raise TypeError(f"{name} is not analytics state")
    attrs = dict(getattr(value, "__dict__", {}))
    for klass in cls.__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if slot not in ("__dict__", "__weakref__") and hasattr(value, slot):
                attrs[slot] = getattr(value, slot)
    return {"o": name, "a": {k: _encode(v, arrays, ids, keep) for k, v in attrs.items()}, "i": ref}


def _trusted_class(name: str) -> type:
    module_name, _, qualname = name.partition(":")
    module = sys.modules.get(module_name) if module_name.startswith(TRUSTED) else None
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type) or found.__module__ != module_name:
        raise StateFormatError(f"the state holds {name!r}, which is not an analytics class of this version")
    return found


def _decode(tree: Any, arrays: dict[str, np.ndarray], made: dict[int, Any]) -> Any:
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    if not isinstance(tree, dict):
        raise StateFormatError(f"unexpected {type(tree).__name__} in the state")
    if "r" in tree:
        return made[int(tree["r"])]
    if "f" in tree:
        return float(tree["f"])
    if "s" in tree:
        return np.dtype(tree["s"]).type(_decode(tree["v"], arrays, made))
    kind = next((k for k in _MAKERS if k in tree), None)
    if kind is None:
        raise StateFormatError(f"unknown entry {sorted(tree)} in the state")
    return _MAKERS[kind](tree, arrays, made, int(tree["i"]))


Maker = Callable[[dict[str, Any], dict[str, np.ndarray], dict[int, Any], int], Any]


def _array(tree: dict[str, Any], arrays: dict[str, np.ndarray], made: dict[int, Any], ref: int) -> Any:
    made[ref] = value = arrays[tree["n"]].copy()
    return value


def _sequence(tree: dict[str, Any], arrays: dict[str, np.ndarray], made: dict[int, Any], ref: int) -> Any:
    items: list[Any] = []
    made[ref] = items  # a list may hold itself; a tuple or a set is made once its items are
    kind = next(k for k in ("l", "t", "set") if k in tree)
    items += [_decode(v, arrays, made) for v in tree[kind]]
    made[ref] = {"l": list, "t": tuple, "set": set}[kind](items) if kind != "l" else items
    return made[ref]


def _mapping(tree: dict[str, Any], arrays: dict[str, np.ndarray], made: dict[int, Any], ref: int) -> Any:
    mapping: dict[Any, Any] = {}
    made[ref] = mapping
    for k, v in tree["d"]:
        mapping[_decode(k, arrays, made)] = _decode(v, arrays, made)
    return mapping


def _plain(tree: dict[str, Any], arrays: dict[str, np.ndarray], made: dict[int, Any], ref: int) -> Any:
    if "time" in tree:
        made[ref] = datetime.time.fromisoformat(tree["time"])
    elif "datetime" in tree:
        made[ref] = datetime.datetime.fromisoformat(tree["datetime"])
    elif "date" in tree:
        made[ref] = datetime.date.fromisoformat(tree["date"])
    elif "timedelta" in tree:
        made[ref] = datetime.timedelta(*tree["timedelta"])
    elif "tz" in tree:
        made[ref] = zoneinfo.ZoneInfo(tree["tz"])
    else:
        made[ref] = np.dtype(tree["dtype"])
    return made[ref]


def _object(tree: dict[str, Any], arrays: dict[str, np.ndarray], made: dict[int, Any], ref: int) -> Any:
    cls = _trusted_class(tree["o"])
    obj: Any = object.__new__(cls)
    made[ref] = obj
    for k, v in tree["a"].items():
        object.__setattr__(obj, k, _decode(v, arrays, made))
    return obj


_MAKERS: dict[str, Maker] = {
    "n": _array,
    "l": _sequence,
    "t": _sequence,
    "set": _sequence,
    "d": _mapping,
    "time": _plain,
    "datetime": _plain,
    "date": _plain,
    "timedelta": _plain,
    "tz": _plain,
    "dtype": _plain,
    "o": _object,
}


__all__ = ["StateFormatError", "dumps", "loads"]
