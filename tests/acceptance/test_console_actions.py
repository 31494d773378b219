"""The console's actions over plain HTTP: repair, simple repair, notify, remove and the bulk
simple repair, confirmed then done through the service, with the API's errors in words."""

from __future__ import annotations

import re
from typing import Any

import httpx
import trio

from mg.node import Node
from tests.support.api import Api, body
from tests.support.cluster import NodeFactory, api_for
from tests.support.console import (
    SCRIPT,
    console_client,
    csrf_in,
    failed_machine,
    node,
    post_form,
    ui,
)
from tests.support.processor import Answer, FakeProcessor, Seen, echo

__all__ = ["node", "ui"]  # fixtures shared with the other console test modules


async def test_a_failed_machine_is_found_read_and_repaired(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    await failed_machine(api, processor, "order-B")
    await api.start("order-A", 1)
    overview = await ui.get("/ui/")
    assert 'href="/ui/namespaces/test/machines?status=failed">1</a>' in overview.text
    failed = await ui.get("/ui/namespaces/test/machines", params={"status": "failed"})
    assert "order-B" in failed.text
    assert "order-A" not in failed.text
    assert "card declined by the bank" in failed.text
    page = await ui.get("/ui/namespaces/test/machines/order-B")
    assert "card declined by the bank" in page.text
    assert "&#34;order&#34;: &#34;order-B&#34;" in page.text  # the start event's data
    action = "/ui/namespaces/test/actions/repair"
    fields = {"id": "order-B", "args": '{"retry": true}'}
    confirm = await ui.post(action, data={**fields, "csrf": csrf_in(page)})
    assert confirm.status_code == 200
    assert 'Repair machine “<span class="name">order-B</span>”' in confirm.text
    assert body(await api.get("order-B"))["status"] == "failed"  # not before confirming
    done = await ui.post(action, data={**fields, "confirmed": "yes", "csrf": csrf_in(page)})
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/namespaces/test/machines/order-B?done=repair"
    assert processor.of_kind("repair")[-1].body["args"] == {"retry": True}
    after = await ui.get(done.headers["location"])
    assert "Repaired" in after.text
    assert body(await api.get("order-B"))["status"] == "sleeping"


async def test_repair_args_are_checked_and_api_errors_are_shown_in_words(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    await failed_machine(api, processor, "m1")
    assert (await api.start("fine", 1)).status_code == 201
    action = "/ui/namespaces/test/actions/repair"
    page = "/ui/namespaces/test/machines/m1"
    bad = await post_form(ui, page, action, {"id": "m1", "args": "{not json", "confirmed": "yes"})
    assert bad.status_code == 400
    assert "args are not valid JSON" in bad.text
    nan = await post_form(ui, page, action, {"id": "m1", "args": "NaN", "confirmed": "yes"})
    assert nan.status_code == 400
    working = await post_form(ui, page, action, {"id": "fine", "args": "1", "confirmed": "yes"})
    assert working.status_code == 409
    assert "machine already working" in working.text
    assert "is not failed" in working.text

    async def refuse(seen: Seen) -> Answer:
        return Answer(422, {"error": "repair_failed", "reason": {"why": SCRIPT}})

    processor.behaviour = refuse
    refused = await post_form(ui, page, action, {"id": "m1", "args": "1", "confirmed": "yes"})
    assert refused.status_code == 422
    assert "repair failed" in refused.text
    assert SCRIPT not in refused.text
    assert body(await api.get("m1"))["status"] == "failed"


async def test_simple_repair_notify_and_remove_are_confirmed_then_done(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    await failed_machine(api, processor, "m1")
    page = "/ui/namespaces/test/machines/m1"
    base = "/ui/namespaces/test/actions/"
    confirm = await post_form(ui, page, base + "simple-repair", {"id": "m1"})
    assert "Simple repair machine" in confirm.text
    done = await post_form(ui, page, base + "simple-repair", {"id": "m1", "confirmed": "yes"})
    assert done.status_code == 303
    assert body(await api.get("m1"))["status"] == "sleeping"

    processor.behaviour = echo
    notify = await post_form(
        ui, page, base + "notify", {"id": "m1", "args": '{"ping": 1}', "confirmed": "yes"}
    )
    assert notify.status_code == 303
    with trio.fail_after(10):
        while not processor.of_kind("notification", "m1"):
            await trio.sleep(0.05)

    confirm = await post_form(ui, page, base + "remove", {"id": "m1"})
    assert confirm.status_code == 200
    assert 'Remove machine “<span class="name">m1</span>”' in confirm.text
    assert (await api.get("m1")).status_code == 200
    removed = await post_form(ui, page, base + "remove", {"id": "m1", "confirmed": "yes"})
    assert removed.status_code == 303
    assert removed.headers["location"] == "/ui/namespaces/test/machines?done=remove&id=m1"
    assert (await api.get("m1")).status_code == 404
    gone = await ui.post(
        base + "remove", data={"id": "m1", "confirmed": "yes", "csrf": csrf_in(confirm)}
    )
    assert gone.status_code == 404
    assert "does not exist" in gone.text


async def test_queued_notifications_are_shown(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    await failed_machine(api, processor, "m1")
    answer = await api.post(api.machine_path("m1") + "/notify", {"args": {"queued": SCRIPT}})
    assert answer.status_code == 202
    page = await ui.get("/ui/namespaces/test/machines/m1")
    assert 'id="notifications"' in page.text
    assert "&#34;queued&#34;" in page.text
    assert SCRIPT not in page.text


async def test_bulk_simple_repair_goes_page_by_page_with_a_result_per_machine(
    api: Api, processor: FakeProcessor, ui: httpx.AsyncClient
) -> None:
    for n in range(5):
        await failed_machine(api, processor, f"f{n}")
    await api.start("ok", 1)
    search = "/ui/namespaces/test/machines?status=failed"
    action = "/ui/namespaces/test/bulk-simple-repair"
    confirm = await post_form(ui, search, action, {"limit": "2"})
    assert confirm.status_code == 200
    assert 'id="bulk-count">5</span> failed machines' in confirm.text
    csrf = csrf_in(confirm)
    fields: dict[str, Any] = {"csrf": csrf, "limit": "2", "confirmed": "yes"}
    repaired: list[str] = []
    for _ in range(3):
        done = await ui.post(action, data=fields)
        assert done.status_code == 200, done.text
        repaired += re.findall(r'<td><a href="[^"]+">(f\d)</a></td><td class="good">', done.text)
        cursor = re.search(r'name="cursor" value="([^"]+)"', done.text)
        if cursor is None:
            assert 'id="bulk-finished"' in done.text
            break
        fields["cursor"] = cursor.group(1)
    assert repaired == [f"f{n}" for n in range(5)]
    for n in range(5):
        assert body(await api.get(f"f{n}"))["status"] == "sleeping"


async def test_a_retrying_machine_shows_its_retry_state_and_timer(
    nodes: NodeFactory, processor: FakeProcessor
) -> None:
    retries = {"timers": {"type": "linear", "timeout": "30s", "max_retries": "infinity"}}
    retrying_node: Node = await nodes(retries=retries)

    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "timeout":
            return Answer(status=503, raw=b"<b>maintenance</b>", media="text/plain")
        return Answer(
            body={"events": [{"data": "init"}], "action": {"timer": {"set": {"timeout": 0}}}}
        )

    processor.behaviour = behaviour
    async with console_client(retrying_node.url) as ui, api_for(retrying_node) as api:
        assert (await api.start("m1")).status_code == 201
        with trio.fail_after(10):
            while body(await api.get("m1"))["status"] != "retrying":
                await trio.sleep(0.05)
        page = await ui.get("/ui/namespaces/test/machines/m1")
        retry = page.text.split('id="retry">')[1].split("</dd>")[0]
        assert "timer step, attempt 1 failed; next at" in retry
        assert "&lt;b&gt;maintenance&lt;/b&gt;" in retry
        assert "in 29 s" in retry or "in 30 s" in retry
        timer = page.text.split('id="timer">')[1].split("</dd>")[0]
        assert "UTC" in timer
        listed = await ui.get("/ui/namespaces/test/machines", params={"status": "retrying"})
        assert 'class="status status-retrying">retrying</span>' in listed.text
