"""What the InfluxDB sinks share: their common options, line protocol encoded per catalog
snapshot, a gzip'd ``POST`` per batch, transport errors as :class:`SinkUnavailable`, ``abort`` for
a bounded stop, and the rejected-points file (line protocol, with the database's reason)."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edge_agent.collectors.batch import Batch
from edge_agent.sinks.base import SinkConfig, SinkContext, SinkUnavailable, compress_for
from edge_agent.sinks.influx.http import TRANSPORT_ERRORS, HttpClient, Reply
from edge_agent.sinks.influx.line_protocol import LineProtocol
from edge_agent.store.catalog import SeriesCatalog


class InfluxSinkConfig(SinkConfig):
    """What both InfluxDB sinks take besides their destination."""

    gzip: bool | Literal["auto"] = Field("auto", description="compress bodies; auto: except over loopback")
    rejected_file: str | None = Field(
        None,
        description="points the database refuses, as line protocol (relative to agent.yaml; "
        "default: rejected.lp beside the local store)",
    )


class LineProtocolWriter:
    """A sink that posts line protocol to ``path`` with ``params``; subclasses say what a reply
    other than 204 means (:meth:`answer`)."""

    path = "/write"
    params: dict[str, str]

    def __init__(self, cfg: Any, http: HttpClient, context: SinkContext) -> None:
        self.cfg = cfg
        self.rejected_file: Path = context.data_file(cfg.rejected_file, "rejected.lp")
        self._file_lock = threading.Lock()
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

    def keep_refused(self, batch: Batch, catalog: SeriesCatalog, reason: str) -> str:
        """Append the refused points to ``rejected_file`` as line protocol, after a comment line
        with the time and the database's reason; returns the file's name."""
        lines = self.encode(batch, catalog).decode()
        self.rejected_file.parent.mkdir(parents=True, exist_ok=True)
        with self._file_lock, self.rejected_file.open("a", encoding="utf-8") as fh:
            fh.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {self.name}: {reason}\n{lines}\n")
        return str(self.rejected_file)

    def close(self) -> None:
        self._http.close()

    def abort(self) -> None:
        """Break off writes in flight (a stop that cannot wait for the database's timeout)."""
        self._http.abort()
