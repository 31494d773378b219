"""Values between JSON, MessagePack and storage."""

import math

import msgpack
import pytest

from mg.core import values


def test_binary_round_trips_through_json_as_base64() -> None:
    value = {"a": b"\x00\xffbin", "list": [b"x", 1, "s", None, True, 1.5]}
    as_json = values.to_json(value)
    assert as_json["a"] == {"$base64": "AP9iaW4="}
    assert values.from_json(as_json) == value


def test_pack_is_the_canonical_msgpack_encoding() -> None:
    value = {"z": 1, "a": [b"\x01", "text"]}
    assert values.pack(value) == msgpack.packb(value)
    assert values.unpack(values.pack(value)) == value


def test_bad_base64_is_refused() -> None:
    with pytest.raises(values.ValueRejected):
        values.from_json({"$base64": "not base64!"})
    with pytest.raises(values.ValueRejected):
        values.from_json({"$base64": 12})


def test_an_object_with_more_than_the_base64_key_stays_an_object() -> None:
    value = {"$base64": "AA==", "other": 1}
    assert values.from_json(value) == value


def test_ext_types_are_refused() -> None:
    with pytest.raises(values.ValueRejected):
        values.unpack(msgpack.packb(msgpack.ExtType(5, b"x")))


def test_malformed_msgpack_is_refused() -> None:
    with pytest.raises(values.ValueRejected):
        values.unpack(b"\xc1")


def test_non_string_keys_become_strings_in_json() -> None:
    assert values.to_json({1: "a", 2.5: "b"}) == {"1": "a", "2.5": "b"}


def test_non_finite_floats_cannot_be_json() -> None:
    with pytest.raises(values.ValueRejected):
        values.to_json(math.inf)


def test_check_refuses_deep_nesting_and_huge_integers() -> None:
    deep: list[object] = []
    cursor = deep
    for _ in range(150):
        inner: list[object] = []
        cursor.append(inner)
        cursor = inner
    with pytest.raises(values.ValueRejected):
        values.check(deep)
    with pytest.raises(values.ValueRejected):
        values.check(2**64)
    values.check({"ok": [1, -(2**63), 2**64 - 1, b"", None]})


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


# One value rule for every value that enters mg: the same bad classes, whoever sends them.
BAD_VALUES = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "too deep": _nested(101),
    "2^64": 2**64,
    "-2^63-1": -(2**63) - 1,
    "2^70": 2**70,
    "lone surrogate": "\ud800",
    "surrogate as a key": {"\udfff": 1},
    "NaN as a key": {math.nan: 1},
    "not a contract type": {1, 2},
}


@pytest.mark.parametrize("name", BAD_VALUES)
def test_the_value_rule_refuses_every_bad_class_and_says_where(name: str) -> None:
    value = BAD_VALUES[name]
    with pytest.raises(values.ValueRejected, match=r"^events\[1\]\.data: "):
        values.check({"x": [value]}, "events[1].data")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (math.nan, "float NaN is not a contract value"),
        (-math.inf, "float -Infinity is not a contract value"),
        (2**64, "integer out of the 64-bit range"),
        ("\ud800", "lone surrogate"),
        (_nested(101), "nested deeper than 100 levels"),
    ],
)
def test_refusals_use_the_contracts_words(value: object, words: str) -> None:
    with pytest.raises(values.ValueRejected, match=words):
        values.check(value)


def test_the_edges_of_the_rule_are_accepted() -> None:
    values.check(_nested(100))
    values.check([-(2**63), 2**64 - 1, 1.7976931348623157e308, -0.0, "\U0001f600", b"\xff"])
    values.check({"\x00": None, 1: True, b"k": 1.5})


def test_the_size_bound_counts_at_least_the_bytes_of_strings_and_binary() -> None:
    assert values.check("x" * 1000) >= 1000
    assert values.check([b"y" * 1000, "é" * 500]) >= 2000
    values.check(["x" * 100], max_bytes=200)
    with pytest.raises(values.ValueRejected, match="the limit is 200"):
        values.check(["x" * 300], max_bytes=200)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"1e400", None),  # parses to infinity: refused by check, not by the parser
        (b"NaN", "NaN is not valid JSON"),
        (b"-Infinity", "-Infinity is not valid JSON"),
        (b"1" * 21, "64-bit"),
        (b"9" * 5000, "64-bit"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'{"a": ', "malformed JSON"),
        (b'"\xff"', "malformed JSON"),
    ],
)
def test_json_text_is_refused_in_the_contracts_words(text: bytes, words: str | None) -> None:
    if words is None:
        with pytest.raises(values.ValueRejected, match="Infinity"):
            values.check(values.loads_json(text))
        return
    with pytest.raises(values.ValueRejected, match=words):
        values.loads_json(text)


def test_json_lone_surrogate_escapes_parse_and_are_refused_by_the_rule() -> None:
    parsed = values.loads_json(b'{"args": "\\ud800"}')
    with pytest.raises(values.ValueRejected, match="surrogate"):
        values.check(parsed, "body")
    # A proper pair is one character, and fine.
    values.check(values.loads_json(b'"\\ud83d\\ude00"'))


def test_messagepack_nested_past_the_unpackers_stack_is_refused_as_nesting() -> None:
    with pytest.raises(values.ValueRejected, match="nested deeper than 100 levels"):
        values.unpack(b"\x91" * 100_000 + b"\xc0")


def test_values_stored_before_the_rule_are_written_as_json_with_marks() -> None:
    deep: object = "bottom"
    for _ in range(150):
        deep = [deep]
    marked = values.to_json_marking(
        {"nan": math.nan, "inf": [math.inf], "deep": deep, "ok": b"\x00", "s": "\ud800"}
    )
    assert marked["nan"] == {"$unrepresentable": "float nan"}
    assert marked["inf"] == [{"$unrepresentable": "float inf"}]
    assert marked["ok"] == {"$base64": "AA=="}
    assert marked["s"] == {"$unrepresentable": "a string with a lone surrogate"}
    inner = marked["deep"]
    levels = 0
    while isinstance(inner, list):
        inner, levels = inner[0], levels + 1
    assert inner == {"$unrepresentable": "nested deeper than 100 levels"}
    assert levels == 100
