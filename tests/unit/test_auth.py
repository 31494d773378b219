"""Bearer tokens: who may call which namespace, and what the settings accept."""

from __future__ import annotations

from typing import Any

import pytest

from mg.api.auth import Authenticator
from mg.errors import Forbidden, Unauthorized
from mg.settings import SettingsError, from_mapping

ORDERS_TOKEN = "orders-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789ab"


def config(**auth: Any) -> dict[str, Any]:
    return {
        "sinks": {"main": {}},
        "namespaces": {
            "orders": {"processor": {"url": "http://x"}},
            "refunds": {"processor": {"url": "http://x"}},
        },
        "auth": auth,
    }


def authenticator() -> Authenticator:
    settings = from_mapping(
        config(
            enabled=True,
            tokens={
                "orders-service": {"token_env": "ORDERS_TOKEN", "namespaces": ["orders"]},
                "admin": {"token": ADMIN_TOKEN, "namespaces": ["*"], "sinks": ["*"]},
            },
        ),
        environ={"ORDERS_TOKEN": ORDERS_TOKEN},
    )
    return Authenticator(settings.auth)


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {ORDERS_TOKEN}", "Bearer not-a-known-token-at-all"],
)
def test_no_or_unknown_token_is_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        authenticator().check(header, ns="orders", sink=None)


def test_a_token_is_limited_to_its_namespaces_and_sinks() -> None:
    auth = authenticator()
    assert auth.check(f"Bearer {ORDERS_TOKEN}", ns="orders", sink=None) == "orders-service"
    assert auth.check(f"bearer  {ORDERS_TOKEN} ", ns="orders", sink=None) == "orders-service"
    with pytest.raises(Forbidden):
        auth.check(f"Bearer {ORDERS_TOKEN}", ns="refunds", sink=None)
    with pytest.raises(Forbidden):
        auth.check(f"Bearer {ORDERS_TOKEN}", ns="no-such-namespace", sink=None)
    with pytest.raises(Forbidden):
        auth.check(f"Bearer {ORDERS_TOKEN}", ns=None, sink="main")
    assert auth.check(f"Bearer {ADMIN_TOKEN}", ns="refunds", sink=None) == "admin"
    assert auth.check(f"Bearer {ADMIN_TOKEN}", ns=None, sink="main") == "admin"


def test_auth_off_lets_everyone_in() -> None:
    settings = from_mapping(config(), environ={})
    assert Authenticator(settings.auth).check(None, ns="orders", sink=None) is None


def test_settings_keep_only_a_digest_of_each_token() -> None:
    settings = from_mapping(
        config(enabled=True, tokens={"admin": {"token": ADMIN_TOKEN, "namespaces": ["*"]}}),
        environ={},
    )
    assert ADMIN_TOKEN not in repr(settings)
    assert ADMIN_TOKEN.encode() not in settings.auth.tokens[0].digest


@pytest.mark.parametrize(
    ("auth", "environ", "message"),
    [
        ({"enabled": True}, {}, "no \\[auth.tokens"),
        ({"enabled": "yes"}, {}, "auth.enabled"),
        ({"tokens": {"a": {"namespaces": ["orders"]}}}, {}, "exactly one of token and token_env"),
        ({"tokens": {"a": {"token_env": "T"}}}, {}, "T is unset"),
        ({"tokens": {"a": {"token": "short"}}}, {}, "at least 16"),
        ({"tokens": {"a": {"token": "has a space in it ok"}}}, {}, "without spaces"),
        ({"tokens": {"a": {"token": ADMIN_TOKEN, "namespaces": ["ordrs"]}}}, {}, "ordrs"),
        ({"tokens": {"a": {"token": ADMIN_TOKEN, "sinks": ["nope"]}}}, {}, "nope"),
        ({"tokens": {"a": {"token": ADMIN_TOKEN, "namspaces": []}}}, {}, "namspaces"),
        (
            {"tokens": {"a": {"token": ADMIN_TOKEN}, "b": {"token_env": "T"}}},
            {"T": ADMIN_TOKEN},
            "same secret",
        ),
    ],
)
def test_wrong_auth_settings_are_refused_without_quoting_the_token(
    auth: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        from_mapping(config(**auth), environ=environ)
    assert ADMIN_TOKEN not in str(raised.value)
