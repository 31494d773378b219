"""Archiving a sink (PROTOCOL section 7): ``mg sink export`` through a live node, then
``mg sink verify --file`` offline; a tampered line is reported with its position, and an export
of a pruned span is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mg.node import Node
from tests.acceptance.test_sink import wait_for
from tests.acceptance.test_sink_retention import retained, until, write
from tests.support.cli import mg_process, mg_thread
from tests.support.cluster import NodeFactory, api_for

SINKS = {"sinks": ["main"], "sinks_config": {"main": {}}}


def lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_export_then_verify_offline_and_a_tampered_line_is_named(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    node: Node = await nodes(**SINKS)
    async with api_for(node) as api:
        await api.start("m", {"raw": b"\x00\x01", "n": 1})
        for n in range(11):
            await api.call("m", {"n": n, "when": "now"})
        await wait_for(api, 12)
    out = tmp_path / "main.jsonl"
    done = await mg_thread("sink", "export", "main", "--output", str(out), "--url", node.url)
    assert done.code == 0, done.err
    assert "exported 12 events" in done.out
    exported = lines(out)
    assert exported[0] == {"sink": "main", "after": 0, "anchor": "0" * 64}
    assert [e["id"] for e in exported[1:]] == list(range(1, 13))
    assert exported[1]["event"]["data"] == {"raw": {"$base64": "AAE="}, "n": 1}
    assert "incarnation" in exported[1]
    checked = await mg_process("sink", "verify", "--file", str(out))
    assert checked.code == 0, checked.err
    assert "chain intact, 12 events, positions 1..12" in checked.out

    # A span: after 4 until 9, anchored on the hash of position 4.
    span = tmp_path / "span.jsonl"
    args = ["--after", "4", "--until", "9", "--output", str(span), "--url", node.url]
    assert (await mg_thread("sink", "export", "main", *args)).code == 0
    header, *events = lines(span)
    assert header == {"sink": "main", "after": 4, "anchor": exported[4]["hash"]}
    assert [e["id"] for e in events] == [5, 6, 7, 8, 9]
    assert (await mg_thread("sink", "verify", "main", "--file", str(span))).code == 0

    # One changed value in line 7 (position 6) breaks the chain there.
    tampered = tmp_path / "tampered.jsonl"
    rows = out.read_text().splitlines()
    row = json.loads(rows[6])
    row["event"]["data"]["n"] = 999
    rows[6] = json.dumps(row)
    tampered.write_text("\n".join(rows) + "\n")
    broken = await mg_thread("sink", "verify", "--file", str(tampered))
    assert broken.code == 1
    assert "broken link at position 6 (line 7)" in broken.out
    # A missing line is named too.
    del rows[3]
    tampered.write_text("\n".join(rows) + "\n")
    missing = await mg_thread("sink", "verify", "--file", str(tampered))
    assert missing.code == 1
    assert "position 3 is missing" in missing.out
    # Not an export at all.
    (tmp_path / "junk").write_text("hello\n")
    assert (await mg_thread("sink", "verify", "--file", str(tmp_path / "junk"))).code == 2


async def test_export_of_a_pruned_span_is_refused_and_the_held_span_verifies(
    nodes: NodeFactory, tmp_path: Path
) -> None:
    node: Node = await nodes(**retained(max_events=10))
    async with api_for(node) as api:
        await write(api, machines=4, calls=4)  # 20 events
        await until(api, lambda b: (b["first"], b["last"]) == (11, 20))
    out = tmp_path / "old.jsonl"
    refused = await mg_thread(
        "sink", "export", "main", "--after", "0", "--output", str(out), "--url", node.url
    )
    assert refused.code != 0
    assert "sink_events_pruned" in refused.err
    assert not out.exists()
    held = tmp_path / "held.jsonl"
    done = await mg_thread("sink", "export", "main", "--output", str(held), "--url", node.url)
    assert done.code == 0, done.err
    header, *events = lines(held)
    assert header["after"] == 10
    assert header["anchor"] != "0" * 64
    assert [e["id"] for e in events] == list(range(11, 21))
    checked = await mg_thread("sink", "verify", "--file", str(held))
    assert (checked.code, "positions 11..20" in checked.out) == (0, True)
