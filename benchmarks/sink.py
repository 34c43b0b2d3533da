"""Sink throughput: our store-and-forward path against a bare `requests` loop, side by side.

Fills the local store (SQLite) with N points, then pushes them to one real InfluxDB (Debian's
influxd, started here on a loopback port) in the same run:
  ours: Forwarder + InfluxV1 sink with its defaults (reads chunks, builds line protocol from
        arrays, gzip only off loopback, two writes in flight, acknowledges to the store);
  bare: a requests.Session posting pre-built line protocol in batches of 5,000 (no store, no
        formatting, no acknowledgement bookkeeping), one post at a time;
  bare2 (reference only): the same with two posts in flight, to show what concurrency alone buys.
Each runs ROUNDS times into fresh databases, alternating which goes first and waiting for
influxd to finish compacting before each run; medians are compared.
Prints both rates and the ratios (goals: ours >= 0.9 x bare, client CPU <= 2 x bare's).

    python benchmarks/sink.py [--points 1000000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.collectors.batch import Batch
from edge_agent.runtime.forwarder import Forwarder
from edge_agent.sinks.base import SinkContext
from edge_agent.sinks.influx.line_protocol import LineProtocol
from edge_agent.sinks.influx.v1 import InfluxV1, InfluxV1Sink
from edge_agent.store.catalog import Series, SeriesCatalog
from edge_agent.store.local import LocalStore
from tests.influx_server import InfluxServer

BATCH = 5_000
#: Our sink's default: compress except over loopback (here: off). ``--gzip`` forces it on.
GZIP: bool | str = "auto"


def make_points(n: int, seed: int = 7) -> tuple[list[Series], Batch]:
    """100 raw series (10 machines x 10 signals), one reading of each per 100 ms."""
    series = [
        Series.of(
            "raw",
            {
                "site": "bench",
                "workshop": "w1",
                "line": f"line-{m // 5}",
                "machine": f"M{m}",
                "device": f"M{m}",
                "signal": f"s{s}",
                "agent": "bench-1",
            },
            "value",
        )
        for m in range(10)
        for s in range(10)
    ]
    rng = np.random.default_rng(seed)
    start = 1_700_000_000_000_000_000
    idx = np.arange(n)
    ts = start + (idx // len(series)) * 100_000_000
    signal = (idx % len(series)).astype(np.int32)
    value = np.round(rng.normal(50, 10, n), 3)
    return series, Batch.of(ts.astype(np.int64), signal, value)


def cpu() -> float:
    """CPU seconds of this process (client side only; influxd is another process)."""
    return time.process_time()


def run_ours(server: InfluxServer, db: str, store: Path, series: list[Series], points: Batch) -> tuple[float, float]:
    local = LocalStore(store)
    buffer = local.points
    ids = local.series.register(series)
    config = InfluxV1Sink(type="influxdb_v1", url=server.url, database=db, batch_size=BATCH, gzip=GZIP)
    sink = InfluxV1(config, SinkContext(store.parent, store.parent))
    forwarder = Forwarder(buffer, local.series.catalog, sink)
    # What the pipeline does: one chunk per tick (here 10,000 points a chunk).
    for lo in range(0, len(points), 10_000):
        part = points.take(np.arange(lo, min(lo + 10_000, len(points))))
        buffer.append(part.remap(ids))
    c0, t0 = cpu(), time.perf_counter()
    sent = 0
    while (n := forwarder.step()) > 0:
        sent += n
    elapsed, used = time.perf_counter() - t0, cpu() - c0
    assert sent == len(points)
    assert buffer.stats().pending_points == 0
    forwarder.close()
    local.close()
    return elapsed, used


def run_bare(server: InfluxServer, db: str, lines: list[str], connections: int = 1) -> tuple[float, float]:
    """Pre-built bodies posted in order; with ``connections`` > 1, that many posts in flight."""
    sessions = [requests.Session() for _ in range(connections)]
    sessions[0].post(f"{server.url}/query", params={"q": f'CREATE DATABASE "{db}"'}, timeout=30)
    bodies = ["\n".join(lines[i : i + BATCH]).encode() for i in range(0, len(lines), BATCH)]

    def post(worker: int) -> None:
        for body in bodies[worker::connections]:
            reply = sessions[worker].post(
                f"{server.url}/write", params={"db": db, "precision": "ns"}, data=body, timeout=60
            )
            assert reply.status_code == 204, reply.text

    c0, t0 = cpu(), time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(post, range(connections)))
    elapsed, used = time.perf_counter() - t0, cpu() - c0
    for session in sessions:
        session.close()
    return elapsed, used


def influxd_cpu_s(server: InfluxServer) -> float:
    """CPU seconds influxd has used so far (Linux /proc)."""
    assert server.process is not None
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quiesce(server: InfluxServer, limit_s: float = 60.0) -> None:
    """Wait until influxd has finished background work (compactions) from the previous run."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = influxd_cpu_s(server)
        time.sleep(0.5)
        if influxd_cpu_s(server) - before < 0.03:
            return


def count(server: InfluxServer, db: str) -> int:
    (s,) = server.query('SELECT count("value") FROM "raw"', db)
    return int(s["values"][0][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--gzip", action="store_true", help="compress our bodies (default: auto, off on loopback)")
    args = parser.parse_args()
    global GZIP  # noqa: PLW0603 - a benchmark's knob
    GZIP = True if args.gzip else "auto"
    series, points = make_points(args.points)
    lines = LineProtocol(SeriesCatalog(dict(enumerate(series)))).lines(points)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "influxdb").mkdir()
        server = InfluxServer(root / "influxdb")
        server.start()
        try:
            runs: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": [], "bare2": []}
            for r in range(args.rounds):
                # Rotate who goes first; start each run with influxd idle.
                order = ["bare", "ours", "bare2"]
                for which in order[r % 3 :] + order[: r % 3]:
                    quiesce(server)
                    db = f"{which}{r}"
                    if which == "ours":
                        runs[which].append(run_ours(server, db, root / f"store{r}.sqlite3", series, points))
                    else:
                        runs[which].append(run_bare(server, db, lines, connections=2 if which == "bare2" else 1))
                    assert count(server, db) == args.points
        finally:
            server.stop()
    n = args.points
    med = {k: statistics.median(e for e, _ in v) for k, v in runs.items()}
    print(
        f"points: {n:,} per run, {args.rounds} rounds (order rotating), batches of {BATCH:,}, "
        f"our gzip {GZIP}, InfluxDB 1.6.7 on loopback"
    )
    names = {
        "bare": "bare requests loop",
        "ours": "our sink (store + forwarder)",
        "bare2": "reference: bare, 2 in flight",
    }
    for key in ("bare", "ours", "bare2"):
        cpu_med = statistics.median(c for _, c in runs[key])
        print(f"{names[key]:30s} {n / med[key]:12,.0f} points/s  median {med[key]:6.2f} s  client CPU {cpu_med:5.2f} s")
    cpu_ours, cpu_bare = (statistics.median(c for _, c in runs[k]) for k in ("ours", "bare"))
    print(f"ratio ours / bare (medians): {med['bare'] / med['ours']:.2f}  (goal >= 0.90)")
    print(f"client CPU ours / bare (medians): {cpu_ours / cpu_bare:.2f}  (goal <= 2.0)")
    print("all rounds (s): " + "; ".join(f"{k} " + ", ".join(f"{e:.2f}" for e, _ in v) for k, v in runs.items()))


if __name__ == "__main__":
    main()
