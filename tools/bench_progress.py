"""The progress display of long benchmark runs: one line rewritten in place on a terminal, one
line per finished point otherwise (so a log file stays readable)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


class Progress:
    def __init__(self, total: int) -> None:
        self.total = total
        self.finished = 0
        self.began = time.perf_counter()
        self._live = sys.stderr.isatty()
        self._width = 0

    def _show(self, text: str, final: bool = False) -> None:
        elapsed = time.perf_counter() - self.began
        line = f"[{self.finished}/{self.total} points, {elapsed:4.0f} s] {text}"
        if self._live:
            pad = max(0, self._width - len(line))
            sys.stderr.write("\r" + line + " " * pad + ("\n" if final else ""))
            self._width = 0 if final else len(line)
        elif final:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def note(self, text: str) -> None:
        self._show(text, final=True)

    def ticker(self, label: str) -> Callable[[int, float], None]:
        """For a running point: answers so far and seconds elapsed."""

        def tick(count: int, seconds: float) -> None:
            rate = count / seconds if seconds else 0.0
            self._show(f"{label}: {seconds:3.1f} s, {count:,} answers, {rate:,.0f}/s")

        return tick

    def done(self, label: str, found: dict[str, Any]) -> None:
        self.finished += 1
        errors = found.get("errors") or {}
        text = (
            f"{label}: {found.get('per_s', 0):,.0f}/s, p50 {found.get('p50_ms', 0):.1f} ms, "
            f"p99 {found.get('p99_ms', 0):.1f} ms" + (f", errors {errors}" if errors else "")
        )
        self._show(text, final=True)

    def finish(self) -> None:
        self.note("done")
