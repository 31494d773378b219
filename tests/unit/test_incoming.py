"""``mg.api.incoming`` reads a request as Quart's request object did: query parameters as
Werkzeug's ``request.args``, headers as Werkzeug's ``Headers`` (first value, every value) and
as the handlers' header map, the declared body length as Werkzeug's ``content_length``."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.datastructures import Headers, MultiDict
from werkzeug.sansio.request import Request as WerkzeugRequest
from werkzeug.sansio.utils import get_content_length

from mg.api.incoming import Incoming, declared_length, query_pairs, single_values
from mg.errors import InvalidRequest

TRICKY_QUERIES = [
    b"",
    b"a=1",
    b"a=1&a=2",
    b"a=1&b=2&a=3",
    b"b=1&a=1&a=2&b=2",
    b"a+b=c+d",
    b"%41=%42",
    b"a%20b=c%2Bd",
    b"a=%zz",
    b"a=%",
    b"a=%4",
    b"a=%%41",
    b"a=%2",
    b"a=%u0041",
    b"a",
    b"a=",
    b"=b",
    b"=",
    b"&&",
    b"a=1&&b=2",
    b"&a=1&",
    b"a==b",
    b"a=1;b=2",
    b"a=1;b=2&c=3",
    b"a=%FF",
    b"a=%ff%fe",
    b"%FF=1",
    b"a=%C3%A9",
    b"a=%C3",
    b"a=%e9t%e9",
    b"a=%ED%A0%80",
    b"x=%F0%9F%98%80",
    b"x=%F0%9F%98",
    b"a[]=1&a[]=2",
    b"wait=1.5&wait",
    b"limit=+5",
    b"limit=%2B5",
    b"direction=back%77ard",
    b"a=%00",
    b"a=\x7f",
    b"a=b=c=d",
    b"+=+",
    b"a=%0A%0D",
]


def _werkzeug_args(query_string: bytes) -> MultiDict[str, str]:
    request = WerkzeugRequest("GET", "http", None, "", "/", query_string, Headers(), None)
    return request.args


def _old_single_values(args: Any) -> dict[str, str]:
    """What the API did with ``request.args`` before (``mg.api.app._single_values``)."""
    found: dict[str, str] = {}
    for key in args:
        items = args.getlist(key)
        if len(items) > 1:
            raise InvalidRequest(f"query parameter {key!r} is given more than once")
        found[key] = items[0]
    return found


def _outcome(function: Any, value: Any) -> Any:
    try:
        return ("value", function(value))
    except InvalidRequest as error:
        return ("refused", str(error))


@pytest.mark.parametrize("query_string", TRICKY_QUERIES, ids=repr)
def test_query_parameters_are_read_as_werkzeug_reads_them(query_string: bytes) -> None:
    expected = _werkzeug_args(query_string)
    found = query_pairs(query_string)
    assert list(MultiDict(found).lists()) == list(expected.lists())
    assert list(MultiDict(found)) == list(expected)
    assert _outcome(single_values, found) == _outcome(_old_single_values, expected)
    request = Incoming(_scope(query_string=query_string), _no_body)
    for name in ("a", "wait", "limit", "x", "", "b", "a b"):
        assert request.argument(name) == expected.get(name)


@pytest.mark.parametrize("query_string", [b"a=\xff", b"\xc3=1", b"a=\xed\xa0\x80"], ids=repr)
def test_bytes_that_are_not_utf8_fail_as_in_werkzeug(query_string: bytes) -> None:
    with pytest.raises(UnicodeDecodeError):
        _werkzeug_args(query_string)
    with pytest.raises(UnicodeDecodeError):
        query_pairs(query_string)


def test_a_parameter_given_twice_names_the_first_such_name() -> None:
    pairs = query_pairs(b"after=1&limit=1&limit=2&after=3")
    with pytest.raises(InvalidRequest, match="query parameter 'after' is given more than once"):
        single_values(pairs)


HEADERS = [
    (b"host", b"mg"),
    (b"x-request-timeout", b"100"),
    (b"Authorization", b"Bearer one"),
    (b"content-type", b"application/json"),
    (b"X-Request-Timeout", b"abc"),
    (b"authorization", b"Bearer two"),
    (b"accept", b"caf\xe9"),
    (b"x-empty", b""),
]


def _quart_headers(headers: list[tuple[bytes, bytes]]) -> Headers:
    """The request headers as Quart built them (``ASGIHTTPConnection``)."""
    found = Headers()
    found["Remote-Addr"] = "127.0.0.1"
    for name, value in headers:
        found.add(name.decode("latin1").title(), value.decode("latin1"))
    return found


@pytest.mark.parametrize("count", range(len(HEADERS) + 1))
def test_headers_are_read_as_werkzeug_reads_them(count: int) -> None:
    headers = HEADERS[:count]
    expected = _quart_headers(headers)
    request = Incoming(_scope(headers=headers), _no_body)
    for name in ("x-request-timeout", "authorization", "content-type", "accept", "x-empty", "nope"):
        assert request.header(name) == expected.get(name)
        assert request.header_values(name) == expected.getlist(name)
    old_map = {k.lower(): v for k, v in expected.items()}
    # Quart's map also held the peer's address (Remote-Addr), which no handler reads.
    del old_map["remote-addr"]
    assert request.header_map() == old_map


@pytest.mark.parametrize(
    "value", [None, "10", " 10 ", "0", "-5", "abc", "+5", "1_0", "", "\u0663", "10 10", "1e3"]
)
def test_the_declared_length_is_read_as_werkzeug_reads_it(value: str | None) -> None:
    assert declared_length(value) == get_content_length(http_content_length=value)


def test_method_and_raw_path() -> None:
    request = Incoming(_scope(method="get", raw_path=b"/v1/a%2Fb"), _no_body)
    assert (request.method, request.raw_path) == ("GET", b"/v1/a%2Fb")
    assert Incoming(_scope(raw_path=None), _no_body).raw_path == b"/v1/x"


async def _no_body(_: Incoming) -> bytes:
    return b""


def _scope(
    *,
    query_string: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    raw_path: bytes | None = b"/v1/x",
) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": "/v1/x",
        "raw_path": raw_path,
        "query_string": query_string,
        "headers": headers or [],
    }
