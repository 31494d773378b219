"""The settings object: defaults, durations, and refusal of what is wrong."""

from pathlib import Path

import pytest

from mg.settings import SettingsError, from_mapping, load

EXAMPLE = Path(__file__).resolve().parents[2] / "mg.example.toml"


def test_the_example_config_loads() -> None:
    settings = load(EXAMPLE, environ={})
    assert "orders" in settings.namespaces
    orders = settings.namespaces["orders"]
    assert orders.default_processing_timeout == 30.0
    assert orders.timer_retries.max_timeout == 1800.0
    assert orders.sinks == ("main",)


def test_loops_have_their_own_tables() -> None:
    settings = from_mapping({"timers": {"lease": "2s", "batch": 10}}, environ={})
    assert settings.timers.lease == 2.0
    assert settings.timers.batch == 10
    assert settings.notifications.concurrency == 8


def test_defaults_without_a_file() -> None:
    settings = from_mapping({}, environ={})
    assert settings.server.port == 8022
    assert settings.database.url is None
    assert settings.database.bridge == "uvloop"
    assert settings.metrics.sample_interval == 15.0
    assert settings.auth.enabled is False
    assert settings.auth.tokens == ()
    assert settings.server.certfile is None
    assert settings.server.ca_certs is None


def test_the_example_config_has_the_defaults_of_observability_and_auth() -> None:
    settings = load(EXAMPLE, environ={})
    defaults = from_mapping({}, environ={})
    assert settings.metrics == defaults.metrics
    assert settings.auth == defaults.auth
    assert settings.logging == defaults.logging
    assert settings.server == defaults.server


def test_tls_and_metrics_settings() -> None:
    settings = from_mapping(
        {
            "server": {"certfile": "c.pem", "keyfile": "k.pem", "ca_certs": "ca.pem"},
            "metrics": {"sample_interval": "500ms"},
        },
        environ={},
    )
    assert (settings.server.certfile, settings.server.keyfile) == ("c.pem", "k.pem")
    assert settings.server.ca_certs == "ca.pem"
    assert settings.metrics.sample_interval == 0.5


def test_the_environment_gives_the_database_url() -> None:
    settings = from_mapping({}, environ={"MG_DATABASE_URL": "postgresql://x/y"})
    assert settings.database.url == "postgresql://x/y"


def test_durations_have_units() -> None:
    data = {
        "namespaces": {
            "a": {"processor": {"url": "http://x"}, "default_processing_timeout": "250ms"}
        }
    }
    assert from_mapping(data, environ={}).namespaces["a"].default_processing_timeout == 0.25


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"server": {"prot": 1}}, "server.prot"),
        ({"namespaces": {"a": {}}}, "processor.url"),
        ({"namespaces": {"a": {"processor": {"url": "http://x"}, "sinks": ["nope"]}}}, "nope"),
        (
            {
                "namespaces": {
                    "a": {"processor": {"url": "http://x"}, "default_processing_timeout": "30"}
                }
            },
            "default_processing_timeout",
        ),
        ({"database": {"bridge": "psycopg"}}, "database.bridge"),
        ({"server": {"certfile": "c.pem"}}, "go together"),
        ({"server": {"ca_certs": "ca.pem"}}, "ca_certs"),
        ({"metrics": {"sample_interval": "0s"}}, "sample_interval"),
        ({"metrics": {"interval": "1s"}}, "metrics.interval"),
    ],
)
def test_wrong_settings_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        from_mapping(data, environ={})


def test_the_state_cache_has_a_budget_and_can_be_turned_off() -> None:
    assert load(EXAMPLE, environ={}).cache == from_mapping({}, environ={}).cache
    assert from_mapping({}, environ={}).cache.max_bytes == 64 * 1024 * 1024
    off = from_mapping({"cache": {"max_bytes": 0, "events": 5}}, environ={}).cache
    assert (off.max_bytes, off.events) == (0, 5)


