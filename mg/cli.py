"""The ``mg`` command: ``mg demo`` runs a short scenario on a throw-away node; ``mg serve`` runs a
node (``--workers N``: in N processes); ``mg migrate`` applies the schema; ``mg machines`` works
with machines on a running node; ``mg sink`` works with sinks (``tail``, ``verify``); ``mg db
url`` and ``mg psql`` name and open the database."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import cast

import trio

import mg
from mg.commands.database import (
    add_database_commands,
    no_database_message,
    psql_namespace,
    run_database_command,
)
from mg.commands.machines import add_machine_commands
from mg.commands.remote import run_remote
from mg.demo import add_demo_command
from mg.logs import configure_logging
from mg.runtime import tune_garbage_collector
from mg.settings import Settings, SettingsError, load, parse_workers
from mg.sink_cli import CANNOT, add_sink_commands, run_sink_command
from mg.startup import CannotRun
from mg.workers.supervisor import Supervisor, worker_command
from mg.workers.worker import Worker, stamp_logs

log = logging.getLogger("mg")

# Exit codes: 0 done; 1 migrations pending (`mg migrate --check`), or an unexpected error; 2 bad
# configuration; 3 schema incompatible; 4 mg's resources missing; 5 Postgres refuses the node
# (mg.startup, docs/upgrading.md).
CHECK_PENDING = 1


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
    # Every worker has its own pool; a few connections more for psql and mg's own commands.
    wanted = settings.server.workers * settings.database.pool_size + 20
    server = EmbeddedPostgres(
        embedded.data_dir,
        port=embedded.port,
        user=embedded.user,
        max_connections=max(200, wanted),
    )
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


async def _serve(settings: Settings, url: str, worker: Worker | None = None) -> None:
    from mg.node import running_node

    # Signals are received from the start, so that one during start-up or the drain is handled
    # here (a stop after start-up), never by the handler of ``_stop_on_signals``.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        # Serving starts before Postgres answers: /health/live is up, readiness follows.
        async with running_node(settings, url, wait_ready=False, worker=worker) as node:
            tune_garbage_collector()
            if worker is None:
                log.info("mg is serving on %s", node.url)
            else:
                log.info("worker %d has started", worker.index)
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        log.info("received %s; draining in-flight requests", name)
                        node.stop()
                        break

                async def on_stop() -> None:
                    # The node stopped itself (a cause that waiting will not heal).
                    await node.shutdown.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(on_signal)
                nursery.start_soon(on_stop)
                if worker is not None:
                    await worker.until_orphaned()
                    node.stop()


async def _migrate(settings: Settings, url: str, check: bool) -> int:
    """Every database named in the configuration; the worst answer is the command's."""
    placements = settings.placements()
    code = 0
    for placement in placements:
        if len(placements) > 1:
            print(f"database {placement.name}:")
        code = max(code, await _migrate_one(settings, placement.url or url, check))
    return code


async def _migrate_one(settings: Settings, url: str, check: bool) -> int:
    from mg.postgres.bridge.factory import make_bridge
    from mg.postgres.failures import refusal
    from mg.postgres.migrations import check as check_schema
    from mg.postgres.migrations import migrate

    bridge = make_bridge(settings.database.bridge, url, min_size=0, max_size=2, connect_timeout=10)
    await bridge.open()
    try:
        if check:
            plan = await check_schema(bridge)
            print(plan.describe())
            return CHECK_PENDING if plan.pending else 0
        # The operator's own step: also the migrations that stop nodes of older code.
        applied = await migrate(bridge, leave_behind=True)
        print(f"applied migrations: {applied}" if applied else "the schema is up to date")
        return 0
    except Exception as error:
        refused = refusal(error)
        if refused is None:
            raise
        raise refused from error
    finally:
        await bridge.close()


def _sink_database(settings: Settings, args: argparse.Namespace, default_url: str) -> str:
    """A sink command works on the database the sink lives in."""
    sink = getattr(args, "sink", None)
    for placement in settings.placements():
        if sink in placement.sinks and placement.url is not None:
            return placement.url
    return default_url


def _worker(args: argparse.Namespace, settings: Settings) -> Worker | None:
    """This process's place among the workers, when a parent started it as one; log lines of
    a parent or a worker say which it is, and the settings' warnings are logged once."""
    index = getattr(args, "worker_index", None)
    if index is not None:
        stamp_logs(index)
        return Worker(index, args.listen_fd, args.parent_fd, args.worker_dir)
    if args.command == "serve" and settings.server.workers > 1:
        stamp_logs("parent")
    for warning in settings.warnings:
        log.warning("%s", warning)
    return None


def _settings(args: argparse.Namespace) -> Settings:
    path: Path | None = args.config
    settings = load(path)
    if getattr(args, "workers", None) is not None:
        workers = parse_workers(args.workers, "--workers")
        settings = replace(settings, server=replace(settings.server, workers=workers))
    return settings


def plain(text: str | None) -> str | None:
    """Docstring text for ``--help``: without reStructuredText's double backticks."""
    return text.replace("``", "") if text else text


