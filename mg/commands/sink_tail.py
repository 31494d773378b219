"""``mg sink tail SINK``: print a sink's events through a node's HTTP sink API, and with
``--follow`` keep printing new ones as they are published (long-polling with ``wait``).

Like ``tail``: without ``--after`` it starts with the last ``--last`` events (default 10);
``--after N`` starts after position N instead (``--after 0``: from the beginning). ``--limit N``
stops after N events, following or not. ``--json`` prints one JSON line per event, the
contract's ``SinkEvent``. Ctrl-C ends a follow normally (exit 0).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mg.client import Client, Direction, Range, SinkEvent
from mg.commands.output import SINK_HEADERS, Columns, document, sink_event_document, sink_row
from mg.commands.remote import OK, Target, UsageError, add_connection_options


def add_tail_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser(
        "tail", help="print a sink's events; --follow waits for new ones", description=__doc__
    )
    tail.set_defaults(remote=run_tail)
    tail.add_argument("sink", help="the sink's name")
    tail.add_argument("--after", type=int, metavar="N", help="start after position N")
    tail.add_argument(
        "--last", type=int, default=10, metavar="K", help="without --after: start with the last K"
    )
    tail.add_argument("--limit", type=int, metavar="N", help="stop after N events")
    tail.add_argument("-f", "--follow", action="store_true", help="wait for new events")
    tail.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long each long-poll waits while following (default 30; the node caps it)",
    )
    add_connection_options(tail, namespace=False)


class _Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.columns = Columns(SINK_HEADERS, numeric=(0, 3))
        self.printed = 0

    def print(self, events: Sequence[SinkEvent]) -> None:
        if not events:
            return  # the first rows, not the header alone, set the columns' widths
        if self.as_json:
            lines = [document(sink_event_document(item)) for item in events]
        else:
            lines = self.columns.lines([sink_row(item) for item in events])
        print("\n".join(lines))
        sys.stdout.flush()  # a follower's reader (a pipe) sees each batch as it comes
        self.printed += len(events)


def _start(client: Client, sink: str, args: argparse.Namespace) -> tuple[int, list[SinkEvent]]:
    """The position to follow from, and the backlog to print first."""
    if args.after is not None:
        return args.after, []
    # Read at least one event: with --last 0 the newest position is still where to start.
    newest = Range(limit=max(args.last, 1), direction=Direction.BACKWARD)
    found = client.read_sink(sink, range=newest, timeout=args.timeout)
    start = found[0].id if found else 0
    return start, list(reversed(found[: args.last]))


def run_tail(client: Client, found: Target, args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        raise UsageError("--limit must not be negative")
    if args.last < 0:
        raise UsageError("--last must not be negative")
    printer = _Printer(args.json)
    try:
        after, backlog = _start(client, args.sink, args)
        printer.print(backlog[: args.limit])
        while args.limit is None or printer.printed < args.limit:
            want = None if args.limit is None else args.limit - printer.printed
            events = client.read_sink(
                args.sink,
                range=Range(after=after, limit=want),
                wait=args.wait if args.follow else None,
                timeout=args.timeout,
            )
            if not events and not args.follow:
                break
            printer.print(events)
            if events:
                after = events[-1].id
    except KeyboardInterrupt:
        pass  # the way to end --follow
    return OK
