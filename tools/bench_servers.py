"""The two small servers ``tools/bench.py steps`` runs as processes of their own, so that their
CPU is not the load generator's:

    python tools/bench_servers.py processor   # the minimal mg processor (raw ASGI, msgpack)
    python tools/bench_servers.py ceiling     # a bare quart-trio app: the HTTP ceiling

Both serve on hypercorn's trio worker on a free loopback port and print ``serving on URL`` on
stdout once they listen. The processor answers every signal and call with one small event, an
aux state and (for calls) the args as the response: the least a real processor does.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import msgpack
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

HEADERS = [(b"content-type", b"application/msgpack")]


async def processor(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    request = msgpack.unpackb(b"".join(chunks), raw=False, strict_map_key=False)
    if request["kind"] == "signal":
        args = request["signal"]["args"]
        answer: dict[str, Any] = {}
    else:
        args = request["args"]
        answer = {"response": args}
    answer["events"] = [{"data": {"args": args}, "format_version": 1}]
    answer["aux_state"] = {"data": {"seen": request["machine"]["id"]}, "format_version": 1}
    body = msgpack.packb(answer)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def ceiling_app() -> Any:
    """What every mg request at least costs: quart-trio on hypercorn, a body in, a body out."""
    from quart import Response, request
    from quart_trio import QuartTrio

    app = QuartTrio("ceiling", static_folder=None)

    @app.route("/<path:path>", methods=["GET", "POST"])
    async def echo(path: str) -> Response:
        data = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        args = msgpack.unpackb(data, raw=False).get("args") if data else None
        return Response(msgpack.packb({"response": args}), content_type="application/msgpack")

    return app


async def main(kind: str) -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 75
    app = processor if kind == "processor" else ceiling_app()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config))
        print(f"serving on {binds[0]}", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
