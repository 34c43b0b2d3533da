"""``edge-agent``: run the service, the demo, and check configurations and profiles.

Exit codes: 0 ok, 2 bad configuration or usage, 1 run-time failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge_agent import __version__
from edge_agent.commands import COMMANDS
from edge_agent.config.yaml_source import ConfigError
from edge_agent.runtime.logs import JsonFormatter
from edge_agent.secrets import REDACTOR, install_log_redaction


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-agent",
        description="Industrial edge monitoring agent (OPC UA, Modbus -> InfluxDB, with OEE and anomaly scores).",
    )
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one JSON object per line (time, level, logger, message, exception) for log collectors",
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent until SIGTERM/SIGINT")
    run.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    once = run.add_mutually_exclusive_group()
    once.add_argument(
        "--test",
        action="store_true",
        help="read every device once, print each value, write nothing; exit 1 if one failed",
    )
    once.add_argument(
        "--once", action="store_true", help="one full cycle: poll every device once, write to the sinks, exit"
    )
    reload = sub.add_parser("reload", help="check agent.yaml, then make the agent running on it re-read it (SIGHUP)")
    reload.add_argument("-c", "--config", type=Path, required=True, help="agent.yaml")
    health = sub.add_parser(
        "health", help="ask a running agent's health endpoint; exit 0 when ok, 1 when degraded or silent"
    )
    health.add_argument("--url", default="http://127.0.0.1:8089/health")
    anomaly = sub.add_parser("anomaly", help="anomaly scoring tools")
    asub = anomaly.add_subparsers(dest="action", required=True)
    areplay = asub.add_parser("replay", help="score a CSV of signals as the agent would; prints CSV")
    areplay.add_argument("csv", type=Path, help="first column time, then one column per signal")
    areplay.add_argument("--config", type=Path, default=None, help="YAML holding the anomaly: section")
    areplay.add_argument(
        "--timezone", default=None, help="the zone of times without a UTC offset in the CSV (e.g. Asia/Shanghai, UTC)"
    )
    areplay.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="COLUMN",
        help="a column that is no signal (a label); repeatable",
    )
    asub.add_parser("params", help="every detector's parameters: default, bounds and meaning")
    oee = sub.add_parser("oee", help="OEE tools")
    osub = oee.add_subparsers(dest="action", required=True)
    oreplay = osub.add_parser("replay", help="OEE of a CSV of signals, as the agent computes it; prints JSON lines")
    oreplay.add_argument("csv", type=Path, help="first column time, then one column per signal")
    oreplay.add_argument("--config", type=Path, required=True, help="YAML holding the machine's oee: section")
    oreplay.add_argument("--window", default="1h", help="1h (default), shift, 1d, or a duration dividing a day")
    oreplay.add_argument(
        "--timezone", default=None, help="the zone of times without a UTC offset in the CSV (e.g. Asia/Shanghai, UTC)"
    )
    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="action", required=True)
    check = csub.add_parser("check", help="validate agent.yaml and the profiles it uses")
    check.add_argument("file", type=Path)
    show = csub.add_parser("show", help="the effective configuration: every default filled in, secrets hidden")
    show.add_argument("file", type=Path)
    profile = sub.add_parser("profile", help="device profile tools")
    psub = profile.add_subparsers(dest="action", required=True)
    pcheck = psub.add_parser("check", help="validate device profile files")
    pcheck.add_argument("files", type=Path, nargs="+")
    from edge_agent.tools import browse_profile, dashboards_push, monthly_report  # noqa: PLC0415 - argparse set-up only

    monthly_report.add_arguments(sub.add_parser("report", help="a month's KPI evidence as an HTML page (matplotlib)"))

    boards = sub.add_parser("dashboards", help="Grafana dashboards")
    bsub = boards.add_subparsers(dest="action", required=True)
    dashboards_push.add_arguments(bsub.add_parser("push", help="create or update the dashboards in a Grafana"))

    browse_profile.add_arguments(
        psub.add_parser("browse", help="write an OPC UA profile from a server's address space")
    )
    for command in COMMANDS.values():  # commands of plugins (the demo workshop's)
        command.add_arguments(sub.add_parser(command.name, help=command.help))
    return p


def _setup_logging(level: str, form: str) -> None:
    """Text or JSON lines on stderr, with every known secret removed."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if form == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    install_log_redaction()


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911, PLR0912 - one branch per subcommand
    args = _parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    from edge_agent.config import load_config  # noqa: PLC0415 - keep --help fast

    try:
        if args.command == "config" and args.action == "show":
            from edge_agent.tools.config_show import show  # noqa: PLC0415 - keep --help fast

            print(show(args.file), end="")
            return 0
        if args.command == "config":
            loaded = load_config(args.file)
            for warning in loaded.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            print("ok")
            return 0
        if args.command == "report":
            from edge_agent.tools.monthly_report import run as report_run  # noqa: PLC0415

            return report_run(args)
        if args.command == "dashboards":
            from edge_agent.tools.dashboards_push import run as push_run  # noqa: PLC0415

            return push_run(args)
        if args.command == "profile" and args.action == "browse":
            from edge_agent.tools.browse_profile import run as browse_run  # noqa: PLC0415

            return browse_run(args)
        if args.command == "profile":
            return _profile_check(args.files)
        if args.command == "anomaly":
            from edge_agent.tools.anomaly_replay import params, replay  # noqa: PLC0415

            return (
                params()
                if args.action == "params"
                else replay(args.csv, args.config, timezone=args.timezone, ignore=args.ignore)
            )
        if args.command == "oee":
            from edge_agent.tools.oee_replay import replay as oee_replay  # noqa: PLC0415

            return oee_replay(args.csv, args.config, args.window, timezone=args.timezone)
        if args.command == "health":
            return _health(args.url)
        if args.command == "run" and args.test:
            from edge_agent.tools.device_test import run_test  # noqa: PLC0415 - keep --help fast

            return run_test(load_config(args.config))
        if args.command == "run":
            from edge_agent.runtime.agent import run_forever  # noqa: PLC0415
            from edge_agent.runtime.memory import return_freed_memory  # noqa: PLC0415

            return_freed_memory()  # before any thread starts
            return run_forever(load_config(args.config), once=args.once)
        if args.command == "reload":
            return _reload(load_config(args.config))
        if args.command in COMMANDS:
            return COMMANDS[args.command].run(args)
    except ConfigError as exc:
        print(REDACTOR.redact("\n".join(exc.problems)), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (``... | head``): not an error. Quiet the final flush of stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # the last line of defence: say what failed, exit 1
        logging.getLogger("edge_agent").exception("run-time failure: %s", exc)
        return 1
    return 2


def _profile_check(files: list[Path]) -> int:
    from edge_agent.config import load_profile  # noqa: PLC0415

    problems: list[str] = []
    warnings: list[str] = []
    for f in files:
        try:
            load_profile(f, warnings)
        except ConfigError as exc:
            problems += exc.problems
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    print("ok")
    return 0


def _reload(loaded: Any) -> int:
    from edge_agent.runtime.agent import pid_file, running_agent  # noqa: PLC0415 - the runtime loads only to run

    try:
        pid = running_agent(pid_file(loaded))
        os.kill(pid, signal.SIGHUP)
    except (LookupError, OSError) as exc:
        print(f"no running agent to reload: {exc}", file=sys.stderr)
        return 1
    print(f"ok: the configuration is valid; agent {pid} is reloading it")
    return 0


def _health(url: str) -> int:
    if not url.startswith(("http://", "https://")):
        print(f"error: --url must be an http:// or https:// URL, not {url!r}", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - the scheme is checked above
            report = json.load(reply)
    except urllib.error.HTTPError as exc:  # 503: degraded, the report says why
        try:
            report = json.loads(exc.read())
        except ValueError:
            print(f"unhealthy: {url} answered {exc.code}", file=sys.stderr)
            return 1
    except (OSError, ValueError) as exc:
        print(f"unhealthy: no answer from {url}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    if report.get("status", "ok") != "ok":
        print("degraded: " + "; ".join(report.get("reasons", [])), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
