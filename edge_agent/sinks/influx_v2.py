"""InfluxDB v2 API sink (``type: influxdb_v2``: InfluxDB 2.x, 3.x, and 1.8+) via influxdb-client.

Writes are synchronous: the client's batching mode only logs failures, and we must know.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from pydantic import Field
from urllib3.exceptions import HTTPError

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
from edge_agent.sinks.line_protocol import LineProtocol
from edge_agent.store.catalog import SeriesCatalog


class InfluxV2Sink(SinkConfig):
    """``agent.yaml`` options of an InfluxDB v2-API destination."""

    type: Literal["influxdb_v2"]
    url: Annotated[str, Field(pattern=r"^https?://")]
    org: str
    bucket: TagValue
    token: str = ""
    gzip: bool | Literal["auto"] = Field("auto", description="compress bodies; auto: except over loopback")


class InfluxV2:
    def __init__(self, cfg: InfluxV2Sink) -> None:
        # influxdb-client costs ~13 MB of memory: imported only when a v2 sink is configured.
        from influxdb_client.client.influxdb_client import InfluxDBClient  # noqa: PLC0415
        from influxdb_client.client.write_api import SYNCHRONOUS  # noqa: PLC0415
        from influxdb_client.domain.write_precision import WritePrecision  # noqa: PLC0415
        from influxdb_client.rest import ApiException  # noqa: PLC0415

        self._api_exception: type[Exception] = ApiException
        self._precision = WritePrecision.NS
        self.cfg = cfg
        self.name = f"influxdb_v2:{cfg.url.rstrip('/')}/{cfg.org}/{cfg.bucket}"
        self.batch_size, self.concurrency = cfg.batch_size, cfg.concurrency
        self._client: Any = InfluxDBClient(
            url=cfg.url,
            token=cfg.token,
            org=cfg.org,
            enable_gzip=compress_for(cfg.url, cfg.gzip),
            timeout=int(cfg.timeout * 1000),
            retries=False,
        )
        self._write: Any = self._client.write_api(write_options=SYNCHRONOUS)
        self._encoder: LineProtocol | None = None
        self._encoder_lock = threading.Lock()

    def write(self, batch: Batch, catalog: SeriesCatalog) -> None:
        with self._encoder_lock:
            encoder = self._encoder
            encoder = self._encoder = LineProtocol(catalog) if encoder is None else encoder.follow(catalog)
        body = encoder.encode(batch)
        try:
            self._write.write(
                bucket=self.cfg.bucket,
                org=self.cfg.org,
                record=body,
                write_precision=self._precision,
            )
        except self._api_exception as exc:
            status: int | None = getattr(exc, "status", None)
            answer: Any = getattr(exc, "body", None)
            reason: Any = getattr(exc, "reason", None)
            text: str = (answer or reason or "").strip()[:500] if isinstance(answer or "", str) else str(reason)
            if status in (400, 422):
                raise RejectedPoints(f"{self.name}: {status} {text}") from exc
            hint = ": check token and org in agent.yaml" if status in (401, 403) else ""
            if status == 404:
                hint = ": no v2 write API or no such bucket (InfluxDB 1.x before 1.8 needs type: influxdb_v1)"
            raise SinkUnavailable(f"{self.name}: HTTP {status} {text}{hint}") from exc
        except (HTTPError, OSError) as exc:
            raise SinkUnavailable(f"{self.name}: {exc.__class__.__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def _make(config: Any, context: SinkContext) -> InfluxV2:
    assert isinstance(config, InfluxV2Sink)
    return InfluxV2(config)


register(SinkPlugin("influxdb_v2", InfluxV2Sink, _make))
