"""What the InfluxDB sinks share: line protocol encoded per catalog snapshot, a gzip'd ``POST``
per batch, transport errors as :class:`SinkUnavailable`, and ``abort`` for a bounded stop."""

from __future__ import annotations

import gzip
import threading
from typing import Any

from collectors.batch import Batch
from edge_agent.sinks.base import SinkUnavailable, compress_for
from edge_agent.sinks.http import TRANSPORT_ERRORS, HttpClient, Reply
from edge_agent.sinks.line_protocol import LineProtocol
from edge_agent.store.catalog import SeriesCatalog


class LineProtocolWriter:
    """A sink that posts line protocol to ``path`` with ``params``; subclasses say what a reply
    other than 204 means (:meth:`answer`)."""

    path = "/write"
    params: dict[str, str]

    def __init__(self, cfg: Any, http: HttpClient) -> None:
        self.cfg = cfg
        self.name: str = cfg.identity()
        self.batch_size: int = cfg.batch_size
        self.concurrency: int = cfg.concurrency
        self._http = http
        self._gzip = compress_for(cfg.url, cfg.gzip)
        self._encoder: LineProtocol | None = None
        self._encoder_lock = threading.Lock()

    def encode(self, batch: Batch, catalog: SeriesCatalog) -> bytes:
        with self._encoder_lock:
            encoder = self._encoder
            encoder = self._encoder = LineProtocol(catalog) if encoder is None else encoder.follow(catalog)
        return encoder.encode(batch)

    def before_write(self) -> None:
        """Called before each write (the 1.x sink makes sure its database exists)."""

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        self.before_write()
        body = self.encode(batch, catalog)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            reply = self._http.post(self.path, body, self.params, headers)
        except TRANSPORT_ERRORS as exc:
            raise SinkUnavailable(f"{self.name}: {exc.__class__.__name__}: {exc}") from exc
        if reply.status != 204:
            self.answer(reply)

    def answer(self, reply: Reply) -> None:
        """What a reply other than 204 means: raise RejectedPoints or SinkUnavailable."""
        raise SinkUnavailable(f"{self.name}: HTTP {reply.status} {reply.text.strip()[:500]}")

    def close(self) -> None:
        self._http.close()

    def abort(self) -> None:
        """Break off writes in flight (a stop that cannot wait for the database's timeout)."""
        self._http.abort()
