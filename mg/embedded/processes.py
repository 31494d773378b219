"""Processes by pid, through /proc: is it alive, is it a postmaster of that data directory, and
a bounded, escalating way to stop it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mg.embedded.errors import EmbeddedPostgresError

_log = logging.getLogger("mg.embedded.server")


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: [state, ppid, ...]; [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def alive(pid: int) -> bool:
    return stat_fields(pid)[:1] not in ([], ["Z"], ["X"])


def is_postmaster(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a live ``postgres`` process serving ``data_dir``."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    if Path(os.fsdecode(argv0)).name not in ("postgres", "postmaster") or not alive(pid):
        return False
    with contextlib.suppress(OSError):  # its cwd is its data directory
        return os.path.samefile(os.readlink(f"/proc/{pid}/cwd"), data_dir)
    return True  # cwd unreadable (another user's process, as non-root): trust the name


def terminate(pid: int, timeout: float, gone: Callable[[float], bool] | None = None) -> None:
    """Fast shutdown (SIGINT); escalate to SIGQUIT, then SIGKILL (children included)."""

    def polled(wait: float) -> bool:
        deadline = time.monotonic() + wait
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        return not alive(pid)

    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        victims = [pid]
        if sig == signal.SIGKILL:
            victims += [
                int(p.name)
                for p in Path("/proc").iterdir()
                if p.name.isdigit() and stat_fields(int(p.name))[1:2] == [str(pid)]
            ]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, sig)
        if (gone or polled)(wait):
            return
        _log.warning("postgres pid %d still running %g s after %s", pid, wait, sig.name)
    raise EmbeddedPostgresError(f"postgres pid {pid} survived SIGKILL")


def waited(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    return proc.returncode is not None
