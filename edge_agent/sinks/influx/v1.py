"""InfluxDB 1.x sink (``type: influxdb_v1``): HTTP ``/write`` with line protocol, nanosecond precision.

Credentials travel in an HTTP Basic ``Authorization`` header, never in the URL query, so they do
not appear in proxy logs, error messages or the health report.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from pydantic import Field

from edge_agent.config.types import TagValue
from edge_agent.sinks.base import RejectedPoints, SinkContext, SinkPlugin, SinkUnavailable, normalized_url, register
from edge_agent.sinks.influx.http import TRANSPORT_ERRORS, HttpClient, Reply
from edge_agent.sinks.influx.write import InfluxSinkConfig, LineProtocolWriter

log = logging.getLogger(__name__)
_DROPPED = re.compile(r"dropped=(\d+)")


class InfluxV1Sink(InfluxSinkConfig):
    """``agent.yaml`` options of an InfluxDB 1.x destination."""

    type: Literal["influxdb_v1"]
    """the sink's kind"""
    url: Annotated[str, Field(pattern=r"^https?://")]
    """the database's base URL, http:// or https://"""
    database: TagValue
    """the database (created when missing and the user may)"""
    retention_policy: str = ""
    """the retention policy (default: the database's)"""
    username: str = ""
    """user to log in as (HTTP basic authentication)"""
    password: str = Field("", description="${VAR} from the environment, or password_file: PATH")

    def identity(self) -> str:
        """``influxdb_v1:URL/DATABASE``, with ``?rp=...&user=...`` when they are set."""
        extra = {k: v for k, v in (("rp", self.retention_policy), ("user", self.username)) if v}
        return f"influxdb_v1:{normalized_url(self.url)}/{self.database}" + (f"?{urlencode(extra)}" if extra else "")


class InfluxV1(LineProtocolWriter):
    """Writes to ``{url}/write?db=...``; creates the database if it is missing."""

    def __init__(self, cfg: InfluxV1Sink, context: SinkContext) -> None:
        auth = (cfg.username, cfg.password) if cfg.username else None
        super().__init__(cfg, HttpClient(cfg.url, cfg.timeout, auth), context)
        self.params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self.params["rp"] = cfg.retention_policy
        self._db_checked = False

    def before_write(self) -> None:
        if self._db_checked:
            return
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

    def answer(self, reply: Reply) -> None:
        status, text = reply.status, reply.text.strip()[:500]
        if status == 400:
            dropped = _DROPPED.search(text)
            raise RejectedPoints(f"{self.name}: 400 {text}", int(dropped.group(1)) if dropped else None)
        if status == 404 and "database not found" in text:
            self._db_checked = False
        if status in (401, 403):
            raise SinkUnavailable(f"{self.name}: {status} {text}: check username/password in agent.yaml")
        raise SinkUnavailable(f"{self.name}: HTTP {status} {text}")


def _make(config: Any, context: SinkContext) -> InfluxV1:
    assert isinstance(config, InfluxV1Sink)
    return InfluxV1(config, context)


register(SinkPlugin("influxdb_v1", InfluxV1Sink, _make))
