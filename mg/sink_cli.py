"""``mg sink ...``: commands about sinks. ``mg sink verify SINK [--from N]`` recomputes a sink's
hash chain from the database (docs/sink.md), from its first held position and anchor by
default; ``mg sink tail`` and ``mg sink export`` read a sink through a node's HTTP API
(``mg.commands.sink_tail``, ``mg.commands.sink_archive``); ``mg sink verify --file FILE``
checks an export offline.

Exit codes: 0 the chain holds, 1 a link is broken (the first one is named), 2 the check could not
be made (unknown sink, ``--from`` without a stored predecessor, database unreachable).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mg.commands.sink_archive import add_export_command
from mg.commands.sink_tail import add_tail_command
from mg.errors import MgError
from mg.settings import Settings

INTACT, BROKEN, CANNOT = 0, 1, 2


def add_sink_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sink = commands.add_parser("sink", help="work with sinks")
    sink_commands = sink.add_subparsers(dest="sink_command", required=True, metavar="COMMAND")
    add_tail_command(sink_commands)
    add_export_command(sink_commands)
    verify = sink_commands.add_parser(
        "verify", help="recompute a sink's hash chain; exit 1 naming the first broken position"
    )
    verify.add_argument(
        "sink", nargs="?", help="the sink's name (with --file: optional, checked if given)"
    )
    verify.add_argument(
        "--file",
        type=Path,
        metavar="FILE",
        help="check an export (mg sink export) offline, without a node or a database",
    )
    verify.add_argument(
        "--from",
        dest="start",
        type=int,
        default=None,
        metavar="N",
        help="start at position N, chaining from the stored hash of N-1 (default: the sink's "
        "first held position, chaining from its anchor)",
    )
    verify.add_argument("--config", type=Path, help="TOML config file (see mg.example.toml)")


async def run_sink_command(settings: Settings, url: str, args: argparse.Namespace) -> int:
    if args.sink is None:
        print("mg: sink verify needs a sink's name (or --file FILE)")
        return CANNOT
    # Imported here: the other commands of ``mg`` do not need the database stack.
    from mg.postgres.bridge.factory import make_bridge
    from mg.postgres.migrations import is_current
    from mg.postgres.sinks import PostgresSinks
    from mg.service.sink_verify import CannotVerify, verify_chain

    bridge = make_bridge(settings.database.bridge, url, min_size=1, max_size=2)
    try:
        await bridge.open()
        if not await is_current(bridge, timeout=30):
            print(
                f"mg: cannot verify sink {args.sink!r}: the database's schema is not this mg's "
                "(run mg migrate, or start a node, first)"
            )
            return CANNOT
        sinks = PostgresSinks(bridge)
        verdict = await verify_chain(sinks, args.sink, args.start)
        if verdict.checked == 0 and verdict.intact and args.sink not in settings.sinks:
            # Nothing stored and nothing configured: more likely a typo than an empty sink.
            print(f"mg: sink {args.sink!r} is not configured and has no events")
            return CANNOT
    except CannotVerify as error:
        print(f"mg: cannot verify sink {args.sink!r}: {error}")
        return CANNOT
    except (MgError, OSError) as error:
        print(f"mg: cannot verify sink {args.sink!r}: {error}")
        return CANNOT
    except Exception as error:  # a check that could not be made is never "a link is broken"
        print(f"mg: cannot verify sink {args.sink!r}: {type(error).__name__}: {error}")
        return CANNOT
    finally:
        await bridge.close()
    print(verdict.summary())
    return INTACT if verdict.intact else BROKEN
