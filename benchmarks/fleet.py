"""A fleet on one box: N agents (one per workshop) into one InfluxDB and one MQTT broker.

What one workshop's agent sends, measured, and what 10, 100 and 1,000 workshops add up to
(``docs/scaling.md``). Everything runs on loopback, started and stopped here:

* one influxd (Debian's 1.6.7) and one mosquitto (``sys_interval 1`` for its byte counters);
* ``--plants`` demo workshops (``edge-agent plant``: real OPC UA and Modbus servers, 6 machines and
  an energy meter each, in real time);
* ``--agents`` agents (``edge-agent run``), agent i on plant i mod plants, each its own workshop
  (sites ``s1``, ``s2``; workshops ``w01`` ...), every device polled each second, analytics on,
  writing to InfluxDB and to the broker (``format: uns``).

After ``--warmup`` s it measures over ``--seconds`` s: points and bytes per second into InfluxDB
(influxd's own ``httpd`` statistics: the request bodies as sent), messages and bytes per second into
the broker (``$SYS/broker/bytes/received``), each agent's CPU (share of one core, from
``/proc/PID/stat``) and peak RSS (``VmHWM``), the database's series per measurement (``SHOW SERIES
EXACT CARDINALITY``) and its disk growth. Prints the per-agent figures and the fleet totals.

    python benchmarks/fleet.py [--agents 20] [--plants 4] [--warmup 90] [--seconds 120]

The box is shared: the agents, the plants, influxd and mosquitto all run on it. The figures per
agent (points, bytes, series) do not depend on the box; CPU and RSS do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_agent.demo.plant import Plant  # noqa: E402
from edge_agent.demo.servers import free_port  # noqa: E402
from edge_agent.demo.workshop import demo_config, write_config  # noqa: E402
from tests.influx_server import InfluxServer  # noqa: E402

DB = "fleet"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


class Broker:
    """mosquitto on a free loopback port, anonymous, publishing its counters every second."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        conf = root / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\n"
            f"persistence false\nlog_dest stderr\nlog_type error\n" + ("user root\n" if os.geteuid() == 0 else ""),
            encoding="utf-8",
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(conf)], stderr=(root / "mosquitto.log").open("wb"))
        self.counters: dict[str, float] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-bench-sys")

        def on_message(client: Any, userdata: Any, message: Any) -> None:
            with contextlib.suppress(ValueError):
                self.counters[message.topic] = float(message.payload)

        self.client.on_message = on_message
        self.client.on_connect = lambda c, *a: c.subscribe("$SYS/broker/#")
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.connect("127.0.0.1", self.port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.client.loop_start()

    def counter(self, name: str) -> float:
        return self.counters.get(f"$SYS/broker/{name}", float("nan"))

    def stop(self) -> None:
        self.client.loop_stop()
        self.process.terminate()
        self.process.wait(30)


@dataclass
class Reading:
    at: float
    influx: dict[str, float]
    broker_bytes: float
    broker_messages: float
    cpu: dict[int, float]
    servers_cpu: dict[str, float]
    disk_mb: float


def influx_stats(server: InfluxServer) -> dict[str, float]:
    """influxd's ``httpd`` statistics (writeReqBytes, pointsWrittenOK, ...)."""
    for row in server.query("SHOW STATS"):
        if row.get("name") == "httpd":
            return {c: float(v) for c, v in zip(row["columns"], row["values"][0], strict=True)}
    return {}


def cardinality(server: InfluxServer) -> dict[str, int]:
    """Series per measurement."""
    out: dict[str, int] = {}
    for row in server.query("SHOW SERIES EXACT CARDINALITY", DB):
        name = row.get("name", "")
        for values in row.get("values", []):
            out[name] = out.get(name, 0) + int(values[-1])
    return out


def start_plants(agent: Path, work: Path, count: int) -> tuple[list[subprocess.Popen[bytes]], list[Plantlet]]:
    procs, plants = [], []
    for p in range(count):
        opcua, modbus = free_port(), free_port()
        command = [str(agent), "plant", "--seed", str(p + 1), "--opcua-port", str(opcua), "--modbus-port", str(modbus)]
        log = (work / f"plant{p}.log").open("wb")
        procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
        plants.append(Plantlet(p + 1, f"opc.tcp://127.0.0.1:{opcua}/demo", modbus))
    return procs, plants


@dataclass
class Plantlet:
    """One running demo plant: its seed and where it serves."""

    seed: int
    endpoint: str
    modbus_port: int


def start_agent(agent: Path, work: Path, a: int, plant: Plantlet, influx: InfluxServer, broker: Broker) -> Started:
    folder = work / f"agent{a:02d}"
    folder.mkdir()
    sinks = [
        {"type": "influxdb_v1", "url": influx.url, "database": DB},
        {"type": "mqtt", "url": f"mqtt://127.0.0.1:{broker.port}", "topic_prefix": "fleet/"},
    ]
    store = str(folder / "store.sqlite3")
    cfg: dict[str, Any] = demo_config(Plant(seed=plant.seed), plant.endpoint, plant.modbus_port, store, sinks)
    port = free_port()
    cfg["agent"].update(
        {"id": f"agent-{a:02d}", "site": f"s{a % 2 + 1}", "workshop": f"w{a:02d}", "health_listen": f"127.0.0.1:{port}"}
    )
    path = write_config(folder / "agent.yaml", cfg)
    log = (folder / "agent.log").open("wb")
    proc = subprocess.Popen([str(agent), "run", "-c", str(path)], stdout=log, stderr=subprocess.STDOUT)
    return Started(proc, f"http://127.0.0.1:{port}/health")


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    health: str


def sinks_at_end(agents: list[Started]) -> tuple[int, dict[str, int]]:
    """How many agents have every sink ok, and the points each kind of sink acknowledged."""
    ok = 0
    acked = {"influxdb_v1": 0, "mqtt": 0}
    for a in agents:
        try:
            h = requests.get(a.health, timeout=5).json()
        except (requests.RequestException, ValueError):
            continue
        ok += all(s["ok"] for s in h["sinks"])
        for s in h["sinks"]:
            acked["mqtt" if s["name"].startswith("mqtt") else "influxdb_v1"] += s["written"]
    return ok, acked


def report(first: Reading, last: Reading, agents: list[Started], influx: InfluxServer, influx_pid: int) -> None:
    span = last.at - first.at
    n = len(agents)
    dead = [i for i, a in enumerate(agents) if a.process.poll() is not None]
    sinks_ok, acked = sinks_at_end(agents)
    card = cardinality(influx)
    points = (last.influx.get("pointsWrittenOK", 0) - first.influx.get("pointsWrittenOK", 0)) / span
    wbytes = (last.influx.get("writeReqBytes", 0) - first.influx.get("writeReqBytes", 0)) / span
    mbytes = (last.broker_bytes - first.broker_bytes) / span
    mmsgs = (last.broker_messages - first.broker_messages) / span
    cpu = [(last.cpu[p] - first.cpu[p]) / span for p in last.cpu]
    rss = [peak_rss_mb(a.process.pid) for a in agents if a.process.poll() is None]
    series = sum(card.values())
    disk = (last.disk_mb - first.disk_mb) / span
    print(f"\n{n} agents, window {span:.0f} s; agents that died: {dead or 'none'}")
    print(f"agents whose sinks are all ok at the end: {sinks_ok} of {n}\n")
    print("| per agent (one workshop: 6 machines + energy meter, 1 s polls) | value |")
    print("| --- | --- |")
    print(f"| points/s into InfluxDB | {points / n:,.1f} |")
    print(f"| bytes/s into InfluxDB (line protocol, uncompressed on loopback) | {wbytes / n:,.0f} |")
    print(f"| bytes per point | {wbytes / max(points, 1e-9):,.1f} |")
    print(f"| MQTT messages/s | {mmsgs / n:,.1f} |")
    print(f"| MQTT bytes/s (into the broker, with headers) | {mbytes / n:,.0f} |")
    print(f"| series in InfluxDB | {series / n:,.1f} |")
    print(f"| InfluxDB disk growth, MB/day (1.6.7, before compaction settles) | {disk / n * 86400:,.1f} |")
    print(f"| agent CPU, % of one core (mean, max) | {100 * sum(cpu) / n:.2f}, {100 * max(cpu):.2f} |")
    print(f"| agent peak RSS, MB (mean, max) | {sum(rss) / max(len(rss), 1):.0f}, {max(rss, default=0):.0f} |")
    print("\nseries per measurement (all agents):", json.dumps(dict(sorted(card.items()))))
    print("\n| workshops | points/s | InfluxDB MB/s | MQTT msg/s | MQTT MB/s | series | disk GB/day |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for w in (1, 10, 100, 1000):
        print(
            f"| {w:,} | {points / n * w:,.0f} | {wbytes / n * w / 1e6:,.3f} | {mmsgs / n * w:,.0f} "
            f"| {mbytes / n * w / 1e6:,.3f} | {series / n * w:,.0f} | {disk / n * 86400 * w / 1e3:,.2f} |"
        )
    servers = {k: 100 * (last.servers_cpu[k] - first.servers_cpu[k]) / span for k in last.servers_cpu}
    print(
        f"\nfor all {n} agents: influxd {servers['influxd']:.1f} % of one core, peak RSS "
        f"{peak_rss_mb(influx_pid):.0f} MB; mosquitto {servers['mosquitto']:.1f} %; "
        f"points acknowledged since start: {acked}"
    )


def stop(processes: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    for p in processes:
        p.send_signal(signal.SIGTERM)
    for p in processes:
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--plants", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=90.0, help="s before the window")
    parser.add_argument("--seconds", type=float, default=120.0, help="measuring window, s")
    parser.add_argument("--agent", type=Path, default=Path(sys.executable).parent / "edge-agent")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    (work / "influx").mkdir()
    influx = InfluxServer(work / "influx")
    influx.start()
    influx.create_database(DB)
    assert influx.process is not None
    influx_pid = influx.process.pid
    broker = Broker(work)
    plants: list[subprocess.Popen[bytes]] = []
    agents: list[Started] = []
    try:
        plants, where = start_plants(args.agent, work, args.plants)
        time.sleep(5)  # the plants' servers come up (the agents would retry anyway)
        agents = [start_agent(args.agent, work, a, where[a % len(where)], influx, broker) for a in range(args.agents)]
        print(f"{args.agents} agents on {args.plants} plants started; warming up {args.warmup:.0f} s", flush=True)
        time.sleep(args.warmup)

        def reading() -> Reading:
            return Reading(
                time.monotonic(),
                influx_stats(influx),
                broker.counter("bytes/received"),
                broker.counter("publish/messages/received"),
                {a.process.pid: cpu_s(a.process.pid) for a in agents},
                {"influxd": cpu_s(influx_pid), "mosquitto": cpu_s(broker.process.pid)},
                du_mb(work / "influx"),
            )

        first = reading()
        time.sleep(args.seconds)
        report(first, reading(), agents, influx, influx_pid)
        print(f"logs and stores: {work}")
    finally:
        stop([a.process for a in agents], 120)
        stop(plants, 30)
        broker.stop()
        influx.stop()


if __name__ == "__main__":
    main()
