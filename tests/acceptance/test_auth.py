"""Bearer-token authentication of a running node, and that tokens never reach the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mg.node import running_node
from mg.settings import from_mapping
from tests.support.api import body
from tests.support.logs import captured_logs
from tests.support.processor import FakeProcessor

TEST_TOKEN = "test-ns-token-5f1d0c9a7e"
OTHER_TOKEN = "other-ns-token-91ab77c3d2"


@pytest.fixture
async def client(database_url: str, processor: FakeProcessor) -> AsyncIterator[httpx.AsyncClient]:
    namespace: dict[str, Any] = {"processor": {"url": processor.url}}
    config = {
        "namespaces": {"test": namespace, "other": namespace},
        "auth": {
            "enabled": True,
            "tokens": {
                "test-client": {"token": TEST_TOKEN, "namespaces": ["test"]},
                "other-client": {"token_env": "MG_TEST_OTHER_TOKEN", "namespaces": ["other"]},
            },
        },
    }
    settings = from_mapping(config, environ={"MG_TEST_OTHER_TOKEN": OTHER_TOKEN})
    async with (
        running_node(settings, database_url, port=0) as node,
        httpx.AsyncClient(base_url=node.url, trust_env=False) as http,
    ):
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


START = "/v1/namespaces/test/machines/m1/start"


async def test_no_token_is_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    answer = await client.post(START, json={"args": 1})
    assert answer.status_code == 401
    assert body(answer)["error"] == "unauthorized"
    assert answer.headers["www-authenticate"] == 'Bearer realm="mg"'
    wrong = await client.post(START, json={"args": 1}, headers=bearer("x" * 24))
    assert wrong.status_code == 401


async def test_a_token_on_another_namespace_is_403(client: httpx.AsyncClient) -> None:
    answer = await client.post(START, json={"args": 1}, headers=bearer(OTHER_TOKEN))
    assert answer.status_code == 403
    assert body(answer)["error"] == "forbidden"
    unknown = await client.get("/v1/namespaces/nope/machines", headers=bearer(TEST_TOKEN))
    assert unknown.status_code == 403


async def test_the_right_token_gets_in(client: httpx.AsyncClient, processor: FakeProcessor) -> None:
    started = await client.post(START, json={"args": 1}, headers=bearer(TEST_TOKEN))
    assert started.status_code == 201
    got = await client.get("/v1/namespaces/test/machines/m1", headers=bearer(TEST_TOKEN))
    assert got.status_code == 200
    assert "authorization" not in processor.seen[0].headers
    other = await client.post(
        "/v1/namespaces/other/machines/m1/start", json={}, headers=bearer(OTHER_TOKEN)
    )
    assert other.status_code == 201


async def test_operator_endpoints_need_no_token(client: httpx.AsyncClient) -> None:
    for path in ("/metrics", "/health/live", "/health/ready", "/openapi.json"):
        assert (await client.get(path)).status_code == 200, path


async def test_tokens_never_appear_in_the_log(
    client: httpx.AsyncClient, processor: FakeProcessor
) -> None:
    with captured_logs(logging.DEBUG) as lines:
        await client.post(START, json={"args": 1}, headers=bearer(TEST_TOKEN))
        await client.post(START, json={"args": 2}, headers=bearer(TEST_TOKEN))  # 409
        await client.post(START, json={"args": 1}, headers=bearer(OTHER_TOKEN))  # 403
        await client.post(START, json={"args": 1}, headers=bearer(TEST_TOKEN[:-1]))  # 401
        await client.post(
            "/v1/namespaces/test/machines/m1/call",
            json={"args": 1},
            headers={**bearer(TEST_TOKEN), "x-request-id": "find-me"},
        )
    text = lines.raw()  # type: ignore[attr-defined]
    assert "find-me" in text, "the capture saw the requests"
    assert len(lines()) > 5
    for secret in (TEST_TOKEN, OTHER_TOKEN, TEST_TOKEN[:-1]):
        assert secret not in text
