"""The health endpoint: ``GET /health`` answers the agent's report as JSON (on the event loop),
with every known secret removed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from edge_agent.config.secrets import REDACTOR


async def serve_health(listen: str, report: Callable[[], dict[str, Any]]) -> asyncio.AbstractServer:
    """Serve ``report()`` on ``host:port`` (127.0.0.1 when no host is given)."""
    host, _, port = listen.rpartition(":")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.readline(), 5)
            body = REDACTOR.redact(json.dumps(report())).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host or "127.0.0.1", int(port))
