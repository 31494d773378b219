"""Serve the tutorial's order processor (docs/tutorial.md) over HTTP, for ``mg serve`` to call.

    python examples/orders/processor.py            # http://127.0.0.1:9000/processor
    mg serve --config examples/orders/mg.toml      # in another shell

The processor itself is ``mg.demo.orders.Orders``, the class ``mg demo`` runs: one source for
both, read it there. This file is only the entry point.
"""

from __future__ import annotations

import argparse

from mg.demo.orders import Orders
from mg.processor import run


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve mg's example order processor.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    # One app answers both: POST .../processor for steps, POST .../modernizer for modernize.
    run(Orders(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
