"""The ``mg`` command against a live node running the demo's order processor: every
``machines`` command and ``sink tail``, their tables and ``--json`` documents, and the exit
codes of errors. Some run as real processes, the rest in a thread (see tests/support/cli.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import trio

from mg.client import AsyncClient
from mg.demo.orders import Orders
from mg.node import Node
from mg.processor import serve
from tests.acceptance.test_sink import SINKS
from tests.support.cli import Ran, environment, mg_process, mg_thread
from tests.support.cluster import NodeFactory

ORDER = json.dumps({"item": "a pen", "cents": 300, "reference": "ref-1"})


@pytest.fixture
async def node(nodes: NodeFactory) -> AsyncIterator[Node]:
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve, Orders(), "127.0.0.1", 0)
        modernizer = {"url": url + "/modernizer", "current_format_version": 2}
        started: Node = await nodes(
            processor={"url": url + "/processor"}, modernizer=modernizer, **SINKS
        )
        yield started
        nursery.cancel_scope.cancel()


@pytest.fixture
async def client(node: Node) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(node.url) as mg:
        yield mg


def on(node: Node, *args: str) -> list[str]:
    """A command line addressed to the node and its namespace."""
    return [*args, "--url", node.url, "--ns", "test"]


async def test_start_call_and_get_print_tables_and_json(node: Node) -> None:
    started = await mg_thread(*on(node, "machines", "start", "order-1", "--args", ORDER))
    assert (started.code, started.out) == (0, "started test/order-1\n")

    paid = await mg_thread(*on(node, "machines", "call", "order-1", "--args", '{"pay": 300}'))
    assert (paid.code, paid.out.strip()) == (0, '{"state": "awaiting_shipment"}')
    status = await mg_thread(
        *on(node, "machines", "call", "order-1", "--args", '"status"', "--json")
    )
    assert status.json() == {"response": {"state": "awaiting_shipment"}}

    shown = await mg_thread(*on(node, "machines", "get", "order-1"))
    assert shown.code == 0
    lines = shown.out.splitlines()
    assert "status     waiting" in lines
    assert "tags       ref-1" in lines
    assert 'aux state  {"state": "awaiting_shipment", "paid_cents": 300}  (format 2)' in lines
    assert lines[-3].split() == ["EVENT", "CREATED_AT", "FORMAT", "DATA"]
    event, created_at, version, data = lines[-1].split(maxsplit=3)
    assert (event, version, data) == ("2", "2", '{"kind": "paid", "cents": 300}')
    assert created_at.endswith("Z")

    by_tag = (await mg_thread(*on(node, "machines", "get", "--tag", "ref-1", "--json"))).json()
    assert by_tag["id"] == "order-1"
    assert (by_tag["status"], by_tag["tags"], by_tag["failure"]) == ("waiting", ["ref-1"], None)
    assert by_tag["timer"].endswith("Z")
    assert by_tag["aux_state"] == {
        "data": {"state": "awaiting_shipment", "paid_cents": 300},
        "format_version": 2,
    }
    assert [e["data"]["kind"] for e in by_tag["history"]] == ["created", "paid"]

    newest = await mg_thread(
        *on(node, "machines", "get", "order-1", "--limit=1", "--backward", "--json")
    )
    assert [e["id"] for e in newest.json()["history"]] == [2]
    assert newest.json()["history_range"] == {"after": None, "limit": 1, "direction": "backward"}
    later = await mg_thread(*on(node, "machines", "get", "order-1", "--after", "1", "--json"))
    assert [e["id"] for e in later.json()["history"]] == [2]


async def test_list_pages_with_the_cursor_and_filters_by_status(
    node: Node, client: AsyncClient
) -> None:
    for n in range(5):
        await client.start("test", f"order-{n}", {"item": "a cup", "cents": 100})
    await client.call("test", "order-3", {"pay": 100})
    await client.call("test", "order-3", {"ship": "T-3"})

    first = await mg_thread(*on(node, "machines", "list", "--limit", "2"))
    assert first.code == 0
    rows = [line.split() for line in first.out.splitlines()]
    assert rows[0] == ["ID", "STATUS", "TIMER", "UPDATED_AT"]
    assert [row[:2] for row in rows[1:]] == [["order-0", "waiting"], ["order-1", "waiting"]]
    assert "more machines: add --cursor" in first.err

    cursor = first.err.split("--cursor ")[1].split()[0]
    rest = await mg_thread(*on(node, "machines", "list", "--limit", "2", "--cursor", cursor))
    assert [line.split()[0] for line in rest.out.splitlines()[1:]] == ["order-2", "order-3"]

    everything = (
        await mg_thread(*on(node, "machines", "list", "--limit=2", "--all", "--json"))
    ).json()
    assert [m["id"] for m in everything["machines"]] == [f"order-{n}" for n in range(5)]
    assert everything["next_cursor"] is None
    # --all prints page after page as they come: one header, then every row.
    table = await mg_thread(*on(node, "machines", "list", "--limit=2", "--all"))
    lines = table.out.splitlines()
    assert lines[0].split() == ["ID", "STATUS", "TIMER", "UPDATED_AT"]
    assert [line.split()[0] for line in lines[1:]] == [f"order-{n}" for n in range(5)]
    assert "more machines" not in table.err
    sleeping = (
        await mg_thread(*on(node, "machines", "list", "--status", "sleeping", "--json"))
    ).json()
    assert [(m["id"], m["status"], m["timer"]) for m in sleeping["machines"]] == [
        ("order-3", "sleeping", None)
    ]
    none_failed = await mg_thread(*on(node, "machines", "list", "--status", "failed"))
    assert (none_failed.code, none_failed.out) == (0, "no failed machines in test\n")


async def test_failure_repair_simple_repair_notify_modernize_and_remove(
    node: Node, client: AsyncClient
) -> None:
    await client.start("test", "order-1", {"item": "a pen", "cents": 300})

    failed = await mg_thread(*on(node, "machines", "call", "order-1", "--args", '"refund"'))
    assert failed.code == 1
    assert failed.err.startswith("mg: machine_failed: ")
    assert "unknown call 'refund'" in failed.err
    shown = await mg_thread(*on(node, "machines", "get", "order-1"))
    assert "status     failed" in shown.out
    assert "ValueError: unknown call 'refund'" in shown.out

    repaired = await mg_thread(
        *on(node, "machines", "repair", "order-1", "--args", '"checked"', "--json")
    )
    assert repaired.json() == {"response": {"state": "awaiting_payment"}}
    working = await mg_thread(*on(node, "machines", "repair", "order-1", "--json"))
    assert working.code == 1
    assert json.loads(working.err)["error"] == "machine_already_working"

    await mg_thread(*on(node, "machines", "call", "order-1", "--args", '"refund"'))
    still = await mg_thread(*on(node, "machines", "call", "order-1", "--args", '"status"'))
    assert still.code == 1
    assert "is failed: " in still.err
    assert "repair it: mg machines repair order-1 --args JSON" in still.err
    assert "or mg machines simple-repair order-1" in still.err
    simple = await mg_thread(*on(node, "machines", "simple-repair", "order-1"))
    assert (simple.code, simple.out) == (0, "repaired test/order-1 (simple repair)\n")
    assert (await client.get("test", "order-1")).status.value == "waiting"

    note = '{"from": "carrier", "scan": {"$base64": "AAE="}}'
    queued = await mg_thread(*on(node, "machines", "notify", "order-1", "--args", note, "--json"))
    assert queued.code == 0
    assert queued.json()["id"]
    with trio.fail_after(10):
        while (await client.get("test", "order-1")).history[-1].data["kind"] != "noted":
            await trio.sleep(0.02)
    assert (await client.get("test", "order-1")).history[-1].data["note"] == {
        "from": "carrier",
        "scan": b"\x00\x01",
    }

    modernized = await mg_thread(*on(node, "machines", "modernize", "order-1", "--json"))
    assert modernized.json() == {"modernized": 0}  # everything is at the current version

    removed = await mg_thread(*on(node, "machines", "remove", "order-1"))
    assert (removed.code, removed.out) == (0, "removed test/order-1\n")
    gone = await mg_thread(*on(node, "machines", "get", "order-1"))
    assert gone.code == 1
    assert gone.err.startswith("mg: machine_not_found: ")


async def test_errors_exit_with_distinct_codes_from_a_real_process(node: Node) -> None:
    missing = await mg_process(*on(node, "machines", "get", "nobody", "--json"))
    assert missing.code == 1
    assert json.loads(missing.err)["error"] == "machine_not_found"
    assert missing.out == ""

    unknown_ns = await mg_process("machines", "list", "--url", node.url, "--ns", "nowhere")
    assert unknown_ns.code == 1
    assert unknown_ns.err.startswith("mg: namespace_not_found: ")

    not_json = await mg_process(*on(node, "machines", "call", "order-1", "--args", "{pay"))
    assert not_json.code == 2
    assert "--args is not a JSON value" in not_json.err
    no_id = await mg_process(*on(node, "machines", "get"))
    assert no_id.code == 2
    no_ns = await mg_process("machines", "list", "--url", node.url)
    assert (no_ns.code, no_ns.err) == (2, "mg: no namespace: give --ns or set MG_NS\n")

    unreachable = await mg_process("machines", "list", "--url", "http://127.0.0.1:9", "--ns", "x")
    assert unreachable.code == 3
    assert unreachable.err.startswith("mg: unavailable: mg is unreachable at http://127.0.0.1:9:")


async def test_the_environment_names_the_node_and_the_namespace(node: Node) -> None:
    env = environment(MG_URL=node.url, MG_NS="test")
    started = await mg_process("machines", "start", "order-9", "--args", ORDER, "--json", env=env)
    assert started.json() == {"ns": "test", "id": "order-9"}
    listed = await mg_process("machines", "list", "--json", env=env)
    assert [m["id"] for m in listed.json()["machines"]] == ["order-9"]


async def test_a_token_from_the_option_or_the_environment_is_sent_as_bearer(
    nodes: NodeFactory,
) -> None:
    token = "cli-token-0b7f3e91"
    tokens = {"cli": {"token": token, "namespaces": ["test"]}}
    node: Node = await nodes(auth={"enabled": True, "tokens": tokens})
    refused = await mg_thread(*on(node, "machines", "list"))
    assert refused.code == 1
    assert refused.err.startswith("mg: unauthorized: ")
    allowed = await mg_thread(*on(node, "machines", "list", "--token", token, "--json"))
    assert allowed.json() == {"machines": [], "next_cursor": None}
    from_env = await mg_process(*on(node, "machines", "list"), env=environment(MG_TOKEN=token))
    assert (from_env.code, from_env.out) == (0, "no machines in test\n")


async def wait_for_sink(client: AsyncClient, count: int) -> None:
    with trio.fail_after(20):
        while len(await client.read_sink("main", range=None)) < count:
            await trio.sleep(0.02)


async def test_sink_tail_prints_the_last_events_or_those_after_a_position(
    node: Node, client: AsyncClient
) -> None:
    for n in range(12):
        await client.start("test", f"order-{n:02}", {"item": "a cup", "cents": n})
    await wait_for_sink(client, 12)

    tail = await mg_thread("sink", "tail", "main", "--url", node.url)
    rows = [line.split() for line in tail.out.splitlines()]
    assert rows[0] == ["POSITION", "NS", "MACHINE", "EVENT", "CREATED_AT", "DATA"]
    assert [row[:4] for row in rows[1:]] == [
        [str(p), "test", f"order-{p - 1:02}", "1"] for p in range(3, 13)
    ]

    page = await mg_thread(
        "sink", "tail", "main", "--url", node.url, "--after", "4", "--limit", "2", "--json"
    )
    found = page.json_lines()
    assert [(e["id"], e["machine_id"], e["event"]["id"]) for e in found] == [
        (5, "order-04", 1),
        (6, "order-05", 1),
    ]
    assert found[0]["event"]["data"] == {
        "kind": "created",
        "item": "a cup",
        "cents": 4,
        "ship_within": 86400,
    }
    assert len(found[0]["hash"]) == 64
    everything = await mg_thread(
        "sink", "tail", "main", "--url", node.url, "--after", "0", "--json"
    )
    assert [e["id"] for e in everything.json_lines()] == list(range(1, 13))

    missing = await mg_thread("sink", "tail", "nowhere", "--url", node.url)
    assert (missing.code, missing.err.split(":")[:2]) == (1, ["mg", " sink_not_found"])


async def test_sink_tail_follows_new_events_until_its_limit_or_ctrl_c(
    node: Node, client: AsyncClient
) -> None:
    await client.start("test", "order-1", {"item": "a pen", "cents": 300})
    await wait_for_sink(client, 1)
    follow = ["sink", "tail", "main", "--url", node.url, "--follow"]

    results: list[Ran] = []

    async def follower() -> None:
        results.append(await mg_process(*follow, "--after", "1", "--limit", "2", "--json"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower)
        await trio.sleep(0.5)  # most likely long-polling by now; correct either way
        await client.call("test", "order-1", {"pay": 300})
        await client.call("test", "order-1", {"ship": "T-1"})
    assert results[0].code == 0, results[0].err
    followed = [(e["id"], e["event"]["data"]["kind"]) for e in results[0].json_lines()]
    assert followed == [(2, "paid"), (3, "shipped")]

    # Ctrl-C ends a follow cleanly: exit 0, no traceback.
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "mg", *follow, "--last", "1"],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    seen = b""
    with trio.fail_after(20):
        while seen.count(b"\n") < 2:  # the header and the newest event: now it waits
            seen += await process.stdout.receive_some()
        process.send_signal(signal.SIGINT)
        code = await process.wait()
        err = await process.stderr.receive_some()
    await process.stdout.aclose()
    await process.stderr.aclose()
    assert (code, err) == (0, b"")
    assert seen.splitlines()[1].split()[:3] == [b"3", b"test", b"order-1"]
