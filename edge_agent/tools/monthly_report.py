"""``edge-agent report --month YYYY-MM``: one month's evidence for the smart-workshop (智能车间) and
cloud-adoption (星级上云) programmes, as a self-contained HTML page with matplotlib charts.

Read from the InfluxDB the agents write to (the local store only holds what has not been sent
yet, so it is no history): the database and credentials of a sink in agent.yaml (``-c``), or
given here. The page: networking rate, data collection and cloud completeness, device-on-cloud
ratio, continuous days on cloud, OEE, energy per good unit and defect rate, each beside its
baseline and the month before; A, P, Q and OEE by line and by machine; the loss Pareto; charts
by day. Months and days are cut at midnight in the plant's time zone.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge_agent.config.yaml_source import ConfigError
from edge_agent.secrets import read_secret_file
from edge_agent.tools.report_data import Figures, InfluxQL, Month, ReportError, Scope, Source, read_month

SINK_TYPES = ("influxdb_v1", "influxdb_v2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.add_argument(
        "-c", "--config", type=Path, help="agent.yaml: read from its InfluxDB sink, in its shifts' time zone"
    )
    p.add_argument("--sink", help="which sink of agent.yaml (its name; default the first InfluxDB sink)")
    p.add_argument("--influx-url", help="the InfluxDB the agents write to, e.g. http://127.0.0.1:8086")
    p.add_argument("--db", help="its database (1.x) or bucket (2.x; default edge)")
    p.add_argument("--user", help="InfluxDB 1.x user")
    p.add_argument("--password-file", type=Path, help="file holding the user's password (chmod 600)")
    p.add_argument("--token-file", type=Path, help="InfluxDB 2.x: file holding a read token (chmod 600)")
    p.add_argument(
        "--timezone", help="the plant's time zone, e.g. Asia/Shanghai (default: agent.yaml's, else the box's)"
    )
    p.add_argument("--window", help="the OEE window tag to sum (default: the month's own, e.g. 1m)")
    p.add_argument("--site", default=".*", help="site tag to report on (regular expression; default all)")
    p.add_argument("--workshop", default=".*", help="workshop tag (regular expression; default all)")
    p.add_argument("--out", type=Path, default=None, help="HTML file (default report-YYYY-MM.html)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per query")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def local_zone() -> str:
    """The box's time zone name: ``TZ``, else what /etc/localtime links to, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        return name
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return "UTC"
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"


def choose(args: argparse.Namespace) -> tuple[Source, str]:
    """Where to read and the plant's zone name, from the options and agent.yaml."""
    zone = args.timezone
    source: Source | None = None
    if args.config is not None:
        from edge_agent.config import load_config  # noqa: PLC0415 - only with -c

        cfg = load_config(args.config).config
        sinks = [s for s in cfg.sinks if s.type in SINK_TYPES and (args.sink is None or s.name == args.sink)]
        if not sinks:
            which = f"named {args.sink}" if args.sink else f"of type {' or '.join(SINK_TYPES)}"
            raise ReportError(f"{args.config} has no sink {which}: give --influx-url and --db instead")
        sink = sinks[0]
        if sink.type == "influxdb_v2":
            source = Source(sink.url, sink.bucket, token=sink.token, timeout_s=args.timeout)
        else:
            source = Source(sink.url, sink.database, sink.username, sink.password, timeout_s=args.timeout)
        if zone is None and cfg.analytics.shifts is not None:
            zone = cfg.analytics.shifts.timezone
    if args.influx_url:
        password = read_secret_file(args.password_file, "--password-file") if args.password_file else ""
        token = read_secret_file(args.token_file, "--token-file") if args.token_file else ""
        if args.user and not password:
            raise ReportError("--user needs --password-file")
        source = Source(args.influx_url, args.db or "edge", args.user or "", password, token, args.timeout)
    if source is None:
        raise ReportError("say where to read: -c agent.yaml, or --influx-url (with --db)")
    return source, zone or local_zone()


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: PLC0415
    except ImportError:
        print("error: the report draws its charts with matplotlib: pip install 'edge-agent[report]'", file=sys.stderr)
        return 2
    matplotlib.use("Agg")
    from edge_agent.tools.report_page import render  # noqa: PLC0415 - after the backend is chosen

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"report: {line}", file=sys.stderr, flush=True)

    try:  # what the command line says: exit 2 when it is wrong
        source, zone_name = choose(args)
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ReportError(f"time zone {zone_name!r} is unknown: give --timezone, e.g. Asia/Shanghai") from None
        month = Month.parse(args.month, zone)
        scope = Scope(args.site, args.workshop)
    except (ReportError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    progress(f"{month.label} in {zone.key}, from {source.describe()}")
    db = InfluxQL(source, progress)
    try:  # what the database says: exit 1
        now = read_month(db, scope, month, args.window)
        if now.empty:
            print(f"no data for {month.label} in {source.describe()} ({scope.condition()})", file=sys.stderr)
            return 1
        try:
            before = read_month(db, scope, month.before(), None, detail=False)
        except ReportError as exc:  # the month before only adds a comparison
            progress(f"the month before is left out: {exc}")
            before = Figures({}, {}, {}, {}, {}, {}, [])
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = args.out or Path(f"report-{month.label}.html")
    where = f"site {args.site}, workshop {args.workshop}"
    out.write_text(render(month, now, before, where, source.describe()), encoding="utf-8")
    print(f"wrote {out}")
    return 0
