"""Log lines: JSON by default (one object per line), human-readable on request.

Every line carries the context of the work it belongs to (trace and span ids, request id,
namespace, machine id; see ``mg.core.log_context``). Secrets are never logged: requests'
headers are not logged at all, and auth tokens are held as digests only.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from mg.core.log_context import FIELDS, ContextFilter

# Attributes every LogRecord has; anything else on a record is context worth printing.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, the context fields first."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        extras = _extras(record)
        ordered = [k for k in FIELDS if k in extras] + [k for k in extras if k not in FIELDS]
        if ordered:
            text += " " + " ".join(f"{key}={extras[key]}" for key in ordered)
        return text


def make_handler(style: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``style`` lines (``json`` or ``text``) with the context stamped."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if style == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(style: str, level: str) -> None:
    # Where each call was made from (a walk up the stack per record), thread, process and
    # multiprocessing names: no formatter of mg prints them, and the first costs on every
    # line of the hot path. The logging HOWTO's "Optimization" section names these switches.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [make_handler(style)]
    root.setLevel(level.upper())
    # httpx logs every processor call at INFO: one line per step is noise, and costs CPU on
    # the hot path. Its warnings still come through.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
