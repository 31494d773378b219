"""A thin test client for mg's HTTP API (the real ``mg.client`` is tested on its own)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import msgpack

from mg.core import values


def path_id(machine_id: str) -> str:
    return quote(machine_id, safe="")


class Api:
    def __init__(self, base_url: str, ns: str = "test", *, msgpack_bodies: bool = False) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False)
        self.ns = ns
        self.msgpack = msgpack_bodies

    async def aclose(self) -> None:
        await self.http.aclose()

    def machine_path(self, machine_id: str, *, ns: str | None = None) -> str:
        return f"/v1/namespaces/{ns or self.ns}/machines/{path_id(machine_id)}"

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        if self.msgpack:
            return await self.http.post(
                path,
                content=msgpack.packb(body),
                headers={"content-type": "application/msgpack", **(headers or {})},
            )
        return await self.http.post(path, json=values.to_json(body), headers=headers)

    async def start(self, machine_id: str, args: Any = None, **kw: Any) -> httpx.Response:
        return await self.post(self.machine_path(machine_id) + "/start", {"args": args}, **kw)

    async def call(
        self, machine_id: str, args: Any = None, range: dict[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"args": args}
        if range is not None:
            body["range"] = range
        return await self.post(self.machine_path(machine_id) + "/call", body, **kw)

    async def repair(self, machine_id: str, args: Any = None, **kw: Any) -> httpx.Response:
        return await self.post(self.machine_path(machine_id) + "/repair", {"args": args}, **kw)

    async def simple_repair(self, machine_id: str) -> httpx.Response:
        return await self.post(self.machine_path(machine_id) + "/simple-repair", {})

    async def get(self, machine_id: str, **query: Any) -> httpx.Response:
        return await self.http.get(self.machine_path(machine_id), params=query)

    async def remove(self, machine_id: str) -> httpx.Response:
        return await self.http.delete(self.machine_path(machine_id))

    async def search(self, **query: Any) -> httpx.Response:
        return await self.http.get(f"/v1/namespaces/{self.ns}/machines", params=query)


def body(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").startswith("application/msgpack"):
        return msgpack.unpackb(response.content, raw=False)
    return values.from_json(response.json())
