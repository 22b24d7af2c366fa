"""Structured logs: one JSON object per line on stdout, for CloudWatch Logs and local reading.

Every record carries ``time``, ``level``, ``logger`` and ``message``; values passed through
``extra={...}`` become top-level keys (``call_id``, ``reason``, ...). Exceptions add ``exception``.
Records of the ``media_node.metrics`` logger are already complete JSON documents (CloudWatch
Embedded Metric Format) and are written verbatim: EMF must be the whole log line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

#: Loggers whose messages are whole JSON lines (EMF) to be written as they are.
RAW_LOGGERS = frozenset({"media_node.metrics"})

# Attributes every LogRecord has; anything else on a record came from ``extra``. The
# ``websocket`` extra that the websockets library adds is an object with no useful text.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "websocket",
}


def _text(value: object) -> str:
    """Best-effort text for a value JSON cannot encode (never raises)."""
    try:
        return str(value)
    except Exception:  # e.g. a dead weak proxy
        return f"<{type(value).__name__}>"


class JsonFormatter(logging.Formatter):
    """Format a record as one compact JSON line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` with its ``extra`` fields as top-level keys."""
        if record.name in RAW_LOGGERS:
            return record.getMessage()
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=_text, ensure_ascii=False)


def configure_logging(level: int, *, service: str, stream: TextIO | None = None) -> None:
    """Send every logger's records to ``stream`` (default stdout) as JSON lines.

    The ``websockets`` loggers stay at INFO or above whatever ``level`` says: at DEBUG they print
    request lines, and the media socket's request line carries the stream token.
    """
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("websockets").setLevel(max(level, logging.INFO))
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
