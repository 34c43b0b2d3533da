"""Endpoint URLs: the user name and password taken out of them.

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


__all__ = ["split_user_info"]
