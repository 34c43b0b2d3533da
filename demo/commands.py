"""The demo workshop's commands: ``edge-agent demo`` (plant, agent and a live view) and
``edge-agent plant`` (only the plant's servers, for the compose stack). Registered as a plugin of
the agent's command line (entry point group ``edge_agent.commands``); the agent never imports the
demo itself."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from edge_agent.commands import Command, register


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=20.0, help="plant seconds per wall second")
    p.add_argument("--workdir", type=Path, default=Path("var"), help="where the demo keeps its files")
    p.add_argument("--lang", choices=["en", "zh"], default="en", help="labels of the live view (zh: 中文)")


def _plant_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--opcua-port", type=int, default=4840)
    p.add_argument("--modbus-port", type=int, default=5020)


def _missing(exc: ImportError) -> int:
    print(f"error: the demo workshop is not installed ({exc}): pip install 'edge-agent[demo]'", file=sys.stderr)
    return 2


def _demo(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console  # noqa: PLC0415 - the live view's extra, loaded when used

        from edge_agent.demo.runner import prepare_workdir, run_demo  # noqa: PLC0415
    except ImportError as exc:
        return _missing(exc)
    logging.getLogger().setLevel(logging.WARNING if args.log_level == "INFO" else args.log_level)
    prepare_workdir(args.workdir)
    console = Console() if sys.stdout.isatty() else Console(width=132)
    return asyncio.run(run_demo(args.duration, args.seed, args.speed, args.workdir, console, args.lang))


def _plant(args: argparse.Namespace) -> int:
    try:
        from edge_agent.demo.runner import run_plant  # noqa: PLC0415
    except ImportError as exc:
        return _missing(exc)
    return asyncio.run(run_plant(args.seed, args.speed, args.opcua_port, args.modbus_port, args.host))


register(Command("demo", "the simulated workshop with an agent and a live view", _demo_arguments, _demo))
register(Command("plant", "only the demo workshop's OPC UA and Modbus servers", _plant_arguments, _plant))
