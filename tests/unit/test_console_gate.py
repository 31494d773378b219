"""The console's gate, in process (no node, no database): a node still starting answers every
console page 503 in words, and the gate's order (CSRF, then login, then readiness)."""

from __future__ import annotations

from typing import Any, cast

import trio
from quart_trio import QuartTrio

from mg.api.auth import Authenticator
from mg.console.app import add_console
from mg.console.web import Console
from mg.settings import Auth, Token

NOTHING = cast(Any, None)  # never reached: the gate answers before any handler runs


def app_with(auth: Auth) -> QuartTrio:
    app = QuartTrio("mg_console_gate", static_folder=None)
    console = Console(
        service=NOTHING,
        sinks=NOTHING,
        chain=NOTHING,
        reads=NOTHING,
        authenticator=Authenticator(auth),
        namespaces=("test",),
        sink_names=(),
        ready=trio.Event(),
    )
    add_console(app, console)
    return app


async def test_a_starting_node_answers_console_pages_503_in_words() -> None:
    client = app_with(Auth()).test_client()
    for path in ("/ui/", "/ui/namespaces/test/machines", "/ui/sinks/main"):
        answer = await client.get(path)
        assert answer.status_code == 503
        text = await answer.get_data(as_text=True)
        assert "the node is starting" in text
        assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert (await client.get("/ui/static/console.css")).status_code == 503


async def test_without_a_token_the_gate_sends_to_the_login_before_anything_else() -> None:
    token = Token(name="ops", digest=b"\x00" * 32, namespaces=("*",), sinks=("*",))
    client = app_with(Auth(enabled=True, tokens=(token,))).test_client()
    answer = await client.get("/ui/namespaces/test/machines")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=/ui/namespaces/test/machines"
    assert answer.headers["set-cookie"].startswith("mg_console_csrf=")
    login = await client.get("/ui/login")
    assert login.status_code == 503  # still starting: even the login waits
    refused = await client.post("/ui/namespaces/test/actions/remove", form={"id": "m1"})
    assert refused.status_code == 403
