"""Serving a ``Processor`` over HTTP with hypercorn on trio."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from mg.processor.app import ProcessorApp
from mg.processor.base import Processor


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    # Through the program's logging setup, not a second handler of hypercorn's own.
    config.errorlog = logging.getLogger("hypercorn.error")
    # mg keeps connections to its processors open between steps.
    config.keep_alive_timeout = 75
    return config


async def serve(
    processor: Processor,
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]] | None = None,
    config: Config | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``processor`` until cancelled (or ``shutdown_trigger`` returns).

    With ``nursery.start(serve, processor, host, 0)`` the started value is the base URL
    actually bound (port 0 picks a free port); mg's ``processor.url`` is that URL plus any
    path, e.g. ``/processor``, and ``modernizer.url`` that URL plus ``/modernizer``.
    """
    settings = config if config is not None else hypercorn_config(host, port)
    # The app is typed as plain ASGI, not with hypercorn's own event types.
    app = cast(Any, ProcessorApp(processor))
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(
                hypercorn_serve,
                app,
                settings,
                shutdown_trigger=shutdown_trigger or trio.sleep_forever,
            )
        )
        task_status.started(str(binds[0]))


def run(processor: Processor, host: str = "127.0.0.1", port: int = 9000) -> None:
    """Serve ``processor`` in the foreground (blocks; Ctrl-C stops it). Logs go to stderr at
    INFO unless the program has set up logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    trio.run(partial(serve, processor, host, port))
