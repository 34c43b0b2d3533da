"""Log output as JSON lines (``--log-format json``), for journald, Docker and log shippers.

Each record is one object: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``,
``message`` and, when there is one, ``exception`` (the traceback as text). Secrets are removed
before formatting (:class:`~edge_agent.config.secrets.RedactingFilter` runs on the handler).

>>> import logging
>>> record = logging.LogRecord("edge_agent", logging.WARNING, "x.py", 1, "device %s down", ("p1",), None)
>>> record.created, record.msecs = 0.0, 0.0
>>> print(JsonFormatter().format(record))
{"time": "1970-01-01T00:00:00.000Z", "level": "WARNING", "logger": "edge_agent", "message": "device p1 down"}
"""

from __future__ import annotations

import json
import logging
import time


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
