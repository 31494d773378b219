"""Helpers for the console's tests: a browser-like HTTP client (cookies kept, no redirects
followed) and the CSRF token of a page's forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def console_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as client:
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
