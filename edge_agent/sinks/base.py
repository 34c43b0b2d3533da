"""The sink contract.

``write(lines)`` is called by the forwarder with line protocol for up to ``batch_size`` points.
Returning means the database acknowledged every line; only then does the buffer let the
points go. Raise :class:`SinkUnavailable` for anything worth retrying (network, 5xx, auth
that an operator may fix) and :class:`RejectedPoints` when the database refused the data
itself (HTTP 400): those lines go to the rejected-points file and are counted, never retried.
"""

from __future__ import annotations

from typing import Protocol


class SinkUnavailable(Exception):
    """The write did not go through; retry later with backoff."""


class RejectedPoints(Exception):
    """The database refused these lines as bad data (HTTP 400); retrying would not help.

    ``dropped`` is how many lines the database says it dropped, when it says (InfluxDB 1.x
    reports ``dropped=N`` on a partial write); the other lines were written.
    """

    def __init__(self, message: str, dropped: int | None = None) -> None:
        super().__init__(message)
        self.dropped = dropped


class Sink(Protocol):
    """``write`` may be called from up to ``concurrency`` threads at once."""

    name: str
    batch_size: int
    concurrency: int

    def write(self, body: bytes, count: int) -> None:
        """Write ``count`` newline-separated line-protocol points in ``body``."""
        ...

    def close(self) -> None: ...
