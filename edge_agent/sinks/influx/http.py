"""A lean HTTP/1.1 client for the sinks' writes: one keep-alive connection per sender thread.

A write is one ``POST`` of a prepared body, thousands of times a minute; ``requests`` spent about
1 ms of CPU per post on cookies, hooks and header merging that a write never needs. This client
keeps one ``http.client`` connection per thread, reconnects once when a kept-alive connection
turns out closed (a write of the same points twice is harmless: same series and timestamps), and
goes through ``requests`` instead when the environment sets a proxy for the URL (``HTTP_PROXY``,
``HTTPS_PROXY``, ``NO_PROXY``), which it does not implement.

Credentials go in an ``Authorization`` header, never in the URL.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import socket
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

#: What a dropped or refused connection raises (all OSError or HTTPException).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Reply:
    status: int
    text: str


class HttpClient:
    """``POST`` to one origin (``base_url``: scheme, host, port, optional path prefix)."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.tls = tls if tls is not None else (ssl.create_default_context() if self.https else None)
        self.headers = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._proxied = _proxy_for(parts.scheme, self.host) is not None
        self._base_url = base_url.rstrip("/")

    def post(
        self, path: str, body: bytes, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """``POST prefix + path?params`` with ``body``; raises one of :data:`TRANSPORT_ERRORS` on failure."""
        target = self.prefix + path + ("?" + urlencode(params) if params else "")
        all_headers = {**self.headers, **(headers or {}), "Content-Length": str(len(body))}
        if self._proxied:
            return self._via_requests(path, body, params, all_headers)
        for attempt in (0, 1):
            conn, fresh = self._connection()
            try:
                conn.request("POST", target, body=body, headers=all_headers)
                response = conn.getresponse()
                text = response.read().decode("utf-8", "replace")
                if response.will_close:
                    self._drop(conn)
                return Reply(response.status, text)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop(conn)
                if fresh or attempt:  # a new connection that fails is a real failure
                    raise
            except BaseException:
                self._drop(conn)
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()

    def abort(self) -> None:
        """Break every connection, also one a thread is blocked reading from (it gets an OSError)."""
        with self._lock:
            for conn in self._all:
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, False
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.tls)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn, True

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)

    def _via_requests(self, path: str, body: bytes, params: dict[str, str] | None, headers: dict[str, str]) -> Reply:
        import requests  # noqa: PLC0415 - only behind a proxy

        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            with self._lock:
                self._all.append(session)
        try:
            reply = session.post(self._base_url + path, params=params, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise OSError(f"{exc.__class__.__name__}: {exc}") from exc
        return Reply(reply.status_code, reply.text)


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment sets for ``scheme://host``, if any."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme)
    if proxy is None or urllib.request.proxy_bypass(host):
        return None
    return proxy
