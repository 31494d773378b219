"""History ranges through get, and search with cursor pagination."""

from __future__ import annotations

import pytest

from tests.support.api import Api, body
from tests.support.processor import Answer, FakeProcessor, Seen


async def make_machine(api: Api, processor: FakeProcessor, events: int) -> None:
    async def behaviour(seen: Seen) -> Answer:
        return Answer(body={"events": [{"data": n} for n in range(1, events + 1)]})

    processor.behaviour = behaviour
    await api.start("m1")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"limit": 2}, [1, 2]),
        ({"limit": 2, "direction": "backward"}, [8, 7]),
        ({"after": 5, "limit": 5}, [6, 7, 8]),
        ({"after": 6}, [7, 8]),
        ({}, [1, 2, 3, 4, 5, 6, 7, 8]),
        ({"limit": 0}, []),
        ({"after": 100}, []),
        ({"after": 100, "limit": 2, "direction": "backward"}, [8, 7]),
    ],
)
async def test_get_ranges_on_eight_events(
    api: Api, processor: FakeProcessor, query: dict[str, object], expected: list[int]
) -> None:
    await make_machine(api, processor, 8)
    machine = body(await api.get("m1", **query))
    assert [e["id"] for e in machine["history"]] == expected
    assert [e["data"] for e in machine["history"]] == expected
    assert machine["history_range"]["direction"] == query.get("direction", "forward")


async def test_backward_after_on_a_hundred_events(api: Api, processor: FakeProcessor) -> None:
    await make_machine(api, processor, 100)
    machine = body(await api.get("m1", after=5, limit=3, direction="backward"))
    assert [e["id"] for e in machine["history"]] == [4, 3, 2]


async def test_search_finds_failed_machines_across_pages(
    api: Api, processor: FakeProcessor
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(status=500, raw=b"no", media="text/plain")
        return Answer(body={})

    processor.behaviour = behaviour
    failed = set()
    for n in range(25):
        machine_id = f"m{n:02d}"
        await api.start(machine_id)
        if n % 3 == 0:
            await api.call(machine_id)
            failed.add(machine_id)
    found: list[str] = []
    cursor = None
    pages = 0
    while True:
        query: dict[str, object] = {"status": "failed", "limit": 3}
        if cursor:
            query["cursor"] = cursor
        page = body(await api.search(**query))
        pages += 1
        assert len(page["machines"]) <= 3
        for row in page["machines"]:
            assert row["status"] == "failed"
            assert row["updated_at"].endswith("Z")
            found.append(row["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(found) == failed
    assert found == sorted(found)
    assert pages == 3
    everything = body(await api.search(limit=1000))
    assert len(everything["machines"]) == 25
    assert everything["next_cursor"] is None
    sleeping = body(await api.search(status="sleeping"))
    assert {r["id"] for r in sleeping["machines"]} == {f"m{n:02d}" for n in range(25)} - failed


async def test_search_refuses_bad_parameters(api: Api) -> None:
    for query in ({"status": "dead"}, {"limit": "0"}, {"limit": "1001"}, {"cursor": "%%%"}):
        answer = await api.search(**query)
        assert answer.status_code == 400, query
        assert body(answer)["error"] == "invalid_request"
