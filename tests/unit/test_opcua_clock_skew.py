"""What change notifications tell besides the value (asyncua's DataValue): the OPC UA server's
clock skew, and changes its queue dropped."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from asyncua import ua

from edge_agent.collectors.opcua.changes import Changes

NODE = "ns=2;s=M.Temp"


def _notify(changes: Changes, server_s: float, value: float, status: int = 0) -> None:
    """One notification as asyncua hands it over: node, value, and the monitored item's DataValue."""
    stamp = dt.datetime.fromtimestamp(server_s, dt.UTC).replace(tzinfo=None)
    dv = ua.DataValue(
        ua.Variant(value, ua.VariantType.Double),
        ua.StatusCode(status),
        SourceTimestamp=stamp,
        ServerTimestamp=stamp,
    )
    node = SimpleNamespace(nodeid=ua.NodeId.from_string(NODE))
    changes.datachange_notification(node, value, SimpleNamespace(monitored_item=SimpleNamespace(Value=dv)))


def test_a_value_unchanged_for_an_hour_is_not_a_clock_skew() -> None:
    now = [10_000.0]
    changes = Changes({NODE: 0}, 1, lambda: int(now[0] * 1e9))
    # The first notification reports the value with the time it last changed: an hour ago.
    _notify(changes, 10_000.0 - 3600.0, 1.0)
    changes.drain()
    assert changes.skew_s is None
    # Later changes reach the agent 0.3 s and 0.1 s after the server stamped them.
    now[0] = 10_002.0
    _notify(changes, 10_001.7, 2.0)
    _notify(changes, 10_001.9, 3.0)
    assert len(changes.drain()) == 2
    assert changes.skew_s is not None and abs(changes.skew_s - 0.1) < 1e-3


def test_a_server_clock_ahead_shows_as_negative_skew_and_is_kept_between_changes() -> None:
    now = [5_000.0]
    changes = Changes({NODE: 0}, 1, lambda: int(now[0] * 1e9))
    _notify(changes, 5_000.0, 1.0)
    _notify(changes, 5_030.0, 2.0)  # the server runs 30 s ahead
    changes.drain()
    assert changes.skew_s is not None and abs(changes.skew_s + 30.0) < 1e-3
    changes.drain()  # a poll without changes keeps the last estimate
    assert changes.skew_s is not None and abs(changes.skew_s + 30.0) < 1e-3


def test_a_change_after_the_servers_queue_overflowed_is_kept_and_the_loss_counted() -> None:
    """A server whose monitored-item queue overflowed sets the Overflow bit (InfoType DataValue,
    bit 7) on the oldest value it kept: the changes before it are gone, and that is counted."""
    drops: list[tuple[str, int]] = []
    changes = Changes({NODE: 0}, 1, lambda: 10**13, count_drop=lambda why, n: drops.append((why, n)))
    _notify(changes, 10_000.0, 1.0)
    _notify(changes, 10_000.1, 5.0, status=0x0480)  # Good, with the Overflow bit
    _notify(changes, 10_000.2, 6.0, status=0x0400)  # Good, InfoType set, no overflow
    batch = changes.drain()
    assert batch.value.tolist() == [1.0, 5.0, 6.0]
    assert batch.quality.tolist() == [0, 0, 0]
    assert (changes.server_overflows, drops) == (1, [("device_queue_overflow", 1)])
