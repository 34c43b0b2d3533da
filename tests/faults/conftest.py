"""Fixtures shared by the fault tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.faults.counting_server import CountingServer, Unit


@pytest.fixture
def server() -> Iterator[CountingServer]:
    """A Modbus server on a free loopback port with units 1 to 5, counting every request."""
    srv = CountingServer(free_port(), {u: Unit() for u in range(1, 6)})
    srv.start()
    yield srv
    srv.close()
