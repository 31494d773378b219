"""``mg demo`` and its order processor. ``orders`` is the processor (also served by
``examples/orders/processor.py``), ``scenario`` the story the demo tells through ``mg.client``,
``command`` the throw-away Postgres, processor and node it runs on.

The parser lives here, light to import: ``mg`` builds it for every command, and loads the
demo's stack only to run it.
"""

from __future__ import annotations

import argparse

DESCRIPTION = """Run mg's order example on a fresh install, with nothing else running: an
embedded Postgres in a temporary directory, the order processor and a node, all in this
process. One order is paid and shipped in time; another is never paid, and its timer expires
it. Then the histories, the sink and its verified hash chain are shown, and everything is
stopped and deleted (Ctrl-C included). --keep leaves it running for exploration until Ctrl-C."""


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo", help="run the order example on a throw-away node", description=DESCRIPTION
    )
    demo.add_argument("--keep", action="store_true", help="keep it running until Ctrl-C")
    demo.add_argument("--port", type=int, default=0, help="the node's port (default: a free one)")
    demo.add_argument(
        "--timer", type=float, default=1.5, metavar="SECONDS", help="the unpaid order's timer"
    )
