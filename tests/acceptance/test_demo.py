"""``mg demo`` as a user runs it: a real process on a fresh temporary Postgres, to completion;
and ``--keep``, explored with the CLI, then stopped with Ctrl-C. Both leave nothing behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests.support.cli import environment, mg_process


def _left_behind(output: str) -> tuple[Path, list[int]]:
    """The demo's temporary directory, and any process still running from it."""
    found = re.search(r"\(embedded, in (\S+),", output)
    assert found, output
    base = Path(found.group(1))
    running = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(base).encode() in (proc / "cmdline").read_bytes():
                    running.append(int(proc.name))
            except OSError:
                continue  # gone meanwhile
    return base, running


@pytest.mark.timeout(120)
async def test_the_demo_runs_to_completion_and_cleans_up() -> None:
    ran = await mg_process("demo", timeout=90)
    assert ran.code == 0, ran.out + ran.err
    out = ran.out
    assert "order-A" in out
    assert "order-B" in out
    assert "timer fired: order-B's timer was due at" in out
    assert "committed at" in out
    assert '{"kind": "expired"}' in out
    # Both histories, as tables.
    assert len(re.findall(r"^\s+EVENT  CREATED_AT", out, re.MULTILINE)) == 2
    assert re.search(r'^\s+3\s+\S+Z\s+2\s+\{"kind": "shipped"', out, re.MULTILINE)
    assert re.search(r'^\s+2\s+\S+Z\s+2\s+\{"kind": "expired"\}', out, re.MULTILINE)
    # The sink, and its chain checked.
    assert re.search(r"^\s+5\s+orders\s+order-B\s+2\s", out, re.MULTILINE)
    assert "sink 'main': chain intact, 5 events, positions 1..5" in out
    assert ran.err == ""
    base, running = _left_behind(out)
    assert not base.exists()
    assert running == []


@pytest.mark.timeout(120)
async def test_the_kept_demo_answers_the_cli_and_stops_on_ctrl_c() -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "mg", "demo", "--keep", "--timer", "0.5"],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    out = b""
    with trio.fail_after(90):
        while b"Press Ctrl-C" not in out:
            chunk = await process.stdout.receive_some()
            assert chunk, out.decode()
            out += chunk
    text = out.decode()
    url = re.search(r"export MG_URL=(\S+) MG_NS=orders", text)
    assert url, text
    listed = await mg_process(
        "machines", "list", "--json", env=environment(MG_URL=url.group(1), MG_NS="orders")
    )
    assert [(m["id"], m["status"]) for m in listed.json()["machines"]] == [
        ("order-A", "sleeping"),
        ("order-B", "sleeping"),
    ]
    console = re.search(r"Open the console: (\S+)", text)
    assert console, text
    assert console.group(1) == url.group(1) + "/ui/"
    async with httpx.AsyncClient(trust_env=False) as http:
        page = await http.get(console.group(1) + "namespaces/orders/machines/order-B")
    assert page.status_code == 200
    assert "order-B" in page.text

    process.send_signal(signal.SIGINT)
    with trio.fail_after(30):
        code = await process.wait()
        out += await process.stdout.receive_some()
    await process.stdout.aclose()
    assert code == 0
    base, running = _left_behind(text)
    assert not base.exists()
    assert running == []
