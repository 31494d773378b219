"""CPU time per process group, read from ``/proc``: on two shared cores the question is less
"how fast" than "who spends the CPU", so each point records CPU milliseconds per request for the
mg node, the processor, Postgres (every ``postgres`` process) and the load generator."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
COMMANDS = ("postgres", "pgbench")
# Parts of the first node's CPU, already counted in "mg".
SHARES = ("mg_system", "mg_main_thread", "mg_other_threads")


def _cpu_seconds(pid: int) -> tuple[str, int, float, float]:
    """Command name, parent pid, CPU seconds (user + system) and system seconds of a process."""
    text = Path(f"/proc/{pid}/stat").read_text()
    name = text[text.index("(") + 1 : text.rindex(")")]
    rest = text[text.rindex(")") + 2 :].split()
    fields = [int(value) for value in rest[11:15]]
    # Children's time too: Postgres backends and pgbench runs end (and are reaped) mid-point.
    return name, int(rest[1]), sum(fields) / TICK, (fields[1] + fields[3]) / TICK


def _threads(pid: int) -> tuple[float, float]:
    """CPU seconds of a process's main thread (trio's, in a node) and of its other threads
    (the asyncpg bridge's event loop, mostly): which side of the bridge spends the time."""
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / TICK
        if int(task.name) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def snapshot(named: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named pid, plus every ``postgres`` and ``pgbench`` process."""
    found = dict.fromkeys(named, 0.0) | dict.fromkeys(COMMANDS, 0.0)
    by_pid = {pid: name for name, pid in named.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm, parent, seconds, system = _cpu_seconds(int(entry.name))
        except (OSError, ValueError):
            continue  # gone meanwhile
        pid = int(entry.name)
        if pid not in by_pid and comm not in COMMANDS and by_pid.get(parent, "").startswith("mg"):
            # A worker of ``mg serve --workers N``: its CPU is its node's.
            found[by_pid[parent]] += seconds
            if by_pid[parent] == "mg":
                found["mg_system"] = found.get("mg_system", 0.0) + system
        elif pid in by_pid:
            found[by_pid[pid]] += seconds
            # How much of it is the kernel's (system calls, wake-ups): the mg node's share.
            if by_pid[pid] == "mg":
                found["mg_system"] = found.get("mg_system", 0.0) + system
                try:
                    main, other = _threads(pid)
                except (OSError, ValueError):
                    main = other = 0.0
                found["mg_main_thread"] = found.get("mg_main_thread", 0.0) + main
                found["mg_other_threads"] = found.get("mg_other_threads", 0.0) + other
        elif comm in COMMANDS:
            found[comm] += seconds
    return found


def per_request(
    before: dict[str, float], after: dict[str, float], requests: int
) -> dict[str, float]:
    """CPU milliseconds per request, by group (and in all)."""
    if not requests:
        return {}
    spent = {name: (after[name] - before.get(name, 0.0)) * 1000 / requests for name in after}
    # The node's system time and its threads are shares of "mg", not more CPU.
    spent["all"] = sum(value for name, value in spent.items() if name not in SHARES)
    return {name: round(value, 3) for name, value in spent.items()}
