"""Request planning: merging, limits, gaps, tables; every field read exactly once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.collectors.modbus.plan import plan_requests
from edge_agent.collectors.modbus.profile import ModbusField


def field(name: str, address: int, type_: str = "uint16", table: str = "holding") -> ModbusField:
    return ModbusField(name=name, table=table, address=address, type=type_)  # type: ignore[arg-type]


def test_contiguous_fields_share_one_request() -> None:
    fields = [field("a", 0), field("b", 1, "float32"), field("c", 3, "int32")]
    plan = plan_requests(fields)
    assert [(r.table, r.address, r.count) for r in plan] == [("holding", 0, 5)]
    assert [d.offset for d in plan[0].decoders] == [0, 1, 3]


def test_the_125_register_limit_splits_requests() -> None:
    fields = [field(f"f{i}", i * 2, "float32") for i in range(100)]  # 200 registers
    plan = plan_requests(fields)
    assert [r.count for r in plan] == [124, 76]
    assert all(r.count <= 125 for r in plan)


def test_gap_limit_and_tables_split() -> None:
    fields = [
        field("a", 0),
        field("b", 5),
        field("c", 20),
        field("d", 0, table="input"),
        ModbusField(name="e", table="coil", address=3, type="bool"),
    ]
    plan = plan_requests(fields, max_gap=8)
    assert [(r.table, r.address, r.count) for r in plan] == [
        ("coil", 3, 1),
        ("holding", 0, 6),
        ("holding", 20, 1),
        ("input", 0, 1),
    ]
    assert [(r.address, r.count) for r in plan_requests(fields[:2], max_gap=0)] == [(0, 1), (5, 1)]


def test_field_order_in_profile_is_kept_in_indexes() -> None:
    fields = [field("late", 50), field("early", 0)]
    plan = plan_requests(fields)
    assert [r.field_index for r in plan] == [[1], [0]]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 600), st.sampled_from(["uint16", "float32", "int32"])),
        min_size=1,
        max_size=60,
        unique_by=lambda t: t[0],
    )
)
def test_every_field_once_within_limits(spec: list[tuple[int, str]]) -> None:
    fields, used = [], set()
    for i, (address, type_) in enumerate(sorted(spec)):
        width = 2 if type_ != "uint16" else 1
        if any(a in used for a in range(address, address + width)):
            continue
        used.update(range(address, address + width))
        fields.append(field(f"f{i}", address, type_))
    plan = plan_requests(fields, max_registers=125, max_gap=8)
    seen = sorted(i for r in plan for i in r.field_index)
    assert seen == list(range(len(fields)))
    for r in plan:
        assert 1 <= r.count <= 125
        for i, d in zip(r.field_index, r.decoders, strict=True):
            assert r.address + d.offset == fields[i].address
            assert d.offset + fields[i].width <= r.count


def test_overlapping_fields_are_refused() -> None:
    from pydantic import ValidationError  # noqa: PLC0415

    from edge_agent.collectors.modbus.profile import ModbusProfile  # noqa: PLC0415

    with pytest.raises(ValidationError, match="overlap"):
        ModbusProfile(name="x", protocol="modbus", fields=[field("a", 0, "float32"), field("b", 1)])
