"""``mg sink export`` and ``mg sink verify --file``: archiving a sink (PROTOCOL section 7).

``mg sink export SINK [--after N] [--until M] --output FILE`` reads the sink through a node's
HTTP API, page by page, and writes JSON Lines: first ``{"sink", "after", "anchor"}`` (the
anchor is the hash of position ``after``, the one the first exported event chains from), then
one ``SinkEvent`` per line as the API returns it. Memory stays constant whatever the span;
on a terminal a progress line shows how far it got. ``--after`` defaults to just before the
sink's first held position, ``--until`` to its last position when the export starts. The file
is written as ``FILE.partial`` and renamed when complete. Export before retention prunes.

``mg sink verify --file FILE`` checks such a file's chain offline, with no node or database:
each line's position must follow the previous one and its hash must be the hash of its event
chained from the previous hash (the header's anchor for the first). Exit 0 with a summary, 1
naming the first broken position and its line, 2 when the file cannot be read as an export.
Data is re-encoded from its JSON form, so a value with non-string map keys (which JSON cannot
keep) is reported as broken: archive such sinks from a downstream replica instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mg.client import Client, Direction, Range, SinkEvent
from mg.commands.output import document
from mg.commands.remote import OK, Target, UsageError, add_connection_options
from mg.core import values
from mg.core.shapes import ShapeError, event_value, parse_event
from mg.core.sink import chain_hash
from mg.errors import SinkEventsPruned

PAGE = 1000
INTACT, BROKEN, CANNOT = 0, 1, 2


def add_export_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser(
        "export", help="write a sink's events to a JSON Lines file", description=__doc__
    )
    export.set_defaults(remote=run_export)
    export.add_argument("sink", help="the sink's name")
    export.add_argument(
        "--after", type=int, metavar="N", help="export positions after N (default: all held)"
    )
    export.add_argument(
        "--until",
        type=int,
        metavar="M",
        help="up to position M included (default: the last position when the export starts)",
    )
    export.add_argument(
        "--output", "-o", type=Path, required=True, metavar="FILE", help="the file to write"
    )
    add_connection_options(export, namespace=False)


def export_line(item: SinkEvent) -> dict[str, Any]:
    """A ``SinkEvent`` as the API returns it (``incarnation`` when the node sent it)."""
    line: dict[str, Any] = {"id": item.id, "ns": item.ns, "machine_id": item.machine_id}
    if item.incarnation is not None:
        line["incarnation"] = item.incarnation
    line["event"] = event_value(item.event)
    line["hash"] = item.hash
    return line


def _hash_at(client: Client, sink: str, position: int, timeout: float | None) -> str:
    found = client.read_sink(
        sink,
        range=Range(after=position + 1, limit=1, direction=Direction.BACKWARD),
        timeout=timeout,
    )
    if not found or found[0].id != position:
        raise UsageError(f"position {position} is not in sink {sink!r}")
    return found[0].hash


class _Progress:
    """A progress line on stderr, only when it is a terminal."""

    def __init__(self, until: int) -> None:
        self.shown = sys.stderr.isatty()
        self.until = until

    def update(self, count: int, position: int) -> None:
        if self.shown:
            print(
                f"\rexported {count} events, position {position} of {self.until}",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def done(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def run_export(client: Client, found: Target, args: argparse.Namespace) -> int:
    sink, timeout = args.sink, args.timeout
    bounds = client.sink_bounds(sink, timeout=timeout)
    after = bounds.first - 1 if args.after is None else args.after
    until = bounds.last if args.until is None else args.until
    if after < 0:
        raise UsageError("--after must not be negative")
    if until < after:
        raise UsageError("--until must not be below --after")
    if after < bounds.first - 1:
        raise SinkEventsPruned(
            f"sink {sink!r} no longer holds position {after + 1}: its first held position is "
            f"{bounds.first}",
            first=bounds.first,
        )
    anchor = bounds.anchor if after == bounds.first - 1 else _hash_at(client, sink, after, timeout)
    partial = args.output.with_name(args.output.name + ".partial")
    count, position = 0, after
    progress = _Progress(until)
    with partial.open("w", encoding="utf-8") as out:
        out.write(document({"sink": sink, "after": after, "anchor": anchor}) + "\n")
        while position < until:
            page = client.read_sink(
                sink,
                range=Range(after=position, limit=min(PAGE, until - position)),
                timeout=timeout,
            )
            if not page:
                break  # the sink ends before --until
            out.writelines(document(export_line(item)) + "\n" for item in page)
            count, position = count + len(page), page[-1].id
            progress.update(count, position)
    progress.done()
    os.replace(partial, args.output)
    span = f"positions {after + 1}..{position}" if count else "no events"
    print(f"exported {count} events of sink {sink!r} ({span}) to {args.output}")
    return OK


# --- offline verification --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileVerdict:
    sink: str
    after: int
    checked: int
    broken_at: int | None = None
    line: int | None = None
    reason: str = ""

    def summary(self, path: Path) -> str:
        if self.broken_at is not None:
            return (
                f"{path} (sink {self.sink!r}): broken link at position {self.broken_at} "
                f"(line {self.line}): {self.reason} ({self.checked} links checked before it)"
            )
        if self.checked == 0:
            return f"{path} (sink {self.sink!r}): no events after position {self.after}"
        return (
            f"{path} (sink {self.sink!r}): chain intact, {self.checked} events, positions "
            f"{self.after + 1}..{self.after + self.checked}"
        )


class CannotRead(ValueError):
    """The file is not an export (no header, a line that is not JSON)."""


def _lines(stream: TextIO) -> Iterator[tuple[int, Any]]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except ValueError as error:
            raise CannotRead(f"line {number} is not JSON: {error}") from error


def verify_stream(stream: TextIO) -> FileVerdict:
    """Check an export's chain, line by line (constant memory)."""
    lines = _lines(stream)
    header = next(lines, None)
    if header is None or not isinstance(header[1], dict):
        raise CannotRead("the file has no header line")
    head = header[1]
    try:
        sink, after = str(head["sink"]), head["after"]
        previous = bytes.fromhex(head["anchor"])
    except (KeyError, TypeError, ValueError) as error:
        raise CannotRead(f"the header is not {{sink, after, anchor}}: {error}") from error
    if not isinstance(after, int) or len(previous) != 32:
        raise CannotRead("the header's after must be an integer and anchor 64 hex digits")
    expected, checked = after + 1, 0
    for number, row in lines:
        reason = _broken_link(row, expected, previous)
        if reason is not None:
            return FileVerdict(sink, after, checked, expected, number, reason)
        previous, expected, checked = bytes.fromhex(row["hash"]), expected + 1, checked + 1
    return FileVerdict(sink, after, checked)


