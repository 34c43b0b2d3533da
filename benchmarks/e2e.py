"""End to end against Node-RED: Modbus TCP in, InfluxDB out, both systems in one invocation.

Runs the peer harness in ``../shared/peers`` (a measuring instrument kept outside the project:
pymodbus servers with UNITS unit ids x REGS holding registers, a fresh InfluxDB 1.6.7, and a
fixed measuring window for CPU, RSS and the values that landed) with Node-RED 4.1 and then with
our agent, one after the other. Our agent runs with all analytics on (anomaly scoring, alarms and
machine scores on every value). Two shapes:

* ``peer`` (Node-RED's own workload): 10 units x 125 registers at each ``--periods`` ms. Goals:
  kept up >= 99 %, CPU per value <= 0.5 x Node-RED's, peak RSS <= 150 MB.
* ``plant`` (a plant: many devices with their own connections, tens of registers, 1 s):
  ``--plant-units`` devices (1,000) x 50 registers every 1,000 ms, Node-RED with one Modbus client
  per device (``CLIENTS=per-unit``), our agent with one connection per device (``CONN=own``).
  Goals: kept up >= 99 %, CPU per value <= 0.4 x Node-RED's, peak RSS <= 300 MB.

    python benchmarks/e2e.py [--shapes peer plant] [--periods 10 100] [--seconds 60]

The two systems use the same ports and must not run at the same time; each run takes about
SECONDS + 20 s. The box is shared: run it in a quiet spell, and compare the ratios, which travel
between machines better than the absolute rates.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Shape:
    """One workload: devices x registers every period_ms, and its goals."""

    name: str
    units: int
    regs: int
    period_ms: int
    cpu_goal: float
    rss_goal_mb: float
    peer_env: tuple[tuple[str, str], ...] = ()
    agent_env: tuple[tuple[str, str], ...] = ()

    @property
    def offered(self) -> float:
        """Values offered per second."""
        return self.units * self.regs * 1000 / self.period_ms


@dataclass
class Row:
    system: str
    shape: Shape
    values_per_s: float
    cpu_s_per_million: float
    rss_mb: float
    keeping_up_pct: float


def parse(system: str, shape: Shape, output: str) -> Row:
    """The harness's last ``name: key=value ...`` line."""
    lines = [line for line in output.splitlines() if re.match(r"^[\w-]+: values_per_s=", line)]
    if not lines:
        raise RuntimeError(f"{system} on {shape.name} printed no result line; its output ends:\n{output[-2000:]}")
    fields = dict(kv.split("=", 1) for kv in lines[-1].split(":", 1)[1].split())
    return Row(
        system,
        shape,
        float(fields["values_per_s"]),
        float(fields["cpu_s_per_million"]),
        float(fields["rss_mb"]),
        float(fields.get("keeping_up_pct", "nan")),
    )


def run(folder: Path, script: str, env: dict[str, str]) -> str:
    print(f"  running {folder.name}/{script} ({' '.join(f'{k}={v}' for k, v in sorted(env.items()))})", flush=True)
    done = subprocess.run(
        [f"./{script}"],
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{folder / script} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done.stdout


def ensure_node_red(folder: Path) -> None:
    if (folder / "node_modules").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("npm is not installed: the Node-RED peer needs Node 20 and npm")
    print("  installing the Node-RED peer (npm ci, once)", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, check=True)


def shapes(names: list[str], periods: list[int], units: int, plant_units: int) -> list[Shape]:
    """The workloads asked for, in order."""
    out: list[Shape] = []
    for name in names:
        if name == "peer":
            out += [Shape(f"peer {p} ms", units, 125, p, 0.5, 150.0) for p in periods]
        else:
            out.append(
                Shape(
                    "plant",
                    plant_units,
                    50,
                    1000,
                    0.4,
                    300.0,
                    peer_env=(("CLIENTS", "per-unit"),),
                    agent_env=(("CONN", "own"),),
                )
            )
    return out


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers")
    parser.add_argument("--shapes", nargs="+", choices=["peer", "plant"], default=["peer"])
    parser.add_argument("--periods", type=int, nargs="+", default=[10, 100], help="peer shape's poll periods, ms")
    parser.add_argument("--seconds", type=int, default=60, help="measuring window per run, s")
    parser.add_argument("--units", type=int, default=10, help="peer shape's units")
    parser.add_argument("--plant-units", type=int, default=1000, help="plant shape's devices")
    parser.add_argument("--agent", type=Path, default=Path(sys.executable).parent / "edge-agent")
    args = parser.parse_args()
    peers = args.peers.resolve()
    if not (peers / "node-red" / "run_peer.sh").is_file():
        sys.exit(f"no peer harness in {peers} (give --peers)")
    ensure_node_red(peers / "node-red")
    rows: list[tuple[Row, Row]] = []
    for shape in shapes(args.shapes, args.periods, args.units, args.plant_units):
        env = {
            "UNITS": str(shape.units),
            "REGS": str(shape.regs),
            "RATE_MS": str(shape.period_ms),
            "SECONDS_RUN": str(args.seconds),
        }
        peer = parse("node-red", shape, run(peers / "node-red", "run_peer.sh", {**env, **dict(shape.peer_env)}))
        agent_env = {**env, **dict(shape.agent_env), "EA": str(args.agent.resolve())}
        ours = parse("edge-agent", shape, run(peers / "edge-agent", "run_agent.sh", agent_env))
        rows.append((peer, ours))
    print(f"\n{args.seconds} s windows, one system after the other\n")
    print("| shape | system | devices x registers | period | values/s | kept up | CPU-s / M values | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for pair in rows:
        for r in pair:
            s = r.shape
            print(
                f"| {s.name} | {r.system} | {s.units} x {s.regs} | {s.period_ms} ms | {r.values_per_s:,.0f} "
                f"| {r.keeping_up_pct:.1f} % | {r.cpu_s_per_million:.2f} | {r.rss_mb:.0f} |"
            )
    print()
    for peer, ours in rows:
        s = ours.shape
        kept = ours.values_per_s / s.offered
        cpu = ours.cpu_s_per_million / peer.cpu_s_per_million
        print(
            f"{s.name}: ours / Node-RED values {ours.values_per_s / peer.values_per_s:.3f}, "
            f"CPU per value {cpu:.2f} (goal <= {s.cpu_goal}: {verdict(cpu <= s.cpu_goal)}), "
            f"RSS {ours.rss_mb / peer.rss_mb:.2f}; "
            f"we kept up with {kept:.1%} of {s.offered:,.0f} values/s (goal >= 99 %: {verdict(kept >= 0.99)}), "
            f"peak RSS {ours.rss_mb:.0f} MB (goal <= {s.rss_goal_mb:.0f}: {verdict(ours.rss_mb <= s.rss_goal_mb)})"
        )


if __name__ == "__main__":
    main()
