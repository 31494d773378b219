"""The console's gate: the API's bearer tokens kept in a cookie, CSRF tokens on forms, and the
headers every console answer carries.

The token is the one the API takes; the login form checks it with the API's ``Authenticator``
and keeps it in an HttpOnly, SameSite=Strict cookie (Secure over TLS), so scripts cannot read
it and other sites cannot send it. CSRF uses a double submit: a random token in its own
HttpOnly, SameSite=Strict cookie, repeated in a hidden field of every form and compared in
constant time on every POST. The console keeps no state of its own.
"""

from __future__ import annotations

import hmac
import secrets

from mg.api.auth import Authenticator
from mg.errors import Forbidden

TOKEN_COOKIE = "mg_console_token"
CSRF_COOKIE = "mg_console_csrf"
CSRF_FIELD = "csrf"
COOKIE_PATH = "/ui"

# No inline script or style anywhere: every script and stylesheet is a file of the package.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class CsrfRefused(Forbidden):
    """A POST without the CSRF token of this browser's cookie."""


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def check_csrf(cookie: str | None, field: str | None) -> None:
    if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
        raise CsrfRefused(
            "the form's CSRF token is missing or does not match this browser's: "
            "reload the page and try again"
        )


def bearer(token: str | None) -> str | None:
    """The Authorization header the API would have received."""
    return f"Bearer {token}" if token else None


def allowed(
    authenticator: Authenticator,
    token: str | None,
    *,
    ns: str | None = None,
    sink: str | None = None,
) -> bool:
    """Whether the token may see a namespace or sink (raises ``Unauthorized`` for a token the
    node does not know)."""
    try:
        authenticator.check(bearer(token), ns=ns, sink=sink)
    except Forbidden:
        return False
    return True
