"""The v2-API sink against the real InfluxDB 1.6.7.

1.6.7 has no ``/api/v2/write`` (1.8 added it): the sink must say so clearly. To prove what the
sink sends lands correctly, a loopback shim maps ``/api/v2/write?bucket=B`` onto 1.x
``/write?db=B`` the way InfluxDB 1.8's compatibility API does, forwarding the body untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import requests

from edge_agent.collectors.batch import Batch
from edge_agent.sinks.base import RejectedPoints, SinkContext, SinkUnavailable
from edge_agent.sinks.influx.v2 import InfluxV2, InfluxV2Sink
from edge_agent.store.catalog import Series, SeriesCatalog
from tests.conftest import InfluxServer

CATALOG = SeriesCatalog({0: Series.of("m", {}, "v")})


def sink(url: str, bucket: str) -> InfluxV2:
    return InfluxV2(
        InfluxV2Sink(type="influxdb_v2", url=url, org="plant", bucket=bucket, token="t0ken", timeout=5.0, gzip=True),
        SinkContext(Path.cwd()),
    )


def test_v2_api_missing_on_influxdb_16_is_explained(influxdb: InfluxServer) -> None:
    with pytest.raises(SinkUnavailable, match=r"404.*no v2 write API"):
        sink(influxdb.url, "edge").write(Batch.of(1, [0], [1.0]), CATALOG)


@pytest.fixture
def v2_shim(influxdb: InfluxServer) -> Iterator[str]:
    class Shim(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/api/v2/write":
                self.send_error(404)
                return
            query = parse_qs(url.query)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-encoding", "content-type")}
            reply = requests.post(
                f"{influxdb.url}/write",
                data=body,
                headers=headers,
                timeout=10,
                params={"db": query["bucket"][0], "precision": query.get("precision", ["ns"])[0]},
            )
            self.send_response(reply.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.content)))
            self.end_headers()
            self.wfile.write(reply.content)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Shim)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_v2_sink_writes_gzip_line_protocol_that_lands(influxdb: InfluxServer, v2_shim: str) -> None:
    influxdb.create_database("v2bucket")
    catalog = SeriesCatalog({m: Series.of("raw", {"machine": f"m{m}", "signal": "temp"}, "value") for m in range(3)})
    i = np.arange(1000)
    batch = Batch.of(1_700_000_000_000_000_000 + i, (i % 3).astype(np.int32), 20 + i * 0.5)
    sink(v2_shim, "v2bucket").write(batch, catalog)
    (series,) = influxdb.query('SELECT count("value"), sum("value") FROM "raw"', "v2bucket")
    assert series["values"][0][1:] == [1000, pytest.approx(sum(20 + i * 0.5 for i in range(1000)))]


def test_v2_sink_reports_bad_data_as_rejected(influxdb: InfluxServer, v2_shim: str) -> None:
    influxdb.create_database("v2bad")
    # A string field first, then a float in the same field: the second is a type conflict.
    requests.post(f"{influxdb.url}/write", params={"db": "v2bad"}, data='raw value="x" 1', timeout=10)
    catalog = SeriesCatalog({0: Series.of("raw", {}, "value")})
    with pytest.raises(RejectedPoints, match="400"):
        sink(v2_shim, "v2bad").write(Batch.of(2, [0], [1.0]), catalog)
