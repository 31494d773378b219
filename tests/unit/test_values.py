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
