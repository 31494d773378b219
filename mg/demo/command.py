"""``mg demo``: everything the story needs, on a fresh install with nothing running: an
embedded Postgres in a temporary directory, the order processor (``mg.demo.orders``) and a node,
all in this process; then the story (``mg.demo.scenario``); then everything is stopped and the
directory deleted, Ctrl-C included. ``--keep`` leaves it all running for exploration until
Ctrl-C.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from mg.client import AsyncClient, MgError
from mg.demo.orders import Orders
from mg.demo.scenario import NS, SINK, DemoFailed, say, tell
from mg.embedded.server import EmbeddedPostgres, EmbeddedPostgresError
from mg.logs import configure_logging
from mg.postgres.bridge.factory import make_bridge
from mg.postgres.sinks import PostgresSinks
from mg.processor import serve
from mg.service.sink_verify import Verdict, verify_chain
from mg.settings import Settings, from_mapping

INTERRUPTED = 130  # the shell's code for a run ended by SIGINT


def demo_settings(processor_url: str, port: int) -> Settings:
    """A node with one namespace, ``orders``, feeding one sink, ``main``; the processor also
    serves as the namespace's modernizer."""
    orders = {
        "processor": {"url": processor_url + "/processor"},
        "modernizer": {"url": processor_url + "/modernizer", "current_format_version": 2},
        "sinks": [SINK],
        "default_processing_timeout": "10s",
    }
    config = {
        "server": {"port": port},
        "database": {"pool_size": 8},
        "sinks": {SINK: {}},
        "namespaces": {NS: orders},
    }
    return from_mapping(config, environ={})


@dataclass
class _Run:
    database_url: str
    keep: bool
    port: int
    timer: float
    verdict: Verdict | None = None
    failure: str | None = None
    interrupted: bool = False


async def _verify(database_url: str) -> Verdict:
    bridge = make_bridge("thread", database_url, min_size=1, max_size=2)
    await bridge.open()
    try:
        return await verify_chain(PostgresSinks(bridge), SINK)
    finally:
        await bridge.close()


async def _stop_on_signal(run: _Run, scope: trio.CancelScope) -> None:
    # Ctrl-C and SIGTERM cancel the run, so every context below unwinds in order.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            run.interrupted = True
            scope.cancel()
            return


def _explore(url: str, database_url: str) -> None:
    say()
    say(f"mg demo keeps running. Open the console: {url}/ui/")
    say("In another shell:")
    say(f"  export MG_URL={url} MG_NS={NS}")
    say("  mg machines list")
    say("  mg machines get order-A")
    say('  mg machines start order-C --args \'{"item": "a pen", "cents": 300}\'')
    say("  mg machines call order-C --args '{\"pay\": 300}'")
    say(f"  mg sink tail {SINK} --follow")
    say(f"  MG_DATABASE_URL={database_url} mg sink verify {SINK}")
    say("Press Ctrl-C to stop it (the database is deleted).")


async def _demo(run: _Run) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, run, nursery.cancel_scope)
        processor_url: str = await nursery.start(serve, Orders(), "127.0.0.1", 0)
        say(f"  processor      {processor_url}/processor  (mg.demo.orders.Orders)")
        from mg.node import running_node  # the node's stack is loaded only when it is needed

        settings = demo_settings(processor_url, run.port)
        async with running_node(settings, run.database_url) as node:
            say(f"  mg node        {node.url}  (namespace {NS!r} feeding sink {SINK!r})")
            say()
            async with AsyncClient(node.url) as client:
                # Caught here, not around trio.run, where a nursery would wrap them in a group.
                try:
                    run.verdict = await tell(client, lambda: _verify(run.database_url), run.timer)
                except (DemoFailed, MgError) as error:
                    run.failure = f"{type(error).__name__}: {error}"
                    nursery.cancel_scope.cancel()
            if run.keep:
                _explore(node.url, run.database_url)
                await trio.sleep_forever()
        nursery.cancel_scope.cancel()


def run_demo(args: argparse.Namespace) -> int:
    # The node's own log lines would drown the story; warnings and errors still show.
    configure_logging("text", "warning")
    base = Path(tempfile.mkdtemp(prefix="mg-demo-"))
    base.chmod(0o755)  # under root, Postgres runs as an unprivileged user that must reach it
    postgres = EmbeddedPostgres(base / "postgres")
    say("mg demo: an order processor on a throw-away mg node")
    try:
        began = time.monotonic()
        database_url = postgres.start()
        took = time.monotonic() - began
        shown = postgres.url(masked=True)
        say(f"  PostgreSQL 18  {shown}  (embedded, in {base}, started in {took:.1f} s)")
        run = _Run(database_url, args.keep, args.port, args.timer)
        trio.run(_demo, run)
    except KeyboardInterrupt:
        say("interrupted")
        return INTERRUPTED
    except EmbeddedPostgresError as error:
        print(f"mg demo: {error}", file=sys.stderr)
        return 1
    finally:
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)
    if run.interrupted and not (run.keep and run.verdict is not None):
        say("interrupted")
        return INTERRUPTED
    if run.failure is not None:
        print(f"mg demo: {run.failure}", file=sys.stderr)
        return 1
    if run.verdict is None or not run.verdict.intact:
        return 1
    say("done: the node and Postgres are stopped and the data deleted.")
    return 0
