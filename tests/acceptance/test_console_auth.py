"""The console with auth on: the API's tokens through a login form, the cookie's flags (Secure
over TLS), what a token may see, logout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from mg.node import running_node
from mg.settings import from_mapping
from tests.acceptance.test_tls import client_context, settings_with
from tests.support.console import console_client, csrf_in
from tests.support.processor import FakeProcessor

TOKEN = "console-test-token-8c1f2e"
OTHER = "console-other-token-77aa01"


@pytest.fixture
async def guarded(database_url: str, processor: FakeProcessor) -> AsyncIterator[str]:
    namespace: dict[str, Any] = {"processor": {"url": processor.url}}
    config = {
        "namespaces": {"test": namespace, "other": namespace},
        "sinks": {"main": {}},
        "auth": {
            "enabled": True,
            "tokens": {
                "ops": {"token": TOKEN, "namespaces": ["test"], "sinks": ["main"]},
                "others": {"token": OTHER, "namespaces": ["other"]},
            },
        },
    }
    namespace["sinks"] = ["main"]
    async with running_node(from_mapping(config, environ={}), database_url, port=0) as found:
        yield found.url


async def test_with_auth_on_the_console_asks_for_a_token_once(guarded: str) -> None:
    async with console_client(guarded) as ui:
        first = await ui.get("/ui/namespaces/test/machines?status=failed")
        assert first.status_code == 303
        assert first.headers["location"] == (
            "/ui/login?next=/ui/namespaces/test/machines%3Fstatus%3Dfailed"
        )
        login = await ui.get(first.headers["location"])
        assert login.status_code == 200
        csrf = csrf_in(login)
        wrong = await ui.post("/ui/login", data={"csrf": csrf, "token": "x" * 20, "next": "/ui/"})
        assert wrong.status_code == 401
        assert "not one this service knows" in wrong.text
        no_csrf = await ui.post("/ui/login", data={"token": TOKEN})
        assert no_csrf.status_code == 403
        right = await ui.post(
            "/ui/login",
            data={"csrf": csrf, "token": TOKEN, "next": "/ui/namespaces/test/machines"},
        )
        assert right.status_code == 303
        assert right.headers["location"] == "/ui/namespaces/test/machines"
        cookie = right.headers["set-cookie"]
        assert cookie.startswith("mg_console_token=")
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Path=/ui" in cookie
        assert (await ui.get("/ui/namespaces/test/machines")).status_code == 200
        assert (await ui.get("/ui/sinks/main")).status_code == 200
        overview = await ui.get("/ui/")
        assert 'href="/ui/namespaces/test/machines"' in overview.text
        assert "/ui/namespaces/other/" not in overview.text
        other = await ui.get("/ui/namespaces/other/machines")
        assert other.status_code == 403
        assert "may not use namespace" in other.text
        page = await ui.get("/ui/")
        out = await ui.post("/ui/logout", data={"csrf": csrf_in(page)})
        assert out.status_code == 303
        assert out.headers["set-cookie"].startswith("mg_console_token=;")
        assert (await ui.get("/ui/")).status_code == 303
    async with console_client(guarded) as ui:
        page = await ui.get("/ui/login")
        evil = await ui.post(
            "/ui/login", data={"csrf": csrf_in(page), "token": OTHER, "next": "//evil.example/"}
        )
        assert evil.headers["location"] == "/ui/"
        assert (await ui.get("/ui/sinks/main")).status_code == 403


async def test_the_api_still_needs_its_header_with_a_console_cookie(guarded: str) -> None:
    async with console_client(guarded) as ui:
        page = await ui.get("/ui/login")
        await ui.post("/ui/login", data={"csrf": csrf_in(page), "token": TOKEN})
        assert (await ui.get("/v1/namespaces/test/machines")).status_code == 401


async def test_over_tls_the_cookies_are_secure(
    tmp_path: Path, database_url: str, processor: FakeProcessor
) -> None:
    authority = trustme.CA()
    base = settings_with(tmp_path, authority, processor)
    settings = from_mapping(
        {
            "server": {"certfile": base.server.certfile, "keyfile": base.server.keyfile},
            "namespaces": {"test": {"processor": {"url": processor.url}}},
            "auth": {"enabled": True, "tokens": {"ops": {"token": TOKEN, "namespaces": ["*"]}}},
        },
        environ={},
    )
    async with (
        running_node(settings, database_url, port=0) as found,
        httpx.AsyncClient(
            base_url=found.url.replace("http://", "https://"),
            verify=client_context(authority),
            trust_env=False,
        ) as ui,
    ):
        page = await ui.get("/ui/login")
        assert "Secure" in page.headers["set-cookie"]
        login = await ui.post("/ui/login", data={"csrf": csrf_in(page), "token": TOKEN})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("mg_console_token=")
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert (await ui.get("/ui/")).status_code == 200
