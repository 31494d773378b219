"""A client request as the API reads it, whichever way it came in: straight from ASGI
(``mg.api.direct``) or through Quart's catch-all rule (``mg.api.app``).

It reads what Quart's request object gave the API before, the same way:

* the method in capitals and the raw path (mg routes on it, ``mg.api.routes``);
* headers by name, case-insensitively: ``header`` is the first value (Werkzeug's
  ``headers.get``), ``header_values`` every value in order (``getlist``), ``header_map`` one
  value per lowercase name, the last one given (the handlers' ``Call.headers``);
* query parameters exactly as Werkzeug's ``request.args`` parses them (``query_pairs``);
* the body through the reader its driver gives (``body``): the direct path reads ASGI
  messages itself, the catch-all asks Quart.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote

from mg.errors import InvalidRequest, PayloadTooLarge

# Reads the body of the request it is given; each driver has its own.
BodyReader = Callable[["Incoming"], Awaitable[bytes]]

# Werkzeug's _plain_int: ASCII digits with an optional minus, surrounding white space allowed.
_PLAIN_INTEGER = re.compile(r"-?[0-9]+")


def _requote(error: UnicodeError) -> tuple[str, int]:
    """Bytes of a query that are not UTF-8 once unquoted stay percent-encoded (Werkzeug's
    ``werkzeug.url_quote`` error handler, since Werkzeug 2.3)."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return quote(error.object[error.start : error.end], safe=""), error.end


codecs.register_error("mg.url_quote", _requote)


def query_pairs(query_string: bytes) -> list[tuple[str, str]]:
    """The query's (name, value) pairs in order, as Werkzeug's ``request.args`` holds them:
    ``&`` separates (``;`` does not), ``+`` is a space, empty values are kept, a pair without
    ``=`` has an empty value, invalid escapes stay as they are. Bytes that are not UTF-8 fail
    here as they failed in Werkzeug (``UnicodeDecodeError``)."""
    if not query_string:
        return []
    return parse_qsl(query_string.decode(), keep_blank_values=True, errors="mg.url_quote")


def single_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Query parameters; a parameter given twice is refused rather than guessed at (the first
    such name in the order names first appear, as when iterating Werkzeug's MultiDict)."""
    found: dict[str, str] = {}
    repeated = False
    for key, value in pairs:
        if key in found:
            repeated = True
        else:
            found[key] = value
    if repeated:
        counts = Counter(key for key, _ in pairs)
        first = next(key for key in found if counts[key] > 1)
        raise InvalidRequest(f"query parameter {first!r} is given more than once")
    return found


def declared_length(value: str | None) -> int | None:
    """The body length a ``Content-Length`` value declares, as Werkzeug reads it: absent is
    None, not a plain integer is 0, negative is 0. (With ``Transfer-Encoding`` it would be None
    too, but the front door refuses the two together.)"""
    if value is None:
        return None
    text = value.strip()
    if _PLAIN_INTEGER.fullmatch(text) is None:
        return 0
    return max(0, int(text))


def too_large(max_body_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the body is larger than {max_body_bytes} bytes")


class BodyTimeout(Exception):
    """The body did not arrive within the body timeout. Deliberately not an ``MgError``: Quart
    raised Werkzeug's ``RequestTimeout`` here, which the API answered as an unexpected error
    (500, logged with its traceback); the direct path answers the same."""


class Incoming:
    """One client request: see the module's docstring."""

    __slots__ = (
        "_first",
        "_last",
        "_pairs",
        "_read_body",
        "_repeated",
        "method",
        "raw_path",
        "scope",
    )

    def __init__(self, scope: Mapping[str, Any], read_body: BodyReader) -> None:
        self.scope: Any = scope
        self.method: str = scope["method"].upper()
        raw: bytes | None = scope.get("raw_path")
        self.raw_path: bytes = raw if raw is not None else str(scope["path"]).encode()
        self._read_body = read_body
        first: dict[str, str] = {}
        last: dict[str, str] = {}
        repeated: set[str] = set()
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            last[key] = text
            if key in first:
                repeated.add(key)
            else:
                first[key] = text
        self._first = first
        self._last = last
        self._repeated = repeated
        self._pairs: list[tuple[str, str]] | None = None

    async def body(self) -> bytes:
        return await self._read_body(self)

    def header(self, name: str) -> str | None:
        """The first value of a header (``name`` in lowercase)."""
        return self._first.get(name)

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, in order (``name`` in lowercase)."""
        if name not in self._repeated:
            found = self._first.get(name)
            return [] if found is None else [found]
        return [
            value.decode("latin-1")
            for key, value in self.scope["headers"]
            if key.decode("latin-1").lower() == name
        ]

    def header_map(self) -> dict[str, str]:
        """One value per lowercase header name: the last one given."""
        return self._last

    def query_pairs(self) -> list[tuple[str, str]]:
        if self._pairs is None:
            self._pairs = query_pairs(self.scope.get("query_string") or b"")
        return self._pairs

    def argument(self, name: str) -> str | None:
        """The first value of a query parameter."""
        for key, value in self.query_pairs():
            if key == name:
                return value
        return None
