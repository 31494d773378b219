"""Settings of the data lifecycle (PROTOCOL section 7): a namespace's ``history.max_events``."""

from typing import Any

import pytest

from mg.settings import SettingsError, from_mapping


def namespace(**keys: Any) -> dict[str, Any]:
    return {"namespaces": {"n": {"processor": {"url": "http://p"}, **keys}}}


def test_max_events_is_unset_by_default() -> None:
    assert from_mapping(namespace(), environ={}).namespaces["n"].history_max_events is None


def test_max_events_is_read() -> None:
    settings = from_mapping(namespace(history={"max_events": 100}), environ={})
    assert settings.namespaces["n"].history_max_events == 100


@pytest.mark.parametrize("bad", [0, -1, "10", 1.5, True])
def test_bad_max_events_is_refused_naming_the_key(bad: Any) -> None:
    with pytest.raises(SettingsError, match=r"namespaces\.n\.history\.max_events"):
        from_mapping(namespace(history={"max_events": bad}), environ={})


def test_unknown_history_keys_are_refused() -> None:
    with pytest.raises(SettingsError, match=r"namespaces\.n\.history\.max_event\b"):
        from_mapping(namespace(history={"max_event": 3}), environ={})
