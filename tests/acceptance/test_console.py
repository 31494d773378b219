"""The operator console over plain HTTP (PROTOCOL section 9): every page's status codes,
errors in words, CSP, escaping, CSRF refusal, paging bounds of the search, the history and the
sink, on a real node with a real processor over HTTP. Actions: test_console_actions.py; login:
test_console_auth.py."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
import pytest
import trio

from mg.node import Node
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory
from tests.support.console import (
    SCRIPT,
    SINK,
    console_client,
    csrf_in,
    failed_machine,
    node,
    ui,
)
from tests.support.processor import Answer, FakeProcessor, Seen, echo
from tests.support.sql import sql

__all__ = ["node", "ui"]  # fixtures shared with the other console test modules


async def test_every_page_answers_200(api: Api, ui: httpx.AsyncClient) -> None:
    assert (await api.start("m1", {"n": 1})).status_code == 201
    for path in (
        "/ui/",
        "/ui/namespaces/test/machines",
        "/ui/namespaces/test/machines?status=sleeping&limit=5",
        "/ui/namespaces/test/machines?status=&limit=",
        "/ui/namespaces/test/machines/m1",
        "/ui/namespaces/test/machines/m1?after=0&limit=1&direction=forward",
        "/ui/sinks/main",
        "/ui/sinks/main?from=1&to=1",
        "/ui/login",
        "/ui/static/console.css",
        "/ui/static/console.js",
    ):
        answer = await ui.get(path)
        assert answer.status_code == 200, (path, answer.text)
    assert (await ui.get("/ui")).headers["location"] == "/ui/"
    odd = "a/b c?d#e%"
    assert (await api.start(odd, 1)).status_code == 201
    listed = await ui.get("/ui/namespaces/test/machines")
    assert 'href="/ui/namespaces/test/machines/a/b%20c%3Fd%23e%25"' in listed.text
    page = await ui.get("/ui/namespaces/test/machines/a/b%20c%3Fd%23e%25")
    assert page.status_code == 200
    assert '<span class="name" id="machine-id">a/b c?d#e%</span>' in page.text
    opened = await ui.get("/ui/namespaces/test/machines", params={"id": "m1"})
    assert opened.status_code == 303
    assert opened.headers["location"] == "/ui/namespaces/test/machines/m1"


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/ui/namespaces/nope/machines", 404, "namespace"),
        ("/ui/namespaces/test/machines/ghost", 404, "does not exist"),
        ("/ui/sinks/nope", 404, "not configured"),
        ("/ui/no/such/page", 404, "no such page"),
        ("/ui/static/secret.py", 404, "no static file"),
        ("/ui/namespaces/test/machines?status=bogus", 400, "status must be one of"),
        ("/ui/namespaces/test/machines?limit=0", 400, "limit must be between"),
        ("/ui/namespaces/test/machines?limit=201", 400, "limit must be between"),
        ("/ui/namespaces/test/machines?cursor=%21%21", 400, "cursor"),
        ("/ui/namespaces/test/machines/m1?limit=201", 400, "limit must be between"),
        ("/ui/namespaces/test/machines/m1?direction=sideways", 400, "direction"),
        ("/ui/sinks/main?from=0", 400, "from must be a position"),
        ("/ui/sinks/main?from=5&to=2", 400, "to must not be below from"),
        ("/ui/sinks/main?from=1&to=20001", 400, "at most"),
    ],
)
async def test_errors_are_pages_in_words_with_the_api_status(
    api: Api, ui: httpx.AsyncClient, path: str, status: int, words: str
) -> None:
    assert (await api.start("m1", 1)).status_code == 201
    answer = await ui.get(path)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert words in answer.text


async def test_wrong_methods_are_405(api: Api, ui: httpx.AsyncClient) -> None:
    answer = await ui.post("/ui/logout")  # no CSRF token: refused before anything else
    assert answer.status_code == 403
    await api.start("m1", 1)
    page = await ui.get("/ui/namespaces/test/machines/m1")
    wrong = await ui.request("DELETE", "/ui/", data={"csrf": csrf_in(page)})
    assert wrong.status_code == 405
    assert "GET" in wrong.headers["allow"]


async def test_pages_carry_a_csp_and_no_inline_script_or_style(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    await failed_machine(api, processor, "m1")
    for path in (
        "/ui/",
        "/ui/namespaces/test/machines",
        "/ui/namespaces/test/machines/m1",
        "/ui/sinks/main",
        "/ui/login",
        "/ui/namespaces/test/machines/none",
    ):
        answer = await ui.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        for script in re.findall(r"<script[^>]*>", answer.text):
            assert 'src="/ui/static/' in script
        assert "<style" not in answer.text
        assert not re.search(r"\son[a-z]+=", answer.text)
        assert " style=" not in answer.text


async def test_values_and_ids_with_markup_are_escaped_everywhere(
    api: Api, node: Node, ui: httpx.AsyncClient
) -> None:
    evil_id = '<img src=x onerror="alert(1)">'
    assert (await api.start(evil_id, {"note": SCRIPT, "raw": b"\x00<b>"})).status_code == 201
    path = "/ui/namespaces/test/machines/" + quote(evil_id, safe="")
    pages = [
        await ui.get(path),
        await ui.get("/ui/namespaces/test/machines"),
    ]
    feed = await ui.get("/ui/sinks/main/events", params={"after": 0})
    assert feed.status_code == 200
    assert feed.json()["events"][0]["machine_id"] == evil_id  # JSON, set as text by the script
    pages.append(await ui.get("/ui/sinks/main"))
    for page in pages:
        assert page.status_code == 200, page.text
        assert SCRIPT not in page.text
        assert evil_id not in page.text
        assert "&lt;img src=x onerror=" in page.text
    machine_page, _, sink_page = pages
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in machine_page.text
    assert "&#34;$base64&#34;: &#34;ADxiPg==&#34;" in machine_page.text  # binary as {"$base64"}
    assert "&lt;script&gt;" in sink_page.text


async def test_a_post_without_the_csrf_token_is_refused(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    await failed_machine(api, processor, "m1")
    await ui.get("/ui/namespaces/test/machines/m1")  # the browser has its CSRF cookie
    fields = {"id": "m1", "confirmed": "yes"}
    for data in (fields, {**fields, "csrf": "not-the-cookie-s-token"}):
        answer = await ui.post("/ui/namespaces/test/actions/simple-repair", data=data)
        assert answer.status_code == 403
        assert "CSRF token" in answer.text
    # A token without its cookie (another site's form) is refused too.
    async with console_client(str(ui.base_url)) as stranger:
        page = await ui.get("/ui/namespaces/test/machines/m1")
        answer = await stranger.post(
            "/ui/namespaces/test/actions/simple-repair", data={**fields, "csrf": csrf_in(page)}
        )
        assert answer.status_code == 403
    assert body(await api.get("m1"))["status"] == "failed"


async def test_a_form_over_the_body_limit_is_413_in_words(nodes: NodeFactory) -> None:
    small: Node = await nodes(server={"max_body_bytes": 2048})
    async with console_client(small.url) as ui:
        answer = await ui.post(
            "/ui/namespaces/test/actions/notify", data={"id": "m1", "args": "1" * 4096}
        )
        assert answer.status_code == 413
        assert "larger than" in answer.text


async def test_csrf_cookie_is_httponly_and_strict(ui: httpx.AsyncClient) -> None:
    answer = await ui.get("/ui/")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("mg_console_csrf=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/ui" in cookie
    again = await ui.get("/ui/")
    assert "set-cookie" not in again.headers  # one token per browser, kept


async def test_search_pages_with_the_service_cursor(api: Api, ui: httpx.AsyncClient) -> None:
    for n in range(7):
        await api.start(f"m{n}", n)
    seen: list[str] = []
    path: str | None = "/ui/namespaces/test/machines?limit=3"
    pages = 0
    while path is not None:
        page = await ui.get(path)
        shown = re.findall(r'class="machine-link" href="[^"]+">([^<]+)</a>', page.text)
        assert len(shown) <= 3
        seen += shown
        pages += 1
        found = re.search(r'id="next-page" href="([^"]+)"', page.text)
        path = found.group(1).replace("&amp;", "&") if found else None
    assert seen == [f"m{n}" for n in range(7)]
    assert pages == 3


async def test_history_pages_both_ways_read_only_what_they_show(
    api: Api, ui: httpx.AsyncClient
) -> None:
    assert (await api.start("long", 0)).status_code == 201
    for n in range(1, 45):
        assert (await api.call("long", n)).status_code == 200

    def ids(page: httpx.Response) -> list[int]:
        return [int(x) for x in re.findall(r'<td class="num event-id">(\d+)</td>', page.text)]

    def link(page: httpx.Response, name: str) -> str | None:
        found = re.search(rf'href="\?([^"]+)" id="history-{name}"', page.text)
        return None if found is None else found.group(1).replace("&amp;", "&")

    path = "/ui/namespaces/test/machines/long"
    newest = await ui.get(path)
    assert ids(newest) == list(range(45, 25, -1))
    assert link(newest, "newer") is None
    older = await ui.get(f"{path}?{link(newest, 'older')}")
    assert ids(older) == list(range(25, 5, -1))
    oldest_tail = await ui.get(f"{path}?{link(older, 'older')}")
    assert ids(oldest_tail) == [5, 4, 3, 2, 1]
    assert link(oldest_tail, "older") is None
    back = await ui.get(f"{path}?{link(oldest_tail, 'newer')}")
    assert ids(back) == list(range(25, 5, -1))
    forward = await ui.get(f"{path}?{link(newest, 'oldest')}")
    assert ids(forward) == list(range(1, 21))
    assert link(forward, "older") is None
    page2 = await ui.get(f"{path}?{link(forward, 'newer')}")
    assert ids(page2) == list(range(21, 41))
    previous = await ui.get(f"{path}?{link(page2, 'older')}")
    assert ids(previous) == list(range(1, 21))
    small = await ui.get(f"{path}?limit=7&direction=forward&after=40")
    assert ids(small) == [41, 42, 43, 44, 45]


async def test_sink_page_checks_a_span_and_feeds_new_events(
    api: Api, ui: httpx.AsyncClient
) -> None:
    for n in range(4):
        await api.start(f"m{n}", n)
    feed = await ui.get("/ui/sinks/main/events", params={"after": 0})
    while len(feed.json()["events"]) < 4:
        feed = await ui.get("/ui/sinks/main/events", params={"after": 0})
    assert [e["position"] for e in feed.json()["events"]] == [1, 2, 3, 4]
    check = await ui.get("/ui/sinks/main", params={"from": "2", "to": "3"})
    assert "chain intact, 2 events, positions 2..3" in check.text
    whole = await ui.get("/ui/sinks/main", params={"from": "1"})
    assert "chain intact, 4 events, positions 1..4" in whole.text
    beyond = await ui.get("/ui/sinks/main", params={"from": "9"})
    assert beyond.status_code == 400
    assert "is not stored" in beyond.text

    async with trio.open_nursery() as nursery:
        result: dict[str, Any] = {}

        async def wait_for_next() -> None:
            result["feed"] = await ui.get("/ui/sinks/main/events", params={"after": 4})

        nursery.start_soon(wait_for_next)
        await trio.sleep(0.3)
        await api.start("late", SCRIPT)
    events = result["feed"].json()["events"]
    assert [e["machine_id"] for e in events] == ["late"]
    assert SCRIPT in events[0]["data"]  # raw text in JSON; the script sets it as text


async def test_overview_counts_machines_sinks_and_queues(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    await failed_machine(api, processor, "bad")
    await api.start("good", 1)
    await api.post(api.machine_path("bad") + "/notify", {"args": 1})
    page = await ui.get("/ui/")
    namespaces = page.text.split('id="namespaces"')[1].split("</table>")[0]
    assert 'status=sleeping">1</a>' in namespaces
    assert 'status=failed">1</a>' in namespaces
    assert '<td class="num">2</td>' in namespaces  # all
    assert '<td class="num">1</td>' in namespaces  # one notification queued
    sinks = page.text.split('id="sinks"')[1]
    assert 'href="/ui/sinks/main"' in sinks


async def test_openapi_leaves_the_console_out_and_metrics_count_it(
    ui: httpx.AsyncClient,
) -> None:
    document = (await ui.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/ui")]
    await ui.get("/ui/")
    await ui.get("/ui/namespaces/nope/machines")
    metrics = (await ui.get("/metrics")).text
    assert re.search(r'mg_http_requests_total\{[^}]*route="console_overview"[^}]*\} 1', metrics)
    assert (
        re.search(
            r'route="console_search",status="404"|status="404"[^}]*route="console_search"', metrics
        )
        or 'route="console_search"' in metrics
    )


async def test_the_live_feed_is_bounded_like_the_api_s_long_polls(nodes: NodeFactory) -> None:
    bounded: Node = await nodes(limits={"max_long_polls": 1}, **SINK)
    async with console_client(bounded.url) as ui, trio.open_nursery() as nursery:
        nursery.start_soon(ui.get, "/ui/sinks/main/events")  # waits: nothing in the sink
        await trio.sleep(0.3)
        second = await ui.get("/ui/sinks/main/events")
        assert second.status_code == 429
        assert "sink long-polls already" in second.text
        assert second.headers["retry-after"]
        assert (await ui.get("/ui/sinks/main")).status_code == 200  # pages: another budget
        nursery.cancel_scope.cancel()


@pytest.mark.slow
async def test_pages_show_one_page_of_a_long_history_and_a_big_namespace(
    api: Api, ui: httpx.AsyncClient, database_url: str
) -> None:
    """100,000 events and 100,000 machines (written by SQL, as steps would have): every page
    still shows one page, from either end and from the middle."""
    assert (await api.start("long", 0)).status_code == 201
    async with sql(database_url) as db:
        await db.execute(
            "INSERT INTO mg_events (ns, machine_id, event_id, created_at, format_version, data)"
            " SELECT 'test', 'long', n, now(), NULL, '\\x01'::bytea"
            " FROM generate_series(2, 100000) AS n"
        )
        # A new version, so no node's cache takes the old row for the current one.
        await db.execute(
            "UPDATE mg_machines SET last_event_id = 100000, version = version + 1"
            " WHERE ns = 'test' AND id = 'long'"
        )
        await db.execute(
            "INSERT INTO mg_machines (ns, id, incarnation, version, status, last_event_id,"
            " created_at, updated_at)"
            " SELECT 'test', 'bulk-' || lpad(n::text, 6, '0'), 0, 1, 'sleeping', 0, now(), now()"
            " FROM generate_series(1, 100000) AS n"
        )
        await db.execute("ANALYZE mg_machines")

    def ids(page: httpx.Response) -> list[int]:
        return [int(x) for x in re.findall(r'<td class="num event-id">(\d+)</td>', page.text)]

    path = "/ui/namespaces/test/machines/long"
    assert ids(await ui.get(path)) == list(range(100000, 99980, -1))
    assert ids(await ui.get(path + "?direction=forward")) == list(range(1, 21))
    middle = await ui.get(path + "?after=50000&limit=3&direction=backward")
    assert ids(middle) == [49999, 49998, 49997]
    assert "events 1..100000 held (100000)" in middle.text
    cursor = base64.urlsafe_b64encode(b"bulk-050000").decode()
    deep = await ui.get("/ui/namespaces/test/machines", params={"cursor": cursor, "limit": 5})
    shown = re.findall(r'class="machine-link" href="[^"]+">([^<]+)</a>', deep.text)
    assert shown == [f"bulk-{n:06d}" for n in range(50001, 50006)]
    overview = await ui.get("/ui/")
    assert '<td class="num">100001</td>' in overview.text


async def test_a_machine_is_opened_by_its_tag(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(body={"response": "tagged", "action": {"tag": "invoice/7"}})
        return await echo(seen)

    processor.behaviour = behaviour
    await api.start("m1", 1)
    assert (await api.call("m1", "tag it")).status_code == 200
    found = await ui.get("/ui/namespaces/test/machines", params={"tag": "invoice/7"})
    assert found.status_code == 303
    assert found.headers["location"] == "/ui/namespaces/test/machines/m1"
    page = await ui.get(found.headers["location"])
    assert '<span class="tag">invoice/7</span>' in page.text
    missing = await ui.get("/ui/namespaces/test/machines", params={"tag": "nobody"})
    assert missing.status_code == 404
    assert "no machine holds tag" in missing.text


async def test_the_sink_page_pages_back_without_the_live_feed(
    api: Api, ui: httpx.AsyncClient
) -> None:
    for n in range(55):
        assert (await api.start(f"m{n:02d}", n)).status_code == 201
    feed = await ui.get("/ui/sinks/main/events", params={"after": 54})
    assert [e["position"] for e in feed.json()["events"]] == [55]

    def positions(page: httpx.Response) -> list[int]:
        return [
            int(p) for p in re.findall(r'<tr class="sink-event"><td class="num">(\d+)', page.text)
        ]

    newest = await ui.get("/ui/sinks/main")
    assert positions(newest) == list(range(55, 5, -1))
    assert "data-feed=" in newest.text
    older = re.search(r'href="([^"]+)" id="sink-older"', newest.text)
    assert older is not None
    back = await ui.get(older.group(1))
    assert positions(back) == [5, 4, 3, 2, 1]
    assert "data-feed=" not in back.text
    assert 'id="sink-older"' not in back.text
    assert 'id="sink-newest"' in back.text
    assert (await ui.get("/ui/sinks/main?before=x")).status_code == 400


async def test_a_value_stored_before_the_value_rule_is_marked_not_a_failed_page(
    api: Api, ui: httpx.AsyncClient, database_url: str
) -> None:
    assert (await api.start("old", 1)).status_code == 201
    nan = msgpack.packb({"amount": float("nan")})
    async with sql(database_url) as db:
        await db.execute(
            "INSERT INTO mg_events (ns, machine_id, event_id, created_at, format_version, data)"
            " VALUES ('test', 'old', 2, now(), NULL, $1)",
            nan,
        )
        await db.execute(
            "UPDATE mg_machines SET last_event_id = 2, version = version + 1"
            " WHERE ns = 'test' AND id = 'old'"
        )
    page = await ui.get("/ui/namespaces/test/machines/old")
    assert page.status_code == 200
    assert "&#34;$unrepresentable&#34;: &#34;float nan&#34;" in page.text
