"""The console's pure helpers: values as JSON text, times, and the history links' arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mg.console.render import ago, as_json, history_links, machine_path, utc
from mg.core.model import Direction, Event, Range

NOW = datetime(2026, 12, 4, 20, 0, 0, tzinfo=UTC)


def events(ids: list[int]) -> tuple[Event, ...]:
    return tuple(Event(i, NOW, None, i) for i in ids)


def test_values_render_as_json_with_binary_as_base64() -> None:
    assert as_json({"a": b"\x00\x01", "b": [1, None]}) == (
        '{\n  "a": {\n    "$base64": "AAE="\n  },\n  "b": [\n    1,\n    null\n  ]\n}'
    )
    assert as_json("<script>") == '"<script>"'  # escaping is the template's job
    assert as_json(float("nan")) == '{\n  "$unrepresentable": "float nan"\n}'
    assert "$unrepresentable" in as_json(["\ud800"])
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    assert "$unrepresentable" in as_json(deep)


def test_times_are_utc_with_how_long_ago() -> None:
    assert utc(NOW) == "2026-12-04 20:00:00 UTC"
    assert ago(NOW - timedelta(minutes=3, seconds=20), NOW) == "3 min ago"
    assert ago(NOW - timedelta(hours=5), NOW) == "5 h ago"
    assert ago(NOW - timedelta(days=2, hours=1), NOW) == "2 d ago"
    assert ago(NOW + timedelta(seconds=20), NOW) == "in 20 s"
    assert ago(NOW, NOW) == "just now"
    assert ago(None, NOW) == ""


def test_machine_paths_encode_the_id() -> None:
    assert machine_path("orders", "a b/c?") == "/ui/namespaces/orders/machines/a%20b/c%3F"


def test_backward_pages_link_to_older_and_newer() -> None:
    links = history_links(
        events(list(range(45, 25, -1))), Range(None, 20, Direction.BACKWARD), 1, 45, 20
    )
    assert links.toward_newer is None
    assert links.toward_older == {"limit": "20", "direction": "backward", "after": "26"}
    middle = history_links(
        events(list(range(25, 5, -1))), Range(26, 20, Direction.BACKWARD), 1, 45, 20
    )
    assert middle.toward_newer == {"limit": "20", "direction": "backward", "after": "46"}
    tail = history_links(events([5, 4, 3, 2, 1]), Range(6, 20, Direction.BACKWARD), 1, 45, 20)
    assert tail.toward_older is None
    assert tail.toward_newer == {"limit": "20", "direction": "backward", "after": "26"}


def test_forward_pages_link_to_newer_and_older_within_the_held_events() -> None:
    # Events 1..10 were trimmed: the machine holds 11..45.
    first = history_links(events(list(range(11, 31))), Range(None, 20), 11, 45, 20)
    assert first.toward_older is None
    assert first.toward_newer == {"limit": "20", "direction": "forward", "after": "30"}
    second = history_links(events(list(range(31, 46))), Range(30, 20), 11, 45, 20)
    assert second.toward_newer is None
    assert second.toward_older == {"limit": "20", "direction": "forward", "after": "10"}


def test_an_empty_page_links_to_both_ends_only() -> None:
    links = history_links((), Range(99, 20), 1, 0, 20)
    assert (links.toward_older, links.toward_newer) == (None, None)
    assert links.newest == {"limit": "20", "direction": "backward"}
    assert links.oldest == {"limit": "20", "direction": "forward"}
