"""The ``mg`` command: ``mg serve`` runs a node; ``mg migrate`` applies the schema; ``mg machines``
works with machines on a running node; ``mg sink`` works with sinks (``tail``, ``verify``);
``mg demo`` runs a short scenario on a throw-away node."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import trio

from mg.commands.machines import add_machine_commands
from mg.commands.remote import run_remote
from mg.demo import add_demo_command
from mg.logs import configure_logging
from mg.runtime import tune_garbage_collector
from mg.settings import Settings, SettingsError, load
from mg.sink_cli import CANNOT, add_sink_commands, run_sink_command

log = logging.getLogger("mg")


class Interrupted(Exception):
    """SIGTERM or SIGINT before the node serves (or after it stopped): stop what was started."""


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn the first SIGTERM or SIGINT outside the node's own signal handling into
    ``Interrupted``, so that an embedded Postgres being started (or stopped) is stopped by the
    ``finally`` that owns it instead of being left running when mg dies; later signals are
    ignored while that stop (bounded) runs."""
    raised = False

    def handler(signum: int, frame: object) -> None:
        nonlocal raised
        name = signal.Signals(signum).name
        if raised:
            log.warning("received %s again; still stopping", name)
            return
        raised = True
        raise Interrupted(name)

    with _signal_handler(handler):
        yield


@contextmanager
def _signal_handler(handler: Callable[[int, object], None]) -> Iterator[None]:
    """``handler`` for SIGTERM and SIGINT in the block (only the main thread may set one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


def _note_signal(signum: int, frame: object) -> None:
    log.warning("received %s; still stopping the embedded Postgres", signal.Signals(signum).name)


@contextmanager
def database_url(settings: Settings, *, beside_node: bool = False) -> Iterator[str]:
    """The configured database, or an embedded Postgres started (and stopped) here. With
    ``beside_node``, the embedded Postgres that a running node holds is used if there is one
    (its URL is in the node's lock file)."""
    if settings.database.url:
        yield settings.database.url
        return
    from mg.embedded.server import EmbeddedPostgres

    embedded = settings.database.embedded
    server = EmbeddedPostgres(embedded.data_dir, port=embedded.port, user=embedded.user)
    if beside_node and (running := server.running_url()):
        yield running
        return
    try:
        url = server.start()
        log.info(
            "embedded Postgres is running at %s (password in %s, data in %s, log in %s)",
            server.url(masked=True),
            server.password_file,
            server.data_dir,
            server.log_file,
        )
        yield url
    finally:
        with _signal_handler(_note_signal):  # a signal must not cut the (bounded) stop short
            server.stop()


async def _serve(settings: Settings, url: str) -> None:
    from mg.node import running_node

    # Signals are received from the start, so that one during start-up or the drain is handled
    # here (a stop after start-up), never by the handler of ``_stop_on_signals``.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        # Serving starts before Postgres answers: /health/live is up, readiness follows.
        async with running_node(settings, url, wait_ready=False) as node:
            tune_garbage_collector()
            log.info("mg is serving on %s", node.url)
            async for signum in signals:
                log.info("received %s; draining in-flight requests", signal.Signals(signum).name)
                node.stop()
                break


async def _migrate(settings: Settings, url: str) -> None:
    from mg.postgres.bridge.factory import make_bridge
    from mg.postgres.migrations import migrate

    bridge = make_bridge(settings.database.bridge, url, min_size=1, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        applied = await migrate(bridge)
        print(f"applied migrations: {applied}" if applied else "the schema is up to date")
    finally:
        await bridge.close()


def _settings(args: argparse.Namespace) -> Settings:
    path: Path | None = args.config
    return load(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in (("serve", "run a node"), ("migrate", "apply the schema and exit")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--config", type=Path, help="TOML config file (see mg.example.toml)")
    sub = commands.choices["serve"]
    sub.add_argument("--log-format", choices=("json", "text"), help="override logging.format")
    add_machine_commands(commands)
    add_sink_commands(commands)
    add_demo_command(commands)
    args = parser.parse_args(argv)
    # Commands that talk to a node need neither a config file nor a database.
    if getattr(args, "remote", None) is not None:
        return run_remote(args.remote, args)
    if args.command == "demo":
        from mg.demo.command import run_demo

        return run_demo(args)
    try:
        settings = _settings(args)
    except SettingsError as error:
        print(f"mg: bad configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(
        getattr(args, "log_format", None) or settings.logging.format, settings.logging.level
    )
    for warning in settings.warnings:
        log.warning("%s", warning)
    from mg.embedded.errors import EmbeddedPostgresError

    try:
        with _stop_on_signals(), database_url(settings, beside_node=args.command == "sink") as url:
            if args.command == "serve":
                trio.run(_serve, settings, url)
            elif args.command == "sink":
                return int(trio.run(run_sink_command, settings, url, args))
            else:
                trio.run(_migrate, settings, url)
    except Interrupted as signum:
        log.info("received %s; stopped", signum)
    except EmbeddedPostgresError as error:
        print(f"mg: {error}", file=sys.stderr)
        return CANNOT if args.command == "sink" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
