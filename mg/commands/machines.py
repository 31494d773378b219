"""``mg machines ...``: list, read, start, call, repair, notify, modernize and remove machines
of a namespace through a node's client API.

With ``--json`` each command prints the contract's answer as one JSON document: ``list`` a
search page (``{"machines": [...], "next_cursor": ...}``), ``get`` a ``Machine``, ``start``
``{"ns", "id"}``, ``call`` and ``repair`` ``{"response": ...}``, ``notify`` ``{"id": ...}``,
``modernize`` ``{"modernized": n}``, ``simple-repair`` and ``remove`` ``{}``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mg.client import Client, Status
from mg.commands.output import (
    SUMMARY_HEADERS,
    Columns,
    document,
    inline,
    machine_document,
    machine_text,
    summary_document,
    summary_rows,
)
from mg.commands.remote import (
    OK,
    Command,
    Target,
    UsageError,
    add_address,
    add_args_option,
    add_connection_options,
    add_range_options,
    address,
    label,
    namespace,
    parse_args_value,
    selected_range,
)


def _list(client: Client, found: Target, args: argparse.Namespace) -> int:
    """Page by page: with ``--all`` each page is printed as it arrives (the table's widths are
    the first page's; ``--json`` writes the same document as one page would, incrementally),
    so listing a namespace of millions holds one page in memory, not all of them."""
    ns = namespace(found)
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit must be between 1 and 1000")
    out = sys.stdout
    columns = Columns(SUMMARY_HEADERS)
    printed = 0
    cursor: str | None = args.cursor
    if args.json:
        out.write('{"machines": [')
    while True:
        page = client.search(
            ns, status=args.status, limit=args.limit, cursor=cursor, timeout=args.timeout
        )
        if args.json:
            for summary in page.machines:
                out.write((", " if printed else "") + document(summary_document(summary)))
                printed += 1
        elif page.machines:
            out.writelines(line + "\n" for line in columns.lines(summary_rows(page.machines)))
            printed += len(page.machines)
        out.flush()
        cursor = page.next_cursor
        if cursor is None or not args.all:
            break
    if args.json:
        out.write(f'], "next_cursor": {document(cursor)}}}\n')
        return OK
    if not printed:
        print(f"no {args.status} machines in {ns}" if args.status else f"no machines in {ns}")
    if cursor is not None:
        # On stderr, so that the table on stdout stays only rows.
        print(f"more machines: add --cursor {cursor} (or --all)", file=sys.stderr)
    return OK


def _get(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns = namespace(found)
    machine = client.get(ns, address(args), range=selected_range(args), timeout=args.timeout)
    print(document(machine_document(machine)) if args.json else machine_text(machine))
    return OK


def _start(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns = namespace(found)
    client.start(ns, args.id, parse_args_value(args.args_json), timeout=args.timeout)
    print(document({"ns": ns, "id": args.id}) if args.json else f"started {label(ns, args.id)}")
    return OK


def _response(value: Any, args: argparse.Namespace) -> int:
    print(document({"response": value}) if args.json else inline(value))
    return OK


def _call(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns, machine = namespace(found), address(args)
    value = parse_args_value(args.args_json)
    selection = selected_range(args)
    return _response(client.call(ns, machine, value, range=selection, timeout=args.timeout), args)


def _repair(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns, machine = namespace(found), address(args)
    value = parse_args_value(args.args_json)
    selection = selected_range(args)
    answer = client.repair(ns, machine, value, range=selection, timeout=args.timeout)
    return _response(answer, args)


def _simple_repair(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns, machine = namespace(found), address(args)
    client.simple_repair(ns, machine, timeout=args.timeout)
    print(document({}) if args.json else f"repaired {label(ns, machine)} (simple repair)")
    return OK


def _notify(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns, machine = namespace(found), address(args)
    value = parse_args_value(args.args_json)
    selection = selected_range(args)
    queued = client.notify(ns, machine, value, range=selection, timeout=args.timeout)
    text = f"queued notification {queued} for {label(ns, machine)}"
    print(document({"id": queued}) if args.json else text)
    return OK


def _remove(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns = namespace(found)
    client.remove(ns, args.id, timeout=args.timeout)
    print(document({}) if args.json else f"removed {label(ns, args.id)}")
    return OK


def _modernize(client: Client, found: Target, args: argparse.Namespace) -> int:
    ns, machine = namespace(found), address(args)
    changed = client.modernize(ns, machine, range=selected_range(args), timeout=args.timeout)
    text = f"modernized {changed} event{'s' if changed != 1 else ''} of {label(ns, machine)}"
    print(document({"modernized": changed}) if args.json else text)
    return OK


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    run: Command,
    help_text: str,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(remote=run)
    add_connection_options(parser)
    return parser


def add_machine_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "machines", help="work with a namespace's machines on a running node", description=__doc__
    )
    machines = group.add_subparsers(dest="machines_command", required=True, metavar="COMMAND")

    listing = _command(machines, "list", _list, "list machines by id, optionally of one status")
    listing.add_argument("--status", choices=[status.value for status in Status])
    listing.add_argument("--limit", type=int, default=100, help="machines per page (1..1000)")
    listing.add_argument("--cursor", help="continue after a previous page")
    listing.add_argument("--all", action="store_true", help="follow the cursor to the last page")

    reading = _command(machines, "get", _get, "show a machine: status, timer, tags, history")
    add_address(reading)
    add_range_options(reading, "of the history shown")

    starting = _command(machines, "start", _start, "start a machine (the processor's init)")
    add_address(starting, by_tag=False)
    add_args_option(starting)

    for name, run, help_text in (
        ("call", _call, "call a machine; prints the processor's response"),
        ("repair", _repair, "repair a failed machine through the processor's repair"),
        ("notify", _notify, "queue a notification for a machine"),
    ):
        parser = _command(machines, name, run, help_text)
        add_address(parser)
        add_args_option(parser, required=name == "notify")
        add_range_options(parser, "of the history the processor sees")

    simple = _command(
        machines, "simple-repair", _simple_repair, "return a failed machine to its last status"
    )
    add_address(simple)

    modernizing = _command(
        machines, "modernize", _modernize, "rewrite outdated events through the modernizer"
    )
    add_address(modernizing)
    add_range_options(modernizing, "of the events to modernize")

    removing = _command(machines, "remove", _remove, "delete a machine and everything it holds")
    add_address(removing, by_tag=False)
