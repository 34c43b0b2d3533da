"""InfluxDB 1.x sink (``type: influxdb_v1``): HTTP ``/write`` with line protocol, nanosecond precision.

Credentials travel in an HTTP Basic ``Authorization`` header, never in the URL query, so they do
not appear in proxy logs, error messages or the health report.
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from pydantic import Field

from collectors.batch import Batch
from edge_agent.config.types import TagValue
from edge_agent.sinks.base import (
    RejectedPoints,
    SinkConfig,
    SinkContext,
    SinkPlugin,
    SinkUnavailable,
    compress_for,
    register,
)
from edge_agent.sinks.http import TRANSPORT_ERRORS, HttpClient
from edge_agent.sinks.line_protocol import LineProtocol
from edge_agent.store.catalog import SeriesCatalog

log = logging.getLogger(__name__)
_DROPPED = re.compile(r"dropped=(\d+)")


class InfluxV1Sink(SinkConfig):
    """``agent.yaml`` options of an InfluxDB 1.x destination."""

    type: Literal["influxdb_v1"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    database: TagValue
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    gzip: bool | Literal["auto"] = Field("auto", description="compress bodies; auto: except over loopback")


class InfluxV1:
    """Writes to ``{url}/write?db=...``; creates the database if it is missing."""

    def __init__(self, cfg: InfluxV1Sink) -> None:
        self.cfg = cfg
        self.name = f"influxdb_v1:{cfg.url.rstrip('/')}/{cfg.database}"
        self.batch_size, self.concurrency = cfg.batch_size, cfg.concurrency
        self._params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self._params["rp"] = cfg.retention_policy
        auth = (cfg.username, cfg.password) if cfg.username else None
        self._http = HttpClient(cfg.url, cfg.timeout, auth)
        self._db_checked = False
        self._gzip = compress_for(cfg.url, cfg.gzip)
        self._encoder: LineProtocol | None = None
        self._encoder_lock = threading.Lock()

    def _encode(self, batch: Batch, catalog: SeriesCatalog) -> bytes:
        with self._encoder_lock:
            encoder = self._encoder
            encoder = self._encoder = LineProtocol(catalog) if encoder is None else encoder.follow(catalog)
        return encoder.encode(batch)

    def _ensure_database(self) -> None:
        query = f'CREATE DATABASE "{self.cfg.database}"'
        try:
            reply = self._http.post(
                "/query",
                urlencode({"q": query}).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except TRANSPORT_ERRORS as exc:
            raise SinkUnavailable(f"{self.name}: {exc.__class__.__name__}: {exc}") from exc
        if reply.status >= 500:
            raise SinkUnavailable(f"{self.name}: CREATE DATABASE answered {reply.status}")
        # 4xx here usually means no admin rights: the database may exist anyway; writes will tell.
        self._db_checked = True

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        if not self._db_checked:
            self._ensure_database()
        body = self._encode(batch, catalog)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            reply = self._http.post("/write", body, self._params, headers)
        except TRANSPORT_ERRORS as exc:
            raise SinkUnavailable(f"{self.name}: {exc.__class__.__name__}: {exc}") from exc
        status = reply.status
        if status == 204:
            return
        text = reply.text.strip()[:500]
        if status == 400:
            dropped = _DROPPED.search(text)
            raise RejectedPoints(f"{self.name}: 400 {text}", int(dropped.group(1)) if dropped else None)
        if status == 404 and "database not found" in text:
            self._db_checked = False
        if status in (401, 403):
            raise SinkUnavailable(f"{self.name}: {status} {text}: check username/password in agent.yaml")
        raise SinkUnavailable(f"{self.name}: HTTP {status} {text}")

    def close(self) -> None:
        self._http.close()

    def abort(self) -> None:
        self._http.abort()


def _make(config: Any, context: SinkContext) -> InfluxV1:
    assert isinstance(config, InfluxV1Sink)
    return InfluxV1(config)


register(SinkPlugin("influxdb_v1", InfluxV1Sink, _make))
