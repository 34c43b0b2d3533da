"""Register decoding, vectorised: 16-bit words in, engineering values (float64) or texts out.

Byte orders name where the bytes of a big-endian value ``A B C D`` sit in the registers:
``ABCD`` (big-endian, the Modbus default), ``CDAB`` (word-swapped, common on PLCs), ``BADC``
(bytes swapped in each word), ``DCBA`` (little-endian). The same two rules apply to every
width: a ``BA`` order (BADC, DCBA) swaps the two bytes of each register, a ``CD..AB`` order
(CDAB, DCBA) takes the registers in reverse (least significant first). So a 64-bit value in
``CDAB`` is ``GH EF CD AB`` in register order, and 16-bit types only see the byte rule.

Types: ``int16``, ``uint16``, ``int32``, ``uint32``, ``float32``, ``int64``, ``uint64``,
``float64`` (64-bit integers beyond 2**53 lose their last digits in float64), ``int8`` and
``uint8`` (one byte of a register: ``byte: high`` or ``low``), ``bcd16`` and ``bcd32`` (4 or 8
decimal digits, one per nibble; a nibble above 9 decodes to NaN, a bad reading), ``bool``
(coils, discrete inputs; or one ``bit: 0..15`` of a register), and the text types: ``string``
(``length`` registers, two ASCII bytes each, high byte first unless the order swaps bytes;
trailing NULs and spaces trimmed) and ``enum`` (an integer register mapped to a name).
We decode ourselves rather than through pymodbus helpers, which assume big-endian.

>>> import numpy as np
>>> regs = np.array([0x0000, 0x4148], dtype=np.uint16)   # 12.5 as float32, CDAB order
>>> float(decode_fields(regs, [FieldDecoder(0, "float32", "CDAB")])[0])
12.5
>>> plan = DecodePlan([FieldDecoder(0, "string", length=3)])
>>> plan.texts(np.array([0x534E, 0x3132, 0x0000], dtype=np.uint16))
['SN12']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

_SWAP_BYTES = {"ABCD": False, "CDAB": False, "BADC": True, "DCBA": True}
_SWAP_WORDS = {"ABCD": False, "CDAB": True, "BADC": False, "DCBA": True}
_VIEW = {
    "int32": np.int32,
    "uint32": np.uint32,
    "float32": np.float32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float64": np.float64,
}
#: 16-bit registers per type (``string``: its ``length``).
WIDTH = {
    "int16": 1,
    "uint16": 1,
    "int8": 1,
    "uint8": 1,
    "bcd16": 1,
    "bool": 1,
    "enum": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "bcd32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}
#: Types whose value is a text (written as a string field).
TEXT_TYPES = frozenset({"string", "enum"})


@dataclass(frozen=True, slots=True)
class FieldDecoder:
    """Where a field starts in a register block (offset, in registers) and how to read it."""

    offset: int
    type: str
    byte_order: str = "ABCD"
    scale: float = 1.0
    add: float = 0.0
    #: ``string``: registers; others: from :data:`WIDTH`.
    length: int = 0
    #: One bit of a register (0 = least significant), or None.
    bit: int | None = None
    #: ``int8``/``uint8``: which byte of the register.
    byte: str = "high"
    #: ``enum``: register value -> name.
    names: Mapping[int, str] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.length if self.type == "string" else WIDTH[self.type]

    @property
    def is_text(self) -> bool:
        return self.type in TEXT_TYPES


def _words(regs: NDArray[np.uint16], offsets: NDArray[np.intp], order: str) -> NDArray[np.uint16]:
    words = regs[offsets]
    if _SWAP_BYTES[order]:
        words = ((words >> 8) | (words << 8)).astype(np.uint16)
    return words.astype(np.uint16, copy=False)


def _combined(regs: NDArray[np.uint16], offsets: NDArray[np.intp], order: str, n: int) -> NDArray[np.uint64]:
    """``n`` registers from each offset as one unsigned integer, most significant first."""
    out = np.zeros(offsets.shape[0], np.uint64)
    for k in range(n):
        position = n - 1 - k if _SWAP_WORDS[order] else k  # register k's place from the top
        word = _words(regs, offsets + k, order).astype(np.uint64)
        out |= word << np.uint64(16 * (n - 1 - position))
    return out


def _bcd(value: NDArray[np.uint64], digits: int) -> NDArray[np.float64]:
    out = np.zeros(value.shape[0])
    bad = np.zeros(value.shape[0], bool)
    for d in range(digits):
        nibble = (value >> np.uint64(4 * d)) & np.uint64(0xF)
        bad |= nibble > 9
        out += nibble.astype(np.float64) * 10.0**d
    out[bad] = np.nan
    return out


def decode_group(regs: NDArray[np.uint16], offsets: NDArray[np.intp], type_: str, order: str) -> NDArray[np.float64]:
    """Raw values (no scale) of numeric fields of one type and byte order at ``offsets``."""
    if type_ in ("uint16", "bool", "enum"):
        return _words(regs, offsets, order).astype(np.float64)
    if type_ == "int16":
        return _words(regs, offsets, order).view(np.int16).astype(np.float64)
    if type_ == "bcd16":
        return _bcd(_words(regs, offsets, order).astype(np.uint64), 4)
    if type_ == "bcd32":
        return _bcd(_combined(regs, offsets, order, 2), 8)
    n = WIDTH[type_]
    value = _combined(regs, offsets, order, n)
    if n == 2:
        return value.astype(np.uint32).view(_VIEW[type_]).astype(np.float64)
    return value.view(_VIEW[type_]).astype(np.float64)


class DecodePlan:
    """How to decode one register block, worked out once per request and reused every poll.

    Plain numeric fields are grouped by type and byte order, each group decoded in one
    vectorised pass; bytes and bits of registers, and text fields, are done field by field.
    """

    def __init__(self, fields: Sequence[FieldDecoder]) -> None:
        self.size = len(fields)
        self.fields = list(fields)
        groups: dict[tuple[str, str], list[int]] = {}
        self.special: list[int] = []
        self.text_index = [i for i, f in enumerate(fields) if f.is_text]
        for i, f in enumerate(fields):
            if f.type == "string":
                continue
            if f.bit is not None or f.type in ("int8", "uint8"):
                self.special.append(i)
            else:
                groups.setdefault((f.type, f.byte_order), []).append(i)
        self.groups = [
            (type_, order, np.asarray(members, np.intp), np.asarray([fields[i].offset for i in members], np.intp))
            for (type_, order), members in groups.items()
        ]
        self.scale = np.fromiter((f.scale for f in fields), np.float64, self.size)
        self.add = np.fromiter((f.add for f in fields), np.float64, self.size)
        self.identity = bool(np.all(self.scale == 1.0) and np.all(self.add == 0.0))

    def decode(self, regs: NDArray[np.uint16]) -> NDArray[np.float64]:
        """Engineering values ``raw * scale + add`` of every field (text fields: their raw
        register value for ``enum``, NaN for ``string``; :meth:`texts` gives their text)."""
        if len(self.groups) == 1 and not self.special and not self.text_index:
            type_, order, _, offsets = self.groups[0]
            out = decode_group(regs, offsets, type_, order)
        else:
            out = np.full(self.size, np.nan)
            for type_, order, index, offsets in self.groups:
                out[index] = decode_group(regs, offsets, type_, order)
            for i in self.special:
                out[i] = self._one(regs, self.fields[i])
        if not self.identity:
            out *= self.scale
            out += self.add
        return out

    @staticmethod
    def _one(regs: NDArray[np.uint16], f: FieldDecoder) -> float:
        word = int(_words(regs, np.array([f.offset], np.intp), f.byte_order)[0])
        if f.bit is not None:
            return float(word >> f.bit & 1)
        byte = word >> 8 if f.byte == "high" else word & 0xFF
        return float(byte - 256 if f.type == "int8" and byte > 127 else byte)

    def texts(self, regs: NDArray[np.uint16]) -> list[str]:
        """The texts of the text fields, in field order (:attr:`text_index`)."""
        out = []
        for i in self.text_index:
            f = self.fields[i]
            if f.type == "enum":
                code = int(_words(regs, np.array([f.offset], np.intp), f.byte_order)[0])
                out.append(f.names.get(code, str(code)))
                continue
            words = regs[f.offset : f.offset + f.length].astype(">u2")
            raw = words.tobytes()
            if _SWAP_BYTES[f.byte_order]:
                raw = words.astype("<u2").tobytes()
            out.append(raw.decode("latin-1").rstrip("\x00 ").split("\x00")[0])
        return out


def decode_fields(regs: NDArray[np.uint16], fields: Sequence[FieldDecoder]) -> NDArray[np.float64]:
    """Decode every field of one register block; values are ``raw * scale + add``."""
    return DecodePlan(fields).decode(regs)


def encode_value(value: float, type_: str, order: str = "ABCD") -> list[int]:
    """Registers for one value: the inverse of :func:`decode_group` (demo plant, tests)."""
    if type_ in ("uint16", "int16", "bool", "enum"):
        word = int(value) & 0xFFFF
        if _SWAP_BYTES[order]:
            word = ((word >> 8) | (word << 8)) & 0xFFFF
        return [word]
    n = WIDTH[type_]
    if type_ in ("bcd16", "bcd32"):
        raw = int(str(int(value)), 16)
    else:
        raw = int(np.array([value], dtype=_VIEW[type_]).view(np.uint32 if n == 2 else np.uint64)[0])
    words = [(raw >> (16 * (n - 1 - k))) & 0xFFFF for k in range(n)]  # most significant first
    if _SWAP_WORDS[order]:
        words.reverse()
    if _SWAP_BYTES[order]:
        words = [((w >> 8) | (w << 8)) & 0xFFFF for w in words]
    return words


def encode_text(text: str, length: int, order: str = "ABCD") -> list[int]:
    """Registers for a string field (NUL-padded): the inverse of :meth:`DecodePlan.texts`."""
    raw = text.encode("latin-1")[: 2 * length].ljust(2 * length, b"\x00")
    words = np.frombuffer(raw, "<u2" if _SWAP_BYTES[order] else ">u2")
    return [int(w) for w in words]