def test_the_front_door_knobs_and_their_defaults() -> None:
    for settings in (from_mapping({}, environ={}), load(EXAMPLE, environ={})):
        assert settings.server.keep_alive_timeout == 75.0
        assert settings.server.max_connections == 4096
        assert settings.server.http2 is False
    set_ = from_mapping(
        {"server": {"keep_alive_timeout": "5s", "max_connections": 10, "http2": True}}, environ={}
    )
    assert (set_.server.keep_alive_timeout, set_.server.max_connections) == (5.0, 10)
    assert set_.server.http2 is True
    for wrong in ({"http2": "yes"}, {"max_connections": 0}, {"keep_alive_timeout": "soon"}):
        with pytest.raises(SettingsError):
            from_mapping({"server": wrong}, environ={})


def test_processor_answer_bounds_default_and_can_be_set_per_namespace() -> None:
    example = load(EXAMPLE, environ={}).namespaces["orders"]
    assert example.processor_max_reply_bytes == 16 * 1024 * 1024
    assert example.processor_max_events == 10_000
    settings = from_mapping(
        {
            "namespaces": {
                "a": {"processor": {"url": "http://p", "max_reply_bytes": 2048, "max_events": 3}}
            }
        },
        environ={},
    )
    assert settings.namespaces["a"].processor_max_reply_bytes == 2048
    assert settings.namespaces["a"].processor_max_events == 3
    for bad in ({"max_reply_bytes": 10}, {"max_events": 0}, {"max_events": "many"}):
        with pytest.raises(SettingsError, match=r"processor\.max_"):
            from_mapping(
                {"namespaces": {"a": {"processor": {"url": "http://p", **bad}}}}, environ={}
            )


def test_an_inline_token_in_a_file_others_can_read_is_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "mg.toml"
    config.write_text(
        '[namespaces.orders]\nprocessor.url = "http://127.0.0.1:9000/"\n'
        '[auth]\nenabled = true\n[auth.tokens.ops]\ntoken = "' + "t" * 32 + '"\n'
        'namespaces = ["*"]\n'
    )
    config.chmod(0o644)
    (warning,) = load(config, environ={}).warnings
    assert warning == (
        f"{config} holds an inline auth token and is readable by other users (mode 644): "
        f"chmod 600 {config} (or use token_env / MG_DATABASE_URL)"
    )
    config.chmod(0o600)
    assert load(config, environ={}).warnings == ()


def test_the_example_config_has_the_defaults_of_limits_and_the_step_margin() -> None:
    settings = load(EXAMPLE, environ={})
    defaults = from_mapping({}, environ={})
    assert settings.limits == defaults.limits
    assert settings.limits.max_long_polls == 256
    assert settings.database.step_idle_margin == defaults.database.step_idle_margin == 5.0


def test_a_namespace_gets_half_the_step_slots_when_it_shares_the_node() -> None:
    def namespaces(**extra: object) -> dict[str, object]:
        return {name: {"processor": {"url": "http://x"}, **extra} for name in ("a", "b")}

    alone = from_mapping({"namespaces": {"a": {"processor": {"url": "http://x"}}}}, environ={})
    assert alone.step_slots("a") == 24
    shared = from_mapping(
        {"limits": {"max_steps_in_flight": 5}, "namespaces": namespaces()}, environ={}
    )
    assert (shared.step_slots("a"), shared.step_slots("b")) == (3, 3)
    own = from_mapping({"namespaces": namespaces(max_steps_in_flight=30)}, environ={})
    assert own.step_slots("a") == 24  # never more than the node has
    two = from_mapping({"namespaces": namespaces(max_steps_in_flight=2)}, environ={})
    assert two.step_slots("b") == 2
    with pytest.raises(SettingsError, match="max_steps_in_flight"):
        from_mapping({"namespaces": namespaces(max_steps_in_flight=0)}, environ={})
    with pytest.raises(SettingsError, match="max_long_polls"):
        from_mapping({"limits": {"max_long_polls": 0}}, environ={})
