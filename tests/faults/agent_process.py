"""The agent as a real process (``python -m edge_agent run``), for kill -9, SIGTERM and disk faults."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import free_port


class AgentProcess:
    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.health_port = free_port()
        config.setdefault("agent", {})["health_listen"] = f"127.0.0.1:{self.health_port}"
        self.config = config
        self.path = workdir / "agent.yaml"
        self.path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    @property
    def log(self) -> Path:
        return self.workdir / f"agent-{self.runs}.log"

    def start(self, file_size_limit: int | None = None) -> None:
        """Start the agent; ``file_size_limit`` (bytes): no file it writes may grow beyond that
        (a full disk, where mounting a small file system is not permitted)."""
        self.runs += 1

        def limit() -> None:  # in the child, before exec
            if file_size_limit is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edge_agent", "run", "-c", str(self.path)],
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=limit,  # noqa: PLW1509 - sets a resource limit only
            )

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=5) as reply:
                return dict(json.loads(reply.read()))
        except urllib.error.HTTPError as exc:  # 503: degraded, with the same report
            with contextlib.suppress(ValueError):
                return dict(json.loads(exc.read()))
            return None
        except (OSError, ValueError):
            return None

    def wait_for(
        self, what: str, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 180.0
    ) -> dict[str, Any]:
        """Poll ``/health`` until ``condition`` holds (a generous deadline, never a fixed sleep)."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the agent exited ({self.process.returncode}) waiting for {what}:\n{self.tail()}")
            last = self.health()
            if last is not None and condition(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; last health: {last}\n{self.tail()}")

    def terminate(self, timeout_s: float = 180.0) -> tuple[int, float]:
        """SIGTERM; the exit status and the seconds the agent took to exit."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout_s)
        return code, time.monotonic() - started

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")
