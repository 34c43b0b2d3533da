"""``edge-agent profile browse``: write an OPC UA profile from a server's address space.

Security options are the device entry's (``--security-mode``, ``--security-policy``,
``--username`` with ``--password-file`` or ``$OPCUA_PASSWORD``); certificates are kept under
``--pki`` (default ``pki``), the server's trusted on first use as the agent does. The profile is
checked (``profile check``) before it is written.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from edge_agent.collectors.endpoints import endpoint_problem
from edge_agent.config import load_profile
from edge_agent.config.yaml_source import ConfigError
from edge_agent.secrets import REDACTOR


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("endpoint", help="opc.tcp://HOST:PORT/PATH")
    p.add_argument("--root", default="i=85", help="node to start from (default: the Objects folder, i=85)")
    p.add_argument("--depth", type=int, default=6, help="levels below the root (default 6)")
    p.add_argument("--out", type=Path, default=None, help="profile file to write (default: standard output)")
    p.add_argument("--name", default=None, help="profile name (default: from the host)")
    p.add_argument("--security-mode", default="None", choices=["None", "Sign", "SignAndEncrypt"])
    p.add_argument("--security-policy", default="Basic256Sha256")
    p.add_argument("--allow-deprecated", action="store_true", help="permit Basic128Rsa15 and Basic256")
    p.add_argument("--username", default=None)
    p.add_argument("--password-file", type=Path, default=None, help="default: $OPCUA_PASSWORD")
    p.add_argument("--pki", type=Path, default=Path("pki"), help="where certificates are kept")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")


def run(args: argparse.Namespace) -> int:
    from edge_agent.collectors.opcua.browse import browse, to_profile  # noqa: PLC0415 - asyncua only when browsing
    from edge_agent.collectors.opcua.client import Access, secured_client  # noqa: PLC0415
    from edge_agent.collectors.opcua.security import Security  # noqa: PLC0415

    if not args.endpoint.startswith("opc.tcp://"):
        print(f"error: {args.endpoint!r} is not an OPC UA endpoint: write opc.tcp://HOST:PORT/PATH", file=sys.stderr)
        return 2
    wrong = endpoint_problem(args.endpoint, "opc.tcp://10.0.0.7:4840")
    if wrong:
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    password = os.environ.get("OPCUA_PASSWORD", "")
    if args.password_file is not None:
        password = args.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    REDACTOR.add(password)
    access = Access(
        Security(mode=args.security_mode, policy=args.security_policy, allow_deprecated=args.allow_deprecated),
        args.username,
        password,
        pki=args.pki,
    )

    async def walk() -> tuple[dict[str, Any], list[str]]:
        client = await secured_client(args.endpoint, access, args.timeout)
        await client.connect()
        try:
            variables = await browse(client, args.root, args.depth)
        finally:
            await client.disconnect()
        host = (args.endpoint.split("://", 1)[-1].split("/", 1)[0].split(":")[0] or "server").replace(".", "-")
        return to_profile(variables, args.name or f"{host}-browsed", f"browsed from {args.endpoint} (root {args.root})")

    try:
        profile, notes = asyncio.run(walk())
    except (ConnectionError, OSError, LookupError) as exc:
        print(REDACTOR.redact(f"browse failed: {exc}"), file=sys.stderr)
        return 1
    if not profile["nodes"]:
        print(
            f"no numeric variables under {args.root} within {args.depth} levels: try --root or --depth", file=sys.stderr
        )
        return 1
    header = "".join(f"# {line}\n" for line in ["Written by edge-agent profile browse; check kinds and units.", *notes])
    text = header + yaml.safe_dump(profile, sort_keys=False, allow_unicode=True, width=200)
    with tempfile.TemporaryDirectory() as tmp:
        check = Path(tmp) / "browsed.yaml"
        check.write_text(text, encoding="utf-8")
        try:
            load_profile(check)
        except ConfigError as exc:
            print("the browsed profile does not pass profile check:\n" + "\n".join(exc.problems), file=sys.stderr)
            return 2
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}: {len(profile['nodes'])} nodes", file=sys.stderr)
    return 0