class _PlainParser(argparse.ArgumentParser):
    """A parser whose descriptions lose their markup, so ``--help`` shows plain text."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        if isinstance(kwargs.get("description"), str):
            kwargs["description"] = plain(str(kwargs["description"]))
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    parser = _PlainParser(prog="mg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mg {mg.__version__}")
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_PlainParser),
    )
    add_demo_command(commands)
    for name, help_text in (("serve", "run a node"), ("migrate", "apply the schema and exit")):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", type=Path, help="TOML config file (see mg.example.toml)")
    commands.choices["migrate"].add_argument(
        "--check",
        action="store_true",
        help="say what would be applied, change nothing; exit 1 if something would",
    )
    sub = commands.choices["serve"]
    sub.add_argument("--log-format", choices=("json", "text"), help="override logging.format")
    sub.add_argument(
        "--workers", metavar="N", help='processes serving the port: N or "auto" (server.workers)'
    )
    # Given by the parent of workers to each worker (mg.workers), not by users.
    for option in ("--worker-index", "--listen-fd", "--parent-fd"):
        sub.add_argument(option, type=int, help=argparse.SUPPRESS)
    sub.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    add_machine_commands(commands)
    add_sink_commands(commands)
    add_database_commands(commands)
    return parser


def _cannot_run(error: BaseException) -> CannotRun | None:
    """The cause that stopped mg (``mg.startup``), found inside exception groups too."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _cannot_run(inner)
            if found is not None:
                return found
        return None
    return error if isinstance(error, CannotRun) else None


def startup_failure(error: BaseException, listen: str = "the configured address") -> str | None:
    """One line for a failure that stops mg from starting (a port in use, a missing file, a
    database mg cannot use), found inside exception groups; ``None`` for anything else."""
    from mg.embedded.errors import EmbeddedPostgresError

    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = startup_failure(inner, listen)
            if found is not None:
                return found
        return None
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {listen}: the address is already in use; stop what holds the "
            "port or choose another one (server.port in the config)"
        )
    if isinstance(error, OSError) and error.errno in (errno.EADDRNOTAVAIL, errno.EACCES):
        return f"cannot listen on {listen} or open a file: {error}"
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.strerror}: {error.filename}"
    if isinstance(error, OSError):
        return f"cannot start: {error.strerror or error}"
    if isinstance(error, EmbeddedPostgresError):
        return str(error)
    return None


def _missing_tls_file(settings: Settings) -> str | None:
    """A TLS file of ``[server]`` that is not there, said before anything starts (the TLS
    library's own error would not name it)."""
    server = settings.server
    for key, value in (
        ("certfile", server.certfile),
        ("keyfile", server.keyfile),
        ("ca_certs", server.ca_certs),
    ):
        if value and not Path(value).is_file():
            return f"server.{key}: no such file: {value}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if given[:1] == ["psql"] and (psql_args := psql_namespace(given[1:])) is not None:
        return run_database_command(psql_args)
    args = parser.parse_args(given)
    if args.command is None:
        parser.print_help()
        return 2
    # Commands that talk to a node need neither a config file nor a database.
    if getattr(args, "remote", None) is not None:
        return run_remote(args.remote, args)
    if args.command == "sink" and getattr(args, "file", None) is not None:
        from mg.commands.sink_archive import verify_file_command

        return verify_file_command(args)
    if args.command == "demo":
        from mg.demo.command import run_demo

        return run_demo(args)
    if args.command in ("db", "psql"):
        return run_database_command(args)
    try:
        settings = _settings(args)
    except SettingsError as error:
        print(f"mg: bad configuration: {error}", file=sys.stderr)
        return 2
    if args.command == "serve" and (problem := _missing_tls_file(settings)) is not None:
        print(f"mg: {problem}", file=sys.stderr)
        return 2
    if args.command == "sink" and (problem := no_database_message(settings)) is not None:
        # Reading commands never create a database; an empty new one would only fail later.
        print(f"mg: {problem}", file=sys.stderr)
        return 2
    configure_logging(
        getattr(args, "log_format", None) or settings.logging.format, settings.logging.level
    )
    worker = _worker(args, settings)
    from mg.embedded.errors import EmbeddedPostgresError

    try:
        with _stop_on_signals(), database_url(settings, beside_node=args.command == "sink") as url:
            if args.command == "serve" and worker is None and settings.server.workers > 1:
                command = worker_command(args.config, args.log_format)
                supervisor = Supervisor(settings, url, command, settings.server.workers)
                if refused := trio.run(supervisor.run):
                    return refused
            elif args.command == "serve":
                trio.run(_serve, settings, url, worker)
            elif args.command == "sink":
                sink_url = _sink_database(settings, args, url)
                return int(trio.run(run_sink_command, settings, sink_url, args))
            else:
                return int(trio.run(_migrate, settings, url, args.check))
    except Interrupted as signum:
        log.info("received %s; stopped", signum)
    except EmbeddedPostgresError as error:
        print(f"mg: {error}", file=sys.stderr)
        return CANNOT if args.command == "sink" else 1
    except Exception as error:
        cause = _cannot_run(error)
        if cause is not None:
            # One line naming the cause, and an exit code of its own: not an outage to wait out.
            log.error("mg cannot run: %s", cause)
            return cause.exit_code
        found = startup_failure(error, f"{settings.server.host}:{settings.server.port}")
        if found is None:
            raise
        print(f"mg: {found}", file=sys.stderr)
        return 1
    if args.command == "serve":
        log.info("mg stopped%s", "" if settings.database.url else ", and its embedded Postgres")
    return 0


if __name__ == "__main__":
    sys.exit(main())
