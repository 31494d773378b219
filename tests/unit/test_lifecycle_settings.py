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


def sink(**keys: Any) -> dict[str, Any]:
    return {"sinks": {"main": keys}}


def test_retention_is_read_with_days_and_defaults() -> None:
    settings = from_mapping(sink(retention={"max_age": "30d", "max_events": 5}), environ={})
    retention = settings.sink_options["main"].retention
    assert retention is not None
    assert (retention.max_age, retention.max_events) == (30 * 86400.0, 5)
    assert (retention.batch_size, retention.interval) == (1000, 10.0)
    assert from_mapping(sink(), environ={}).sink_options["main"].retention is None


@pytest.mark.parametrize(
    ("retention", "key"),
    [
        ({"max_age": "30 days"}, "max_age"),
        ({"max_age": "3w"}, "max_age"),
        ({"max_age": 30}, "max_age"),
        ({"max_age": "0s"}, "max_age"),
        ({"max_events": "100"}, "max_events"),
        ({"max_events": 0}, "max_events"),
        ({"max_events": 2.5}, "max_events"),
        ({"max_events": 5, "batch_size": 0}, "batch_size"),
        ({"max_events": 5, "interval": "0s"}, "interval"),
        ({"max_events": 5, "max_eventz": 1}, "max_eventz"),
    ],
)
def test_bad_retention_is_refused_naming_the_key(retention: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError, match=rf"sinks\.main\.retention\.{key}"):
        from_mapping(sink(retention=retention), environ={})


def test_retention_needs_a_bound() -> None:
    with pytest.raises(SettingsError, match=r"sinks\.main\.retention needs"):
        from_mapping(sink(retention={"batch_size": 10}), environ={})
    with pytest.raises(SettingsError, match=r"sinks\.main\.retention must be a table"):
        from_mapping(sink(retention="30d"), environ={})
