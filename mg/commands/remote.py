"""What every command that talks to a node shares: the connection options, the one place they
read the environment, JSON arguments, and the mapping of errors to messages and exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from mg.client import Client, MachineFailed, MgError, Range
from mg.client.results import Address, Direction, Tag
from mg.commands.output import document, inline
from mg.core import values

OK, ERROR_ANSWER, USAGE, NO_ANSWER = 0, 1, 2, 3
INTERRUPTED = 130  # what shells report for a command ended by SIGINT
DEFAULT_URL = "http://127.0.0.1:8022"


class UsageError(ValueError):
    """The command line asks for something that cannot be sent (exit 2)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command goes: the node, the bearer token, the namespace."""

    url: str
    token: str | None
    ns: str | None


def target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """Options first, then ``MG_URL``, ``MG_TOKEN`` and ``MG_NS``: the only environment the
    client commands read."""
    url = args.url or environ.get("MG_URL") or DEFAULT_URL
    token = args.token or environ.get("MG_TOKEN") or None
    ns = getattr(args, "ns", None) or environ.get("MG_NS") or None
    return Target(url.rstrip("/"), token, ns)


Command = Callable[[Client, Target, argparse.Namespace], int]


def add_connection_options(parser: argparse.ArgumentParser, *, namespace: bool = True) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--url", help=f"the node's base URL (default $MG_URL, else {DEFAULT_URL})")
    if namespace:
        group.add_argument("--ns", help="the namespace (default $MG_NS)")
    group.add_argument("--token", help="bearer token for a node with auth (default $MG_TOKEN)")
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="how long mg may take (sent as X-Request-Timeout; default: the namespace's)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def add_range_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_argument_group(f"range ({what})")
    group.add_argument("--after", type=int, metavar="N", help="only events after event N")
    group.add_argument("--limit", type=int, metavar="N", help="at most N events")
    group.add_argument("--backward", action="store_true", help="walk from the newest event")


def selected_range(args: argparse.Namespace) -> Range | None:
    """The range the options name; ``None`` (the whole history) when none is given."""
    if args.after is None and args.limit is None and not args.backward:
        return None
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must not be negative")
    direction = Direction.BACKWARD if args.backward else Direction.FORWARD
    return Range(after=args.after, limit=args.limit, direction=direction)


def add_address(parser: argparse.ArgumentParser, *, by_tag: bool = True) -> None:
    if not by_tag:
        parser.add_argument("id", help="the machine's id")
        return
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the machine's id")
    which.add_argument("--tag", help="address the machine holding this tag instead")


def address(args: argparse.Namespace) -> Address:
    tag: str | None = getattr(args, "tag", None)
    return Tag(tag) if tag is not None else str(args.id)


def label(ns: str, machine: Address) -> str:
    """How messages name a machine."""
    return f"{ns}/tag:{machine.name}" if isinstance(machine, Tag) else f"{ns}/{machine}"


def add_args_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--args",
        dest="args_json",
        required=required,
        metavar="JSON",
        help='the args as JSON (binary as {"$base64": "..."}; "-" reads stdin; default null)',
    )


def parse_args_value(text: str | None) -> Any:
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return values.from_json(json.loads(text))
    except ValueError as error:  # JSONDecodeError and ValueRejected are both ValueErrors
        raise UsageError(f"--args is not a JSON value: {error}") from error


def namespace(found: Target) -> str:
    if not found.ns:
        raise UsageError("no namespace: give --ns or set MG_NS")
    return found.ns


def _repair_hint(error: MgError, args: argparse.Namespace) -> str | None:
    """How to repair a machine that a command found failed (not one this command failed)."""
    if not isinstance(error, MachineFailed) or " is failed: " not in error.message:
        return None
    tag = getattr(args, "tag", None)
    which = f"--tag {tag}" if tag is not None else getattr(args, "id", None)
    if which is None:
        return None
    return (
        f"  repair it: mg machines repair {which} --args JSON (your processor's repair), "
        f"or mg machines simple-repair {which}"
    )


def _report(error: MgError, as_json: bool, args: argparse.Namespace | None = None) -> None:
    if as_json:
        body = {"error": error.code, "message": error.message, **error.details}
        print(document(body), file=sys.stderr)
        return
    print(f"mg: {error.code}: {error.message}", file=sys.stderr)
    for name, value in error.details.items():
        text = inline(value)
        if text not in error.message:  # mg's messages often quote the reason already
            print(f"  {name}: {text}", file=sys.stderr)
    hint = _repair_hint(error, args) if args is not None else None
    if hint is not None:
        print(hint, file=sys.stderr)


def run_remote(command: Command, args: argparse.Namespace) -> int:
    """Run one command with a client for its target; errors become a message on stderr and
    an exit code (see ``mg.commands``)."""
    found = target(args, os.environ)
    try:
        with Client(found.url, token=found.token, encoding="msgpack") as client:
            return command(client, found, args)
    except UsageError as error:
        print(f"mg: {error}", file=sys.stderr)
        return USAGE
    except MgError as error:
        _report(error, args.json, args)
        # The client raises with the transport's error as the cause when nothing answered.
        return NO_ANSWER if isinstance(error.__cause__, httpx.TransportError) else ERROR_ANSWER
    except KeyboardInterrupt:
        return INTERRUPTED  # Ctrl-C: no traceback; the request's outcome is unknown
    except BrokenPipeError:
        # The reader went away (``| head``): not an error; keep Python from complaining at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK
