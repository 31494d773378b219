"""Bearer-token authentication of the client API: the one place requests are let in.

Tokens are configured per client (``[auth.tokens.<name>]``) with the namespaces and sinks they
may use. mg keeps only their SHA-256 digests, compares a presented token against every
configured digest in constant time (no early exit, so timing says nothing about which or how
much matched), and never logs either. No token, a malformed header or an unknown token is
``401 unauthorized``; a known token used on a namespace or sink it is not allowed is
``403 forbidden``, also for namespaces that do not exist, so tokens cannot probe for names.
"""

from __future__ import annotations

import hashlib
import hmac

from mg.errors import Forbidden, Unauthorized
from mg.settings import Auth, Token

ANY = "*"


class Authenticator:
    def __init__(self, auth: Auth) -> None:
        self._enabled = auth.enabled
        self._tokens = auth.tokens

    @property
    def enabled(self) -> bool:
        return self._enabled

    def _find(self, presented: str) -> Token | None:
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        found: Token | None = None
        for token in self._tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found

    def check(self, authorization: str | None, *, ns: str | None, sink: str | None) -> str | None:
        """The name of the token that may make this request (None when auth is off); raises
        ``Unauthorized`` or ``Forbidden``."""
        if not self._enabled:
            return None
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Unauthorized("this API needs an Authorization: Bearer <token> header")
        token = self._find(credentials)
        if token is None:
            raise Unauthorized("the bearer token is not one this service knows")
        if ns is not None and not _allows(token.namespaces, ns):
            raise Forbidden(f"token {token.name!r} may not use namespace {ns!r}")
        if sink is not None and not _allows(token.sinks, sink):
            raise Forbidden(f"token {token.name!r} may not read sink {sink!r}")
        return token.name


def _allows(allowed: tuple[str, ...], name: str) -> bool:
    return ANY in allowed or name in allowed
