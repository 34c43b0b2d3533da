"""Endpoint URLs: what is wrong with one, and the user name and password taken out of them.

A password in an endpoint (``opc.tcp://operator:secret@10.0.0.7:4840``) is a secret's place, not
an address's: what is shown (logs, ``/health``) is the URL without it, and a collector that can use
the user information takes it from here.

>>> split_user_info("opc.tcp://op:s%40cret@10.0.0.7:4840/x")
('opc.tcp://10.0.0.7:4840/x', 'op', 's@cret')
>>> split_user_info("modbus://[fe80::1]:502")
('modbus://[fe80::1]:502', None, None)
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def split_user_info(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its user name and password, and the two (percent-decoded; None when absent)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return clean, username, password


def endpoint_problem(endpoint: str, example: str) -> str | None:
    """What is wrong with ``endpoint`` (``scheme://host:port/...``), or None.

    >>> endpoint_problem("opc.tcp://plc:99999", "opc.tcp://10.0.0.7:4840")
    'port 99999 is out of range: a port is 1 to 65535'
    """
    url = urlsplit(endpoint)
    port_text = url.netloc.rsplit("@", 1)[-1].rpartition(":")[2]
    try:
        port = url.port
    except ValueError:
        if port_text.isdigit():
            return f"port {port_text} is out of range: a port is 1 to 65535"
        return f"{endpoint!r} has no valid port after the host: write it as {example}"
    if not url.hostname:
        return f"{endpoint!r} names no host: write it as {example}"
    if port is None:
        return f"{endpoint!r} needs a port after the host, e.g. {example}"
    if port == 0:
        return "port 0 is not a port: a port is 1 to 65535"
    return None


__all__ = ["endpoint_problem", "split_user_info"]
