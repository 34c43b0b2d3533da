"""Modbus TCP reads time out through one sweeper per event loop, not one timer per read."""

from __future__ import annotations

import asyncio

import pytest

from edge_agent.collectors.modbus.tcp import SWEEP_S, deadlines_of


def test_a_read_times_out_and_the_others_wait_for_their_replies() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        deadlines = deadlines_of(loop)
        assert deadlines_of(loop) is deadlines
        short: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        long: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        answered: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        started = loop.time()
        for future, timeout in ((short, 0.05), (long, 60.0), (answered, 0.05)):
            deadlines.add(future, timeout)
        answered.set_result((3, b"\x02\x00\x01"))  # the reply came first: it stays a reply
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(short, 30)
        assert loop.time() - started >= 0.05
        assert not long.done() and await answered == (3, b"\x02\x00\x01")
        deadlines.discard(answered)
        deadlines.discard(long)
        assert deadlines.due == {}
        await asyncio.sleep(2 * SWEEP_S)  # nothing in flight: the sweeper stops re-arming itself
        assert deadlines._handle is None

    asyncio.run(body())
