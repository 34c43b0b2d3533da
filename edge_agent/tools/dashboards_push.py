"""``edge-agent dashboards push``: put the shipped dashboards and their InfluxDB datasource into
any Grafana through its HTTP API, idempotently (by uid: a second push updates, never duplicates).

Client: ``grafana-client``, the maintained fork of ``grafana-api`` (which has had no release
since 2020 and predates folder uids and datasource-by-uid endpoints). Calls, all with
``Authorization: Bearer <token>`` (a service account token with the Editor role, or Admin to
manage datasources):

* ``GET /api/datasources/uid/{uid}``, then ``PUT /api/datasources/uid/{uid}`` or ``POST /api/datasources``;
* ``GET /api/folders``, ``POST /api/folders`` when the folder is missing;
* ``POST /api/dashboards/db`` with ``overwrite: true`` and the folder's uid, per dashboard.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.secrets import REDACTOR, read_secret_file

DATASOURCE_UID = "edge-influxdb"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grafana", required=True, help="Grafana's URL, e.g. https://grafana.plant.example:3000")
    p.add_argument("--token-file", type=Path, required=True, help="file holding a service account token (chmod 600)")
    p.add_argument("--folder", default="Edge monitor", help="folder for the dashboards (created when missing)")
    p.add_argument("--influx-url", default=None, help="create or update the datasource: the InfluxDB URL Grafana uses")
    p.add_argument(
        "--influx-db", default="edge", help="database (1.x) or bucket (2.x) the agents write to (default edge)"
    )
    p.add_argument("--influx-user", default=None, help="InfluxDB 1.x user Grafana reads as")
    p.add_argument("--influx-password-file", type=Path, default=None, help="file holding that user's password")
    p.add_argument(
        "--influx-token-file", type=Path, default=None, help="InfluxDB 2.x: file holding a read token for the bucket"
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")


def shipped_dashboards() -> dict[str, dict[str, Any]]:
    """The dashboards in the installed package, by file name."""
    folder = resources.files("edge_agent.dashboards")
    return {
        entry.name: json.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


def datasource_body(args: argparse.Namespace, password: str, token: str = "") -> dict[str, Any]:
    """Grafana's InfluxDB datasource in InfluxQL mode; for 2.x the token goes in a header Grafana
    keeps encrypted (the bucket is the database: 2.2 and later map buckets themselves)."""
    body: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": "Edge InfluxDB",
        "type": "influxdb",
        "access": "proxy",
        "url": args.influx_url,
        "jsonData": {"dbName": args.influx_db, "httpMode": "POST", "timeInterval": "10s"},
    }
    if token:
        body["jsonData"] |= {"httpHeaderName1": "Authorization"}
        body["secureJsonData"] = {"httpHeaderValue1": f"Token {token}"}
    elif args.influx_user:
        body["basicAuth"] = False
        body["user"] = args.influx_user
        body["secureJsonData"] = {"password": password}
    return body


def push(args: argparse.Namespace) -> list[str]:
    """Do the push; returns what was done, one line each. Raises on failure."""
    from grafana_client.api import GrafanaApi  # noqa: PLC0415 - only this command needs it
    from grafana_client.client import GrafanaClientError  # noqa: PLC0415

    token = read_secret_file(args.token_file, "--token-file")
    api = GrafanaApi.from_url(args.grafana, credential=token, timeout=args.timeout)
    done: list[str] = []
    if args.influx_url:
        password = (
            read_secret_file(args.influx_password_file, "--influx-password-file") if args.influx_password_file else ""
        )
        influx_token = read_secret_file(args.influx_token_file, "--influx-token-file") if args.influx_token_file else ""
        body = datasource_body(args, password, influx_token)
        try:
            api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        except GrafanaClientError as exc:
            if getattr(exc, "status_code", None) != 404:
                raise
            api.datasource.create_datasource(body)
            done.append(f"datasource {DATASOURCE_UID}: created")
        else:
            api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)
            done.append(f"datasource {DATASOURCE_UID}: updated")
    folders = api.folder.get_all_folders()
    folder = next((f for f in folders if f.get("title") == args.folder), None)
    if folder is None:
        folder = api.folder.create_folder(args.folder)
        done.append(f"folder {args.folder!r}: created")
    for name, dashboard in sorted(shipped_dashboards().items()):
        board = {k: v for k, v in dashboard.items() if not k.startswith("__")}
        board["id"] = None
        reply = api.dashboard.update_dashboard(
            {"dashboard": board, "folderUid": folder["uid"], "overwrite": True, "message": "edge-agent dashboards push"}
        )
        done.append(f"dashboard {board['uid']} ({name}): {reply.get('status', 'ok')}, version {reply.get('version')}")
    return done


def run(args: argparse.Namespace) -> int:
    try:
        done = push(args)
    except ValueError as exc:  # a secret file refused: the message names it and the fix
        print(f"push failed: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(REDACTOR.redact(f"push failed: {exc}"), file=sys.stderr)
        return 1
    except Exception as exc:
        print(REDACTOR.redact(f"push failed: {exc.__class__.__name__}: {exc}"), file=sys.stderr)
        return 1
    print("\n".join(done))
    return 0
