"""One supervisor for every long-running task of the agent (on the event loop).

The tick, each device's poller, each sink's forwarder, the health server and the checkpoint run
as supervised tasks. When one raises, the supervisor

* logs it: with its traceback the first time an error of that kind (type and message) ends the
  task, as one line with a count after that, at most once a minute per task;
* counts it (``/metrics``: ``edge_agent_task_failures_total{task=...}``);
* shows it: ``/health`` lists every task, and says ``degraded`` naming the task while its latest
  failure is less than ``DEGRADED_FOR_S`` old;
* restarts it after a backoff: 0.5 s doubling up to 30 s, reset once the task has run for a
  minute without failing.

A task that returns has ended on purpose (the agent is stopping) and is not restarted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.runtime.polling import Backoff

log = logging.getLogger("edge_agent")

#: How long (s) a task failure keeps ``/health`` degraded.
DEGRADED_FOR_S = 120.0
#: A task that has run this long (s) without failing starts its backoff afresh.
HEALTHY_AFTER_S = 60.0
#: Repeated failures of one task are logged at most this often (s).
LOG_EVERY_S = 60.0


@dataclass
class TaskHealth:
    """What ``/health`` shows of one supervised task (times: wall clock, UTC ns)."""

    name: str
    running: bool = False
    failures: int = 0
    restarts: int = 0
    last_error: str = ""
    last_failure_ns: int = 0


class Supervisor:
    """Starts, watches and restarts named tasks; their health is read on the event loop."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.tasks: dict[str, TaskHealth] = {}
        self._handles: list[asyncio.Task[None]] = []
        #: Per task: error kinds already logged with a traceback, last log time, failures unsaid.
        self._said: dict[str, set[str]] = {}
        self._last_log: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def start(self, name: str, run: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``run()`` as task ``name``, again after each failure; returns the supervising task."""
        self.tasks[name] = TaskHealth(name)
        task = asyncio.create_task(self._keep(name, run), name=name)
        self._handles.append(task)
        return task

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        health = self.tasks[name]
        in_row = 0
        while True:
            started = time.monotonic()
            health.running = True
            try:
                await run()
            except asyncio.CancelledError:
                health.running = False
                raise
            except Exception as exc:
                health.running = False
                in_row = 1 if time.monotonic() - started > HEALTHY_AFTER_S else in_row + 1
                delay = self.backoff.after(in_row)
                self._failed(health, exc, delay)
                await asyncio.sleep(delay)
                health.restarts += 1
                continue
            health.running = False
            return

    def _failed(self, health: TaskHealth, exc: Exception, delay_s: float) -> None:
        message = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        health.failures += 1
        health.last_error = message
        health.last_failure_ns = time.time_ns()
        name = health.name
        said = self._said.setdefault(name, set())
        now = time.monotonic()
        if message not in said:
            said.add(message)
            log.error("task %s failed (restarting in %.1f s): %s", name, delay_s, message, exc_info=exc)
        elif now - self._last_log.get(name, 0.0) >= LOG_EVERY_S:
            more = self._unsaid.pop(name, 0)
            log.error(
                "task %s failed again (restarting in %.1f s; %d failures in all, %d since the last line): %s",
                name,
                delay_s,
                health.failures,
                more + 1,
                message,
            )
        else:
            self._unsaid[name] = self._unsaid.get(name, 0) + 1
            return
        self._last_log[name] = now

    def report(self) -> list[dict[str, Any]]:
        """Every task's health (for ``/health``)."""
        return [dict(vars(t)) for t in self.tasks.values()]

    def reasons(self, now_ns: int) -> list[str]:
        """Why the tasks make the agent degraded: failures in the last ``DEGRADED_FOR_S``."""
        return [
            f"task {t.name} failed {t.failures} time(s), last {(now_ns - t.last_failure_ns) / 1e9:.0f} s ago "
            f"(restarted {t.restarts} time(s)): {t.last_error}"
            for t in self.tasks.values()
            if t.last_failure_ns and now_ns - t.last_failure_ns < DEGRADED_FOR_S * 1e9
        ]

    async def stop(self, names: list[str] | None = None) -> None:
        """Cancel the tasks named (all when None) and wait for them to end."""
        chosen = [t for t in self._handles if names is None or t.get_name() in names]
        for task in chosen:
            task.cancel()
        await asyncio.gather(*chosen, return_exceptions=True)


__all__ = ["DEGRADED_FOR_S", "Supervisor", "TaskHealth"]
