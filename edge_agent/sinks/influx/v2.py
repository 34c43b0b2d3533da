"""InfluxDB v2 API sink (``type: influxdb_v2``: InfluxDB 2.x, 3.x, and 1.8+): ``/api/v2/write``.

Line protocol with nanosecond precision, gzip when not on loopback, the token in an
``Authorization: Token ...`` header (never in the URL). The same lean HTTP client as the 1.x sink
(:mod:`edge_agent.sinks.influx.http`), so a stop breaks off a write that hangs (``abort``) within the drain
time, and no client library is loaded.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field

from edge_agent.config.types import TagValue
from edge_agent.sinks.base import RejectedPoints, SinkContext, SinkPlugin, SinkUnavailable, normalized_url, register
from edge_agent.sinks.influx.http import HttpClient, Reply
from edge_agent.sinks.influx.write import InfluxSinkConfig, LineProtocolWriter


class InfluxV2Sink(InfluxSinkConfig):
    """``agent.yaml`` options of an InfluxDB v2-API destination."""

    type: Literal["influxdb_v2"]
    """the sink's kind"""
    url: Annotated[str, Field(pattern=r"^https?://")]
    """the database's base URL, http:// or https://"""
    org: Annotated[str, Field(min_length=1)]
    """the organisation"""
    bucket: TagValue
    """the bucket"""
    token: Annotated[
        str,
        Field(
            min_length=1,
            description="API token: ${VAR} from the environment, or token_file: PATH (InfluxDB 1.8 without "
            "authentication takes any, e.g. token: none)",
        ),
    ]

    def identity(self) -> str:
        return f"influxdb_v2:{normalized_url(self.url)}/{self.org}/{self.bucket}"


class InfluxV2(LineProtocolWriter):
    """Writes to ``{url}/api/v2/write?org=...&bucket=...&precision=ns``."""

    def __init__(self, cfg: InfluxV2Sink, context: SinkContext) -> None:
        headers = {"Authorization": f"Token {cfg.token}"}
        super().__init__(cfg, HttpClient(cfg.url, cfg.timeout, headers=headers), context)
        self.path = "/api/v2/write"
        self.params = {"org": cfg.org, "bucket": cfg.bucket, "precision": "ns"}

    def answer(self, reply: Reply) -> None:
        status, text = reply.status, _message(reply.text)
        if status in (400, 422):
            raise RejectedPoints(f"{self.name}: {status} {text}")
        hint = ""
        if status in (401, 403):
            hint = ": check token and org in agent.yaml"
        elif status == 404:
            hint = ": no v2 write API or no such bucket (InfluxDB 1.x before 1.8 needs type: influxdb_v1)"
        raise SinkUnavailable(f"{self.name}: HTTP {status} {text}{hint}")


def _message(text: str) -> str:
    """The ``message`` of a v2 error body (JSON), else the text itself (500 characters at most)."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:500] if message else text.strip()[:500]


def _make(config: Any, context: SinkContext) -> InfluxV2:
    assert isinstance(config, InfluxV2Sink)
    return InfluxV2(config, context)


register(SinkPlugin("influxdb_v2", InfluxV2Sink, _make))
