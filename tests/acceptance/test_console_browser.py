"""The operator console in a real browser (headless Chromium through Selenium), on a real node
with a real processor: what an operator does at 3 a.m.

Selenium's calls block, so each story runs in a worker thread (``trio.to_thread``) while the
node and the processor keep serving in the test's trio loop; a story that needs the API calls
back into the loop with ``trio.from_thread.run``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from mg.node import Node, running_node
from mg.settings import from_mapping
from tests.support.api import Api, body
from tests.support.browser import PHONE, browser, follow, screenshot, wait_until
from tests.support.cluster import NodeFactory
from tests.support.processor import Answer, FakeProcessor, Seen, echo

__all__ = ["browser"]  # the module-scoped fixture, shared by every test here

SCRIPT = "<script>document.title='pwned'</script>"


@pytest.fixture
async def node(nodes: NodeFactory) -> Node:
    found: Node = await nodes(sinks=["main"], sinks_config={"main": {}})
    return found


def by_id(driver: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, name)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def link(driver: Any, text: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.LINK_TEXT, text)


def fail_payments(processor: FakeProcessor) -> None:
    async def behaviour(seen: Seen) -> Answer:
        if seen.kind == "call":
            return Answer(status=500, raw=b"payment expired before capture", media="text/plain")
        if seen.kind == "repair":
            return Answer(body={"response": "ok", "events": [{"data": {"repaired": True}}]})
        return await echo(seen)

    processor.behaviour = behaviour


async def test_find_a_failed_machine_read_why_and_repair_it(
    browser: Any, node: Node, api: Api, processor: FakeProcessor
) -> None:
    fail_payments(processor)
    assert (await api.start("order-A", {"item": "a pen"})).status_code == 201
    assert (await api.start("order-B", {"item": "a lamp", "note": SCRIPT})).status_code == 201
    assert (await api.call("order-B", "pay")).status_code == 409

    def story() -> None:
        driver = browser
        driver.get(node.url + "/ui/")
        screenshot(driver, "overview")
        follow(driver, css(driver, "#namespaces a.count.status-failed")[0])
        wait_until(driver, lambda d: "status=failed" in d.current_url)
        rows = css(driver, "#machines tbody tr")
        assert len(rows) == 1
        assert "payment expired before capture" in rows[0].text
        screenshot(driver, "search")
        follow(driver, link(driver, "order-B"))
        reason = wait_until(driver, lambda d: by_id(d, "failure-reason"))
        assert "payment expired before capture" in reason.text
        history = css(driver, "#history tr.event")
        assert len(history) == 1
        assert SCRIPT in history[0].text  # shown as text, never run
        assert driver.title.startswith("order-B")
        screenshot(driver, "machine")
        args = by_id(driver, "repair-args")
        args.clear()
        args.send_keys("{not json")
        by_id(driver, "repair").click()  # the page refuses it: still here, with the error
        assert "Not valid JSON" in css(driver, ".json-error")[0].text
        assert "/actions/" not in driver.current_url
        args.clear()
        args.send_keys('{"reason": "captured by hand"}')
        follow(driver, by_id(driver, "repair"))
        confirm = wait_until(driver, lambda d: by_id(d, "confirm"))
        assert "order-B" in confirm.text
        screenshot(driver, "confirm-repair")
        follow(driver, by_id(driver, "confirm-action"))
        notice = wait_until(driver, lambda d: by_id(d, "notice"))
        assert "Repaired" in notice.text
        assert by_id(driver, "status").text == "sleeping"
        assert len(css(driver, "#history tr.event")) == 2
        driver.set_window_size(*PHONE)
        try:
            screenshot(driver, "machine-phone", PHONE)
            for path in ("", "/ui/", "/ui/namespaces/test/machines", "/ui/sinks/main"):
                if path:
                    driver.get(node.url + path)
                fits = driver.execute_script(
                    "return document.documentElement.scrollWidth <= window.innerWidth"
                )
                assert fits, f"{path or 'the machine page'} overflows a phone's width"
        finally:
            driver.set_window_size(1280, 900)

    await trio.to_thread.run_sync(story)
    assert processor.of_kind("repair")[-1].body["args"] == {"reason": "captured by hand"}
    assert body(await api.get("order-B"))["status"] == "sleeping"


async def test_page_a_long_history(browser: Any, node: Node, api: Api) -> None:
    assert (await api.start("long", 0)).status_code == 201
    for n in range(1, 50):
        assert (await api.call("long", n)).status_code == 200

    def ids(driver: Any) -> list[int]:
        return [int(cell.text) for cell in css(driver, "#history td.event-id")]

    def story() -> None:
        driver = browser
        driver.get(node.url + "/ui/namespaces/test/machines/long")
        assert ids(driver) == list(range(50, 30, -1))
        seen = ids(driver)
        while css(driver, "#history-older"):
            follow(driver, by_id(driver, "history-older"))
            seen += ids(driver)
        assert seen == list(range(50, 0, -1))
        follow(driver, by_id(driver, "history-newer"))
        assert ids(driver) == list(range(30, 10, -1))
        follow(driver, by_id(driver, "history-oldest"))
        assert ids(driver) == list(range(1, 21))

    await trio.to_thread.run_sync(story)


async def test_watch_a_sink_event_appear_live(browser: Any, node: Node, api: Api) -> None:
    assert (await api.start("first", 1)).status_code == 201

    def story() -> None:
        driver = browser
        driver.get(node.url + "/ui/sinks/main")
        wait_until(driver, lambda d: len(css(d, "tr.sink-event")) == 1)
        trio.from_thread.run(api.start, "late", {"note": SCRIPT})
        wait_until(driver, lambda d: len(css(d, "tr.sink-event")) == 2)
        newest = css(driver, "tr.sink-event")[0]
        assert "late" in newest.text
        assert SCRIPT in newest.text  # text, not markup
        assert driver.title != "pwned"
        by_id(driver, "check-to").send_keys("2")
        follow(driver, by_id(driver, "check"))
        verdict = wait_until(driver, lambda d: by_id(d, "verdict"))
        assert "chain intact, 2 events, positions 1..2" in verdict.text
        screenshot(driver, "sink")
        driver.get("about:blank")  # stop the page's live feed before the node stops

    await trio.to_thread.run_sync(story)


async def test_a_bulk_simple_repair(
    browser: Any, node: Node, api: Api, processor: FakeProcessor
) -> None:
    fail_payments(processor)
    for n in range(3):
        assert (await api.start(f"order-{n}", n)).status_code == 201
        assert (await api.call(f"order-{n}", "pay")).status_code == 409

    def story() -> None:
        driver = browser
        driver.get(node.url + "/ui/namespaces/test/machines?status=failed&limit=2")
        follow(driver, by_id(driver, "bulk-simple-repair"))
        count = wait_until(driver, lambda d: by_id(d, "bulk-count"))
        assert count.text == "3"
        screenshot(driver, "bulk-confirm")
        follow(driver, by_id(driver, "confirm-action"))
        results = wait_until(driver, lambda d: css(d, "#bulk-results tbody tr"))
        assert [row.text for row in results] == ["order-0 repaired", "order-1 repaired"]
        follow(driver, by_id(driver, "bulk-next"))
        wait_until(driver, lambda d: by_id(d, "bulk-finished"))
        assert [row.text for row in css(driver, "#bulk-results tbody tr")] == ["order-2 repaired"]
        screenshot(driver, "bulk-done")

    await trio.to_thread.run_sync(story)
    for n in range(3):
        assert body(await api.get(f"order-{n}"))["status"] == "sleeping"


TOKEN = "browser-test-token-3e9d41"


@pytest.fixture
async def guarded(database_url: str, processor: FakeProcessor) -> AsyncIterator[str]:
    config = {
        "namespaces": {"test": {"processor": {"url": processor.url}}},
        "auth": {"enabled": True, "tokens": {"ops": {"token": TOKEN, "namespaces": ["*"]}}},
    }
    async with running_node(from_mapping(config, environ={}), database_url, port=0) as found:
        yield found.url


async def test_log_in_and_out_with_auth_on(browser: Any, guarded: str) -> None:
    def story() -> None:
        driver = browser
        driver.delete_all_cookies()
        driver.get(guarded + "/ui/namespaces/test/machines")
        wait_until(driver, lambda d: "/ui/login" in d.current_url)
        screenshot(driver, "login")
        by_id(driver, "token").send_keys("not-a-token-at-all")
        follow(driver, by_id(driver, "login"))
        assert "not one this service knows" in by_id(driver, "login-error").text
        by_id(driver, "token").send_keys(TOKEN)
        follow(driver, by_id(driver, "login"))
        wait_until(driver, lambda d: d.current_url.endswith("/ui/namespaces/test/machines"))
        assert driver.execute_script("return document.cookie") == ""  # HttpOnly: unreadable
        cookie = driver.get_cookie("mg_console_token")
        assert cookie is not None
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        follow(driver, by_id(driver, "logout"))
        wait_until(driver, lambda d: "/ui/login" in d.current_url)
        assert driver.get_cookie("mg_console_token") is None
        driver.get(guarded + "/ui/")
        wait_until(driver, lambda d: "/ui/login" in d.current_url)

    await trio.to_thread.run_sync(story)
