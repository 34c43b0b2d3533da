"""OPC UA collector speed against raw asyncua, side by side in one run.

An asyncua server (a separate process) serves 10,000 Double variables and 1,000 more that it
rewrites every 100 ms with a sequence number.
  polled:  our OpcUaCollector.collect() over a 10,000-node profile against asyncua's
           Client.read_attributes of the same nodes (the reference), ROUNDS alternating rounds
           of SECONDS each; nodes read per second and the ratio (goal >= 0.9).
  subscribed: 1,000 monitored items (sampling 50 ms, queue 10) through our collector for
           SECONDS; every sequence number the server wrote is looked for: delivered % (goal
           100 %), and our process's CPU seconds per million values delivered, against asyncua's
           own subscription of the same items with a handler that only keeps the values.

    python benchmarks/opcua.py [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asyncua import Client

from edge_agent.collectors.opcua.client import OpcUaCollector
from edge_agent.collectors.opcua.profile import OpcUaProfile

NS = "urn:bench:opcua"
POLLED, WATCHED = 10_000, 1_000
SERVER = textwrap.dedent(
    f"""
    import asyncio, sys, time
    from asyncua import Server, ua
    async def main():
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{{sys.argv[1]}}/bench")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace("{NS}")
        folder = await server.nodes.objects.add_object(ua.NodeId("B", ns), ua.QualifiedName("B", ns))
        for i in range({POLLED}):
            await folder.add_variable(ua.NodeId(f"P{{i}}", ns), ua.QualifiedName(f"P{{i}}", ns), float(i))
        watched = [await folder.add_variable(ua.NodeId(f"W{{i}}", ns), ua.QualifiedName(f"W{{i}}", ns), 0.0)
                   for i in range({WATCHED})]
        await server.start()
        print("ready", flush=True)
        seq = 0
        start = time.monotonic()
        while True:
            seq += 1
            for node in watched:
                value = ua.DataValue(ua.Variant(float(seq), ua.VariantType.Double))
                await server.write_attribute_value(node.nodeid, value)
            print(f"seq {{seq}}", flush=True)
            await asyncio.sleep(max(0.0, start + seq * 0.1 - time.monotonic()))
    asyncio.run(main())
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def profile(kind: str) -> OpcUaProfile:
    if kind == "polled":
        nodes = [{"name": f"p{i}", "node": f"nsu={NS};s=P{i}"} for i in range(POLLED)]
    else:
        nodes = [
            {"name": f"w{i}", "node": f"nsu={NS};s=W{i}", "subscribe": True}
            | {"sampling_interval": 0.05, "queue_size": 10}
            for i in range(WATCHED)
        ]
    return OpcUaProfile.model_validate({"name": f"bench-{kind}", "protocol": "opcua", "nodes": nodes})


async def raw_reads(endpoint: str, seconds: float) -> float:
    client = Client(endpoint, timeout=30)
    await client.connect()
    try:
        index = await client.get_namespace_index(NS)
        nodes = [client.get_node(f"ns={index};s=P{i}") for i in range(POLLED)]
        count, end = 0, time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            values = await client.read_attributes(nodes)
            count += len(values)
        return count / (time.perf_counter() - start)
    finally:
        await client.disconnect()


async def our_reads(endpoint: str, seconds: float) -> float:
    c = OpcUaCollector(profile("polled"), endpoint, {}, time.time_ns, timeout_s=30)
    await c.connect()
    try:
        count, end = 0, time.perf_counter() + seconds
        start = time.perf_counter()
        while time.perf_counter() < end:
            batch = await c.collect()
            count += len(batch)
        return count / (time.perf_counter() - start)
    finally:
        await c.close()


async def subscribed(endpoint: str, seconds: float, written: Any) -> tuple[float, float, int]:
    """(delivered %, CPU s per million values, values delivered)."""
    c = OpcUaCollector(profile("watched"), endpoint, {}, time.time_ns, timeout_s=30)
    await c.connect()
    got: list[np.ndarray] = []
    first = written()
    cpu = time.process_time()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(0.5)
        batch = await c.collect()
        n = len(batch) - WATCHED  # the polled part of collect() repeats every node once
        got.append(np.stack([batch.signal[:n], batch.value[:n]]))
    last = written()
    await asyncio.sleep(1.0)  # what the server wrote by `last` has been published
    batch = await c.collect()
    n = len(batch) - WATCHED
    got.append(np.stack([batch.signal[:n], batch.value[:n]]))
    cpu = time.process_time() - cpu
    await c.close()
    pairs = np.concatenate(got, axis=1)
    window = (pairs[1] > first) & (pairs[1] <= last)
    delivered = len({(int(s), int(v)) for s, v in pairs[:, window].T.tolist()})
    expected = WATCHED * (last - first)
    return 100.0 * delivered / max(expected, 1), cpu / max(pairs.shape[1], 1) * 1e6, int(pairs.shape[1])


class _Count:
    """asyncua subscription handler that only keeps the values (the reference's whole work)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.values.append(val)


async def raw_subscribed(endpoint: str, seconds: float) -> tuple[float, int]:
    """asyncua's own subscription of the same items: (CPU s per million values, values)."""
    client = Client(endpoint, timeout=30)
    await client.connect()
    try:
        index = await client.get_namespace_index(NS)
        nodes = [client.get_node(f"ns={index};s=W{i}") for i in range(WATCHED)]
        handler = _Count()
        sub = await client.create_subscription(100, handler)
        await sub._subscribe(nodes, queuesize=10, sampling_interval=50)
        await asyncio.sleep(1.0)
        before, cpu = len(handler.values), time.process_time()
        await asyncio.sleep(seconds)
        cpu, values = time.process_time() - cpu, len(handler.values) - before
        return cpu / max(values, 1) * 1e6, values
    finally:
        await client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    latest = {"seq": 0}

    def follow() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            latest["seq"] = int(line.split()[1])

    import threading  # noqa: PLC0415

    threading.Thread(target=follow, daemon=True).start()
    endpoint = f"opc.tcp://127.0.0.1:{port}/bench"
    try:
        raw: list[float] = []
        ours: list[float] = []
        for r in range(args.rounds):
            order = [("raw", raw_reads, raw), ("ours", our_reads, ours)]
            for _, run, into in order if r % 2 == 0 else reversed(order):
                into.append(asyncio.run(run(endpoint, args.seconds)))
        pct, cpu_per_m, values = asyncio.run(subscribed(endpoint, args.seconds, lambda: latest["seq"]))
        raw_cpu_per_m, raw_values = asyncio.run(raw_subscribed(endpoint, args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    r, o = statistics.median(raw), statistics.median(ours)
    print(f"polled, {POLLED} nodes, {args.rounds} rounds of {args.seconds:g} s, medians:")
    print(f"  asyncua read_attributes  {r:10.0f} nodes/s")
    print(f"  our collector            {o:10.0f} nodes/s   ratio {o / r:.2f} (goal >= 0.9)")
    print(f"subscribed, {WATCHED} items changing at 10 Hz for {args.seconds:g} s:")
    print(f"  delivered {pct:.2f} % ({values} values), our CPU {cpu_per_m:.1f} s per million values")
    print(
        f"  asyncua's own subscription, a handler that only keeps the values: {raw_cpu_per_m:.1f} s per million "
        f"({raw_values} values); ours / asyncua {cpu_per_m / raw_cpu_per_m:.2f} (ours also polls every node "
        "each 0.5 s)"
    )


if __name__ == "__main__":
    main()
