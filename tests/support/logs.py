"""Capturing a node's log lines in-process, formatted exactly as ``mg serve`` writes them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mg.logs import make_handler

Lines = Callable[[], list[dict[str, Any]]]


@contextmanager
def captured_logs(level: int = logging.DEBUG) -> Iterator[Lines]:
    """Every record at ``level`` or above, as the JSON objects mg's handler writes; the
    callable returns the lines written so far (and ``.raw`` is the text)."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    lines.raw = stream.getvalue  # type: ignore[attr-defined]
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
