"""Register decoding: vectors for every type and byte order, checked against struct."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from edge_agent.collectors.modbus.decode import FieldDecoder, decode_fields, encode_value

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
FMT = {"int32": ">i", "uint32": ">I", "float32": ">f", "int16": ">h", "uint16": ">H"}


def registers(value: float, type_: str, order: str) -> list[int]:
    """Independent reference: big-endian bytes A B C D rearranged by the order's letters."""
    raw = struct.pack(FMT[type_], value)
    if len(raw) == 2:
        # 16-bit values: the orders that swap bytes within a word (BADC, DCBA) swap them.
        return [raw[1] << 8 | raw[0]] if order in ("BADC", "DCBA") else [raw[0] << 8 | raw[1]]
    pos = {letter: raw[i] for i, letter in enumerate("ABCD")}
    arranged = bytes(pos[letter] for letter in order)
    return [arranged[0] << 8 | arranged[1], arranged[2] << 8 | arranged[3]]


VECTORS = [
    ("float32", 123.456),
    ("float32", -0.015625),
    ("float32", 3.4e38),
    ("int32", -2),
    ("int32", 2_000_000_123),
    ("int32", -2_147_483_648),
    ("uint32", 4_294_967_295),
    ("uint32", 65_536),
    ("int16", -32_768),
    ("int16", -1),
    ("uint16", 65_535),
    ("uint16", 258),
]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("type_", "value"), VECTORS)
def test_decode_matches_struct(type_: str, value: float, order: str) -> None:
    regs = np.array(registers(value, type_, order), np.uint16)
    decoded = decode_fields(regs, [FieldDecoder(0, type_, order)])[0]
    expected = struct.unpack(FMT[type_], struct.pack(FMT[type_], value))[0]
    assert decoded == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("type_", "value"), VECTORS)
def test_encode_is_the_inverse(type_: str, value: float, order: str) -> None:
    assert encode_value(value, type_, order) == registers(value, type_, order)


def test_known_cdab_vector() -> None:
    # 0x41480000 is 12.5; a CDAB device sends the low word first.
    assert decode_fields(np.array([0x0000, 0x4148], np.uint16), [FieldDecoder(0, "float32", "CDAB")])[0] == 12.5
    assert decode_fields(np.array([0x4148, 0x0000], np.uint16), [FieldDecoder(0, "float32", "ABCD")])[0] == 12.5
    assert decode_fields(np.array([0x4841, 0x0000], np.uint16), [FieldDecoder(0, "float32", "BADC")])[0] == 12.5
    assert decode_fields(np.array([0x0000, 0x4841], np.uint16), [FieldDecoder(0, "float32", "DCBA")])[0] == 12.5


def test_scale_offset_and_mixed_block() -> None:
    regs = np.array([1000, *registers(-5, "int32", "CDAB"), *registers(1.5, "float32", "ABCD")], np.uint16)
    fields = [
        FieldDecoder(0, "uint16", "ABCD", scale=0.1, add=-20.0),
        FieldDecoder(1, "int32", "CDAB"),
        FieldDecoder(3, "float32", "ABCD", scale=2.0),
    ]
    assert decode_fields(regs, fields).tolist() == [80.0, -5.0, 3.0]


def test_nan_register_pattern_decodes_to_nan() -> None:
    # A device reporting "no value" as a NaN float must not become a number.
    value = decode_fields(np.array([0x7FC0, 0x0000], np.uint16), [FieldDecoder(0, "float32")])[0]
    assert np.isnan(value)
