"""Decoding client bodies within bounds, and refusing in the contract's words."""

from __future__ import annotations

import time

import msgpack
import pytest

from mg.api import bodies
from mg.api.bodies import MAX_VALUES
from mg.errors import InvalidRequest

TOO_MANY = f"the body holds more than {MAX_VALUES} values"


def test_msgpack_with_too_many_values_is_refused_before_it_is_built() -> None:
    count = 4 * 2**20 - 16
    bomb = b"\x81\xa4args\xdd" + count.to_bytes(4, "big") + b"\x80" * count
    for data in (bomb, msgpack.packb({"args": [[1] * 1000] * (MAX_VALUES // 1000 + 1)})):
        with pytest.raises(InvalidRequest, match=TOO_MANY):
            bodies.decode(data, bodies.MSGPACK)


def test_json_with_too_many_values_is_refused() -> None:
    data = b'{"args": [' + b",".join([b"[]"] * (MAX_VALUES + 1)) + b"]}"
    with pytest.raises(InvalidRequest, match=TOO_MANY):
        bodies.decode(data, bodies.JSON)


def test_values_up_to_the_limit_and_commas_in_strings_are_fine() -> None:
    many = {"args": [0] * (MAX_VALUES - 10)}
    assert bodies.decode(msgpack.packb(many), bodies.MSGPACK) == many
    text = {"args": "[{," * MAX_VALUES}
    assert bodies.decode(msgpack.packb(text), bodies.MSGPACK) == text
    escaped = b'{"args": "' + b'\\",' * MAX_VALUES + b'"}'
    assert bodies.decode(escaped, bodies.JSON)["args"] == '",' * MAX_VALUES


def test_counting_never_backtracks_on_an_unterminated_string() -> None:
    data = b'{"args": "' + b'\\",' * (2**20)
    began = time.monotonic()
    with pytest.raises(InvalidRequest):
        bodies.decode(data, bodies.JSON)
    assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b'{"args": ' + b"9" * 5000 + b"}", "integer out of the 64-bit range"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 100 levels"),
    ],
)
def test_refusals_speak_the_contract_not_python(data: bytes, words: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        bodies.decode(data, bodies.JSON)
    assert words in str(refused.value)
    assert "sys." not in str(refused.value)


def test_msgpack_nested_past_its_own_stack_says_how_deep() -> None:
    with pytest.raises(InvalidRequest) as refused:
        bodies.decode(b"\x81\xa4args" + b"\x91" * 100_000 + b"\xc0", bodies.MSGPACK)
    assert "nested deeper than 100 levels" in str(refused.value)
