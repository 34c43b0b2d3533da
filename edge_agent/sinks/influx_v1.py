"""InfluxDB 1.x sink: HTTP ``/write`` with gzip, nanosecond precision."""

from __future__ import annotations

import gzip
import logging
import re
import threading

import requests

from edge_agent.config import InfluxV1Sink
from edge_agent.sinks.base import RejectedPoints, SinkUnavailable

log = logging.getLogger(__name__)
_DROPPED = re.compile(r"dropped=(\d+)")


class InfluxV1:
    """Writes to ``{url}/write?db=...``; creates the database if it is missing."""

    def __init__(self, cfg: InfluxV1Sink) -> None:
        self.cfg = cfg
        self.name = f"influxdb_v1:{cfg.url.rstrip('/')}/{cfg.database}"
        self.batch_size, self.concurrency = cfg.batch_size, cfg.concurrency
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._params = {"db": cfg.database, "precision": "ns"}
        if cfg.retention_policy:
            self._params["rp"] = cfg.retention_policy
        if cfg.username:
            self._params |= {"u": cfg.username, "p": cfg.password}
        self._db_checked = False

    @property
    def _session(self) -> requests.Session:
        """One HTTP session per sender thread (requests sessions are not shared safely)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _ensure_database(self) -> None:
        params = {k: v for k, v in self._params.items() if k in ("u", "p")}
        params["q"] = f'CREATE DATABASE "{self.cfg.database}"'
        try:
            reply = self._session.post(f"{self.cfg.url.rstrip('/')}/query", params=params, timeout=self.cfg.timeout)
        except requests.RequestException as exc:
            raise SinkUnavailable(f"{self.name}: {exc}") from exc
        if reply.status_code >= 500:
            raise SinkUnavailable(f"{self.name}: CREATE DATABASE answered {reply.status_code}")
        # 4xx here usually means no admin rights: the database may exist anyway; writes will tell.
        self._db_checked = True

    def write(self, body: bytes, count: int) -> None:
        if not self._db_checked:
            self._ensure_database()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        data = body
        if self.cfg.gzip:
            data = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        try:
            reply = self._session.post(
                f"{self.cfg.url.rstrip('/')}/write",
                params=self._params,
                data=data,
                headers=headers,
                timeout=self.cfg.timeout,
            )
        except requests.RequestException as exc:
            raise SinkUnavailable(f"{self.name}: {exc.__class__.__name__}: {exc}") from exc
        status = reply.status_code
        if status == 204:
            return
        text = reply.text.strip()[:500]
        if status == 400:
            dropped = _DROPPED.search(text)
            raise RejectedPoints(f"{self.name}: 400 {text}", int(dropped.group(1)) if dropped else None)
        if status == 404 and "database not found" in text:
            self._db_checked = False
        if status in (401, 403):
            raise SinkUnavailable(f"{self.name}: {status} {text}: check username/password in agent.yaml")
        raise SinkUnavailable(f"{self.name}: HTTP {status} {text}")

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
