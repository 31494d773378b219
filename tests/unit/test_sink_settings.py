"""Sink settings: defaults, per-sink knobs, and names that are refused."""

from __future__ import annotations

import pytest

from mg.settings import SettingsError, from_mapping


def test_a_sink_without_keys_has_the_documented_defaults() -> None:
    sink = from_mapping({"sinks": {"main": {}}}, environ={}).sink_options["main"]
    assert (sink.batch_size, sink.poll_interval, sink.max_wait, sink.read_limit) == (
        1000,
        1.0,
        60.0,
        1000,
    )


def test_sink_knobs_are_read_per_sink() -> None:
    settings = from_mapping(
        {
            "sinks": {
                "main": {"batch_size": 10, "max_wait": "5s", "read_limit": 7},
                "audit": {"poll_interval": "250ms"},
            }
        },
        environ={},
    )
    assert settings.sinks == ("main", "audit")
    main, audit = settings.sink_options["main"], settings.sink_options["audit"]
    assert (main.batch_size, main.max_wait, main.read_limit) == (10, 5.0, 7)
    assert audit.poll_interval == 0.25


@pytest.mark.parametrize("name", ["", "a,b", "with space", "-dash", "x" * 64, "é"])
def test_sink_names_that_could_not_travel_are_refused(name: str) -> None:
    with pytest.raises(SettingsError, match="sink name"):
        from_mapping({"sinks": {name: {}}}, environ={})


@pytest.mark.parametrize(
    "knob", [{"batch_size": 0}, {"poll_interval": "0s"}, {"read_limit": 0}, {"colour": "red"}]
)
def test_bad_sink_knobs_are_refused(knob: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        from_mapping({"sinks": {"main": knob}}, environ={})
