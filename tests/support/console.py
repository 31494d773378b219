"""Helpers for the console's tests: a node with a sink, a browser-like HTTP client (cookies
kept, no redirects followed), the CSRF token of a page's forms, and failed machines."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from mg.node import Node
from tests.support.api import Api
from tests.support.cluster import NodeFactory
from tests.support.processor import Answer, FakeProcessor, Seen, echo

SINK = {"sinks": ["main"], "sinks_config": {"main": {}}}
SCRIPT = "<script>alert('pwned')</script>"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def node(nodes: NodeFactory) -> Node:
    """A node whose namespace ``test`` feeds sink ``main``."""
    found: Node = await nodes(**SINK)
    return found


@asynccontextmanager
async def console_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as client:
        yield client


@pytest.fixture
async def ui(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    async with console_client(node.url) as client:
        yield client


def csrf_in(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


async def post_form(
    client: httpx.AsyncClient, page_path: str, action: str, fields: dict[str, Any]
) -> httpx.Response:
    """Load ``page_path`` (for its CSRF token and cookie) and post ``fields`` to ``action``."""
    page = await client.get(page_path)
    assert page.status_code == 200, page.text
    return await client.post(action, data={"csrf": csrf_in(page), **fields})


def fail_calls(processor: FakeProcessor) -> None:
    """Calls fail the machine (the processor answers 500); repairs succeed."""

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(status=500, raw=b"card declined by the bank", media="text/plain")
        if seen.kind == "repair":
            return Answer(body={"response": "fixed", "events": [{"data": "repaired"}]})
        return await echo(seen)

    processor.behaviour = behaviour


async def failed_machine(api: Api, processor: FakeProcessor, machine_id: str) -> None:
    fail_calls(processor)
    assert (await api.start(machine_id, {"order": machine_id})).status_code == 201
    assert (await api.call(machine_id, "pay")).status_code == 409
