"""End to end against Node-RED on its own workload: Modbus TCP in, InfluxDB out, one invocation.

Runs the peer harness in ``../shared/peers`` (a measuring instrument kept outside the project:
a pymodbus server with UNITS unit ids x 125 holding registers, a fresh InfluxDB 1.6.7, and a
fixed measuring window for CPU, RSS and the values that landed) with Node-RED 4.1 and then with
our agent, one after the other, at each poll period. Our agent runs with all analytics on
(anomaly scoring and alarms on every value, OEE and KPIs where configured). Prints both rows and
the ratios, and the goals:

* values landed >= 99 % of UNITS x 125 x 1000 / period_ms per second;
* our CPU per value <= 0.5 x Node-RED's;
* our peak RSS <= 150 MB.

    python benchmarks/e2e.py [--peers ../shared/peers] [--periods 10 100] [--seconds 60]

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
REGS = 125


@dataclass
class Row:
    system: str
    period_ms: int
    values_per_s: float
    cpu_s_per_million: float
    rss_mb: float
    keeping_up_pct: float


def parse(system: str, period_ms: int, output: str) -> Row:
    """The harness's last ``name: key=value ...`` line."""
    lines = [line for line in output.splitlines() if re.match(r"^[\w-]+: values_per_s=", line)]
    if not lines:
        raise RuntimeError(f"{system} at {period_ms} ms printed no result line; its output ends:\n{output[-2000:]}")
    fields = dict(kv.split("=", 1) for kv in lines[-1].split(":", 1)[1].split())
    return Row(
        system,
        period_ms,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, default=ROOT.parent / "shared" / "peers")
    parser.add_argument("--periods", type=int, nargs="+", default=[10, 100], help="poll periods, ms")
    parser.add_argument("--seconds", type=int, default=60, help="measuring window per run, s")
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--agent", type=Path, default=Path(sys.executable).parent / "edge-agent")
    args = parser.parse_args()
    peers = args.peers.resolve()
    if not (peers / "node-red" / "run_peer.sh").is_file():
        sys.exit(f"no peer harness in {peers} (give --peers)")
    ensure_node_red(peers / "node-red")
    rows: list[Row] = []
    for period in args.periods:
        env = {"UNITS": str(args.units), "RATE_MS": str(period), "SECONDS_RUN": str(args.seconds)}
        rows.append(parse("node-red", period, run(peers / "node-red", "run_peer.sh", env)))
        agent_env = {**env, "EA": str(args.agent.resolve())}
        rows.append(parse("edge-agent", period, run(peers / "edge-agent", "run_agent.sh", agent_env)))
    print(f"\n{args.units} units x {REGS} registers, {args.seconds} s windows, one after the other\n")
    print("| system | period | values/s | kept up | CPU-s / M values | peak RSS MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r.system} | {r.period_ms} ms | {r.values_per_s:,.0f} | {r.keeping_up_pct:.1f} % "
            f"| {r.cpu_s_per_million:.2f} | {r.rss_mb:.0f} |"
        )
    print()
    for period in args.periods:
        peer = next(r for r in rows if r.system == "node-red" and r.period_ms == period)
        ours = next(r for r in rows if r.system == "edge-agent" and r.period_ms == period)
        offered = args.units * REGS * 1000 / period
        kept = ours.values_per_s / offered
        cpu = ours.cpu_s_per_million / peer.cpu_s_per_million
        print(
            f"{period} ms: ours / Node-RED values {ours.values_per_s / peer.values_per_s:.3f}, "
            f"CPU per value {cpu:.2f} (goal <= 0.5: {'met' if cpu <= 0.5 else 'NOT met'}), "
            f"RSS {ours.rss_mb / peer.rss_mb:.2f}; "
            f"we kept up with {kept:.1%} of {offered:,.0f} values/s "
            f"(goal >= 99 %: {'met' if kept >= 0.99 else 'NOT met'}), "
            f"peak RSS {ours.rss_mb:.0f} MB (goal <= 150: {'met' if ours.rss_mb <= 150 else 'NOT met'})"
        )


if __name__ == "__main__":
    main()
