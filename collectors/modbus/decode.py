"""Register decoding, vectorised: 16-bit words in, engineering values (float64) out.

Byte orders name where the bytes of a big-endian value ``A B C D`` sit in the registers:
``ABCD`` (big-endian, Modbus default), ``CDAB`` (word-swapped, common on PLCs), ``BADC``
(byte-swapped words), ``DCBA`` (little-endian). 16-bit types use the first half: ``AB``
orders (ABCD, CDAB) read the word as is, ``BA`` orders (BADC, DCBA) swap its two bytes.
We decode ourselves rather than through pymodbus helpers, which assume big-endian.

>>> import numpy as np
>>> regs = np.array([0x0000, 0x4148], dtype=np.uint16)   # 12.5 as float32, CDAB order
>>> float(decode_fields(regs, [FieldDecoder(0, "float32", "CDAB")])[0])
12.5
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

_SWAP_BYTES = {"ABCD": False, "CDAB": False, "BADC": True, "DCBA": True}
_SWAP_WORDS = {"ABCD": False, "CDAB": True, "BADC": False, "DCBA": True}
_VIEW32 = {"int32": np.int32, "uint32": np.uint32, "float32": np.float32}


@dataclass(frozen=True, slots=True)
class FieldDecoder:
    """Where a field starts in a register block (offset, in registers) and how to read it."""

    offset: int
    type: str
    byte_order: str = "ABCD"
    scale: float = 1.0
    add: float = 0.0


def _words(regs: NDArray[np.uint16], offsets: NDArray[np.intp], order: str) -> NDArray[np.uint16]:
    words = regs[offsets]
    if _SWAP_BYTES[order]:
        words = ((words >> 8) | (words << 8)).astype(np.uint16)
    return words.astype(np.uint16, copy=False)


def decode_group(regs: NDArray[np.uint16], offsets: NDArray[np.intp], type_: str, order: str) -> NDArray[np.float64]:
    """Raw values (no scale) of fields of one type and byte order at ``offsets``."""
    if type_ in ("uint16", "bool"):
        return _words(regs, offsets, order).astype(np.float64)
    if type_ == "int16":
        return _words(regs, offsets, order).view(np.int16).astype(np.float64)
    first = _words(regs, offsets, order).astype(np.uint32)
    second = _words(regs, offsets + 1, order).astype(np.uint32)
    high, low = (second, first) if _SWAP_WORDS[order] else (first, second)
    combined = (high << 16) | low
    return combined.view(_VIEW32[type_]).astype(np.float64)


class DecodePlan:
    """How to decode one register block, worked out once per request and reused every poll.

    Fields are grouped by type and byte order; each group is decoded in one vectorised pass.
    """

    def __init__(self, fields: Sequence[FieldDecoder]) -> None:
        self.size = len(fields)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, f in enumerate(fields):
            groups.setdefault((f.type, f.byte_order), []).append(i)
        self.groups = [
            (type_, order, np.asarray(members, np.intp), np.asarray([fields[i].offset for i in members], np.intp))
            for (type_, order), members in groups.items()
        ]
        self.scale = np.fromiter((f.scale for f in fields), np.float64, self.size)
        self.add = np.fromiter((f.add for f in fields), np.float64, self.size)
        self.identity = bool(np.all(self.scale == 1.0) and np.all(self.add == 0.0))

    def decode(self, regs: NDArray[np.uint16]) -> NDArray[np.float64]:
        """Engineering values ``raw * scale + add`` of every field."""
        if len(self.groups) == 1:
            type_, order, _, offsets = self.groups[0]
            out = decode_group(regs, offsets, type_, order)
        else:
            out = np.empty(self.size, np.float64)
            for type_, order, index, offsets in self.groups:
                out[index] = decode_group(regs, offsets, type_, order)
        if not self.identity:
            out *= self.scale
            out += self.add
        return out


def decode_fields(regs: NDArray[np.uint16], fields: Sequence[FieldDecoder]) -> NDArray[np.float64]:
    """Decode every field of one register block; values are ``raw * scale + add``."""
    return DecodePlan(fields).decode(regs)


def encode_value(value: float, type_: str, order: str = "ABCD") -> list[int]:
    """Registers for one value: the inverse of :func:`decode_group` (used by the demo plant)."""
    if type_ in ("uint16", "int16", "bool"):
        word = int(value) & 0xFFFF
        if _SWAP_BYTES[order]:
            word = ((word >> 8) | (word << 8)) & 0xFFFF
        return [word]
    raw = np.array([value], dtype=_VIEW32[type_]).view(np.uint32)[0]
    high, low = int(raw) >> 16, int(raw) & 0xFFFF
    words = [low, high] if _SWAP_WORDS[order] else [high, low]
    if _SWAP_BYTES[order]:
        words = [((w >> 8) | (w << 8)) & 0xFFFF for w in words]
    return words
