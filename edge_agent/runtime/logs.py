"""Log output: JSON lines, and throttled lines for repeated events.

JSON lines (``--log-format json``), for journald, Docker and log shippers.

Each record is one object: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``message`` and, when there is one, ``exception`` (the traceback as text). Secrets are removed
before formatting (:class:`~edge_agent.secrets.RedactingFilter` runs on the handler).

>>> import logging
>>> record = logging.LogRecord("edge_agent", logging.WARNING, "x.py", 1, "device %s down", ("p1",), None)
>>> record.created, record.msecs = 0.0, 0.0
>>> print(JsonFormatter().format(record))
{"time": "1970-01-01T00:00:00.000Z", "level": "WARNING", "logger": "edge_agent", "message": "device p1 down"}
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class Throttled:
    """A log line for a repeated event at most once per ``every_s`` seconds, with how many times
    it happened since the last line (any thread).

    >>> import logging
    >>> seen = []
    >>> say = Throttled(logging.getLogger("doctest.throttled"), every_s=60.0, clock=lambda: 0.0)
    >>> say.event(logging.ERROR, "refused %d point(s)", 3), say.event(logging.ERROR, "refused %d point(s)", 5)
    (True, False)
    >>> say.unsaid
    1
    """

    def __init__(
        self, logger: logging.Logger, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger, self.every_s, self.clock = logger, every_s, clock
        self._lock = threading.Lock()
        self._last = -math.inf
        #: Events since the last line that were not logged.
        self.unsaid = 0

    def event(self, level: int, message: str, *args: object) -> bool:
        """Log ``message % args`` now if the last line is ``every_s`` old; True if it was logged."""
        with self._lock:
            now = self.clock()
            if now - self._last < self.every_s:
                self.unsaid += 1
                return False
            self._last, unsaid, self.unsaid = now, self.unsaid, 0
        if unsaid:
            message += f" (and {unsaid} more like it in the last {self.every_s:g} s)"
        self.logger.log(level, message, *args)
        return True