def _broken_link(row: Any, expected: int, previous: bytes) -> str | None:
    """Why ``row`` is not the link expected at position ``expected``, or None."""
    try:
        position = row["id"]
        event = parse_event(values.from_json(row["event"]), "event")
        stored = bytes.fromhex(row["hash"])
        ns, machine_id = str(row["ns"]), str(row["machine_id"])
    except (KeyError, TypeError, ValueError, ShapeError) as error:
        return f"the line is not a SinkEvent: {error}"
    if position != expected:
        return f"position {expected} is missing (the line has {position})"
    packed = values.pack(event.data)
    recomputed = chain_hash(
        previous, position, ns, machine_id, event.id, event.created_at, event.format_version, packed
    )
    if recomputed != stored:
        return (
            "the hash is not the hash of this event and the previous hash "
            f"(stored {stored.hex()}, recomputed {recomputed.hex()})"
        )
    return None


def verify_file_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        with path.open(encoding="utf-8") as stream:
            verdict = verify_stream(stream)
    except (OSError, CannotRead, UnicodeDecodeError) as error:
        print(f"mg: cannot verify {path}: {error}", file=sys.stderr)
        return CANNOT
    if args.sink is not None and args.sink != verdict.sink:
        print(f"mg: {path} is an export of sink {verdict.sink!r}, not {args.sink!r}")
        return CANNOT
    print(verdict.summary(path))
    return INTACT if verdict.broken_at is None else BROKEN
