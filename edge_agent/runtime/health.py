"""The agent's HTTP endpoint (on the event loop), bound to 127.0.0.1 unless told otherwise.

* ``GET /health``: the agent's report as JSON; status 200 when ``"status": "ok"``, 503 when
  ``"degraded"`` (the ``reasons`` say why: devices down or sinks failing longer than
  ``agent.health``, the local store not writable). Docker's HEALTHCHECK and
  ``edge-agent health`` go by the status code.
* ``GET /metrics``: the same figures in Prometheus' text format (:mod:`edge_agent.runtime.metrics`).
* ``GET /``: a read-only HTML page for people (:mod:`edge_agent.runtime.status_page`).
* Anything else: 404 (405 for methods other than GET and HEAD).

Every answer has the known secrets removed (:data:`~edge_agent.secrets.REDACTOR`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from edge_agent.runtime.metrics import CONTENT_TYPE, render
from edge_agent.secrets import REDACTOR

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


def _route(
    method: str, path: str, report: Callable[[], dict[str, Any]], page: Callable[[], str] | None = None
) -> tuple[int, str, str]:
    """(status, content type, body) of one request."""
    path = path.split("?", 1)[0]
    if path not in ("/health", "/metrics", "/"):
        return 404, "text/plain", "not found: try /, /health or /metrics\n"
    if method not in ("GET", "HEAD"):
        return 405, "text/plain", "only GET\n"
    if path == "/":
        if page is None:
            return 404, "text/plain", "no status page here: try /health or /metrics\n"
        return 200, "text/html; charset=utf-8", page()
    data = report()
    if path == "/metrics":
        return 200, CONTENT_TYPE, render(data)
    return (200 if data.get("status", "ok") == "ok" else 503), "application/json", json.dumps(data)


async def serve_health(
    listen: str, report: Callable[[], dict[str, Any]], page: Callable[[], str] | None = None
) -> asyncio.AbstractServer:
    """Serve ``/health``, ``/metrics`` and ``/`` on ``host:port`` (127.0.0.1 when no host is given)."""
    host, _, port = listen.rpartition(":")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                request = (await reader.readline()).decode("latin-1").split()
                while (await reader.readline()).strip():  # headers: not needed
                    pass
            method, path = (request[0], request[1]) if len(request) >= 2 else ("GET", "/")
            status, content_type, text = _route(method, path, report, page)
            body = REDACTOR.redact(text).encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            writer.write(head if method == "HEAD" else head + body)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, host or "127.0.0.1", int(port))
