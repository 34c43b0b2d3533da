"""Modbus client speed: our TCP link and collector against pymodbus' own client, side by side.

One pymodbus server (a separate process, so the clients do not share its event loop) serves
unit 1 with 125 holding registers. In the same run, alternating order, each client makes
REQUESTS reads of 125 registers, one in flight (as a poll does):
  pymodbus:  AsyncModbusTcpClient.read_holding_registers (the reference);
  link:      our TcpLink.read (MBAP framing, numpy decode of the words);
  collector: our ModbusCollector.collect over a profile of 62 float32 fields (plan, read, decode
             to engineering values, a Batch);
  pymodbus-rtu: pymodbus' client with its RTU framer, against the same server in RTU mode;
  rtutcp:    our RTU-over-TCP link (pymodbus' RTU framer inside) against that server.
Prints requests/s, registers/s and client CPU per request, and the ratios to pymodbus (goal:
requests/s and registers/s >= 0.9 x pymodbus; rtutcp is compared with pymodbus-rtu). Both
sides wait on the same server, so the client CPU per request shows what our side costs.

    python benchmarks/modbus.py [--requests 3000] [--rounds 3]
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.collectors.modbus.client import ModbusCollector
from edge_agent.collectors.modbus.profile import ModbusProfile
from edge_agent.collectors.modbus.rtu import RtuLink
from edge_agent.collectors.modbus.tcp import TcpLink

COUNT = 125
SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice
    async def main():
        blocks = ([SimData(0, count=1, datatype=DataType.BITS)], [SimData(0, count=1, datatype=DataType.BITS)],
                  [SimData(0, values=list(range(1000, 1125)), datatype=DataType.REGISTERS)],
                  [SimData(0, count=1, datatype=DataType.REGISTERS)])
        framer = FramerType.RTU if sys.argv[2] == "rtu" else FramerType.SOCKET
        address = ("127.0.0.1", int(sys.argv[1]))
        server = ModbusTcpServer([SimDevice(id=1, simdata=blocks)], framer=framer, address=address)
        await server.serve_forever()
    asyncio.run(main())
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(framer: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port), framer])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the pymodbus server did not start")


async def run_pymodbus(port: int, n: int, rtu: bool = False) -> None:
    from pymodbus.client import AsyncModbusTcpClient  # noqa: PLC0415
    from pymodbus.framer import FramerType  # noqa: PLC0415

    framer = FramerType.RTU if rtu else FramerType.SOCKET
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, framer=framer)
    await client.connect()
    for _ in range(n):
        reply = await client.read_holding_registers(0, count=COUNT, device_id=1)
        assert len(reply.registers) == COUNT
    client.close()


async def run_pymodbus_rtu(port: int, n: int) -> None:
    await run_pymodbus(port, n, rtu=True)


async def run_link(port: int, n: int, rtu: bool = False) -> None:
    link: TcpLink | RtuLink = RtuLink.tcp("127.0.0.1", port, 5) if rtu else TcpLink("127.0.0.1", port, 5)
    await link.connect()
    for _ in range(n):
        reply = await link.read("holding", 0, COUNT, 1)
        assert reply.words is not None
        assert reply.words.shape[0] == COUNT
    link.close()


async def run_collector(port: int, n: int) -> None:
    fields = [{"name": f"f{i}", "table": "holding", "address": 2 * i, "type": "float32"} for i in range(62)]
    profile = ModbusProfile.model_validate({"name": "bench", "protocol": "modbus", "fields": fields})
    collector = ModbusCollector(profile, TcpLink("127.0.0.1", port, 5), 1, time.time_ns)
    await collector.connect()
    for _ in range(n):
        batch = await collector.collect()
        assert len(batch) == 62
        assert bool(np.isfinite(batch.value).all())
    await collector.close()


async def run_rtutcp(port: int, n: int) -> None:
    await run_link(port, n, rtu=True)


def measure(run: object, port: int, n: int) -> tuple[float, float]:
    """(requests/s, client CPU ms per request)."""
    assert callable(run)
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run(port, n))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tcp, tcp_port = start_server("socket")
    rtu, rtu_port = start_server("rtu")
    runs = {
        "pymodbus": (run_pymodbus, tcp_port),
        "link": (run_link, tcp_port),
        "collector": (run_collector, tcp_port),
        "pymodbus-rtu": (run_pymodbus_rtu, rtu_port),
        "rtutcp": (run_rtutcp, rtu_port),
    }
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    try:
        for run, port in runs.values():  # warm up
            measure(run, port, 200)
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                run, port = runs[name]
                results[name].append(measure(run, port, args.requests))
    finally:
        for p in (tcp, rtu):
            p.terminate()
            p.wait(10)
    print(f"{args.requests} reads of {COUNT} registers per client, {args.rounds} rounds, medians")
    print(f"{'client':<10} {'req/s':>8} {'regs/s':>10} {'CPU ms/req':>11} {'rate ratio':>11} {'CPU ratio':>10}")
    for name, rows in results.items():
        ref = "pymodbus-rtu" if name.startswith(("rtu", "pymodbus-rtu")) else "pymodbus"
        ref_rate = statistics.median(r for r, _ in results[ref])
        ref_cpu = statistics.median(c for _, c in results[ref])
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"{name:<10} {rate:8.0f} {rate * COUNT:10.0f} {cpu:11.3f} {rate / ref_rate:11.2f} {cpu / ref_cpu:10.2f}")
    print("ratios to pymodbus (rtutcp: to pymodbus-rtu); goal >= 0.9 (requests/s and registers/s move together)")


if __name__ == "__main__":
    main()
