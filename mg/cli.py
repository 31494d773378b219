"""The ``mg`` command: ``mg serve`` runs a node; ``mg migrate`` applies the schema; ``mg machines``
works with machines on a running node; ``mg sink`` works with sinks (``tail``, ``verify``);
``mg demo`` runs a short scenario on a throw-away node."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import trio

from mg.commands.machines import add_machine_commands
from mg.commands.remote import run_remote
from mg.demo import add_demo_command
from mg.logs import configure_logging
from mg.runtime import tune_garbage_collector
from mg.settings import Settings, SettingsError, load
from mg.sink_cli import add_sink_commands, run_sink_command

log = logging.getLogger("mg")


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """The configured database, or an embedded Postgres started (and stopped) here."""
    if settings.database.url:
        yield settings.database.url
        return
    from mg.embedded.server import EmbeddedPostgres

    embedded = settings.database.embedded
    server = EmbeddedPostgres(embedded.data_dir, port=embedded.port, user=embedded.user)
    url = server.start()
    log.info(
        "embedded Postgres is running at %s (data in %s, log in %s)",
        url,
        server.data_dir,
        server.log_file,
    )
    try:
        yield url
    finally:
        server.stop()


async def _serve(settings: Settings, url: str) -> None:
    from mg.node import running_node

    # Serving starts before Postgres answers: /health/live is up, readiness follows the database.
    async with running_node(settings, url, wait_ready=False) as node:
        tune_garbage_collector()
        log.info("mg is serving on %s", node.url)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
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
    if args.command == "sink" and getattr(args, "file", None) is not None:
        from mg.commands.sink_archive import verify_file_command

        return verify_file_command(args)
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
    with database_url(settings) as url:
        if args.command == "serve":
            trio.run(_serve, settings, url)
        elif args.command == "sink":
            return int(trio.run(run_sink_command, settings, url, args))
        else:
            trio.run(_migrate, settings, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
