"""What every request goes through before its route: the session cookie, the login, the CSRF check.

- :class:`SessionCookieMiddleware`: Starlette's signed session cookie, marked Secure when the
  request came over HTTPS (plain HTTP on 127.0.0.1 works).
- :class:`AccountBackend` (for Starlette's ``AuthenticationMiddleware``): ``request.user`` is the
  :class:`Account` of the request, or unauthenticated. The JSON API (``/api/...``) takes HTTP Basic
  credentials, and for ``GET`` also the browser's login (so that pages can link the CSV download);
  pages take only the browser's login, sealed in the session cookie (:mod:`.logins`).
- :class:`CsrfMiddleware`: a form posted to a page without the session's CSRF token, or with
  another, is refused (403) before the route sees it. The API is not checked: it never takes the
  cookie for a write, so a cross-site form cannot post as the browser's login.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CsrfError
from .accounts import Credentials
from .logins import CSRF_FIELD, SESSION_KEY, Sealer, csrf_valid

COOKIE = "element_session"
API = "/api/"  # the paths of the JSON API start so
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_api(scope: Scope) -> bool:
    """Whether the request is to the JSON API (answered in JSON, logged in with HTTP Basic)."""
    return scope["path"].startswith(API)


class SessionCookieMiddleware:
    """The session cookie, marked Secure when the request came over HTTPS (plain HTTP on 127.0.0.1 works)."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.plain = SessionMiddleware(app, secret, session_cookie=COOKIE, same_site="lax", max_age=None)
        self.secure = SessionMiddleware(
            app, secret, session_cookie=COOKIE, same_site="lax", max_age=None, https_only=True
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure = scope.get("scheme") in ("https", "wss")
        await (self.secure if secure else self.plain)(scope, receive, send)


class Account(BaseUser):
    """A logged-in database account: ``request.user`` of a request with credentials."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.credentials.user


def basic_credentials(authorization: str) -> Credentials | None:
    """The credentials of an HTTP ``Authorization: Basic`` header, or None if it is missing or malformed."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return Credentials(user, password) if sep and user else None


class AccountBackend(AuthenticationBackend):
    """``request.user``: HTTP Basic on the API, else the login sealed in the session cookie (not for an API write)."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if is_api(conn.scope):
            basic = basic_credentials(conn.headers.get("authorization", ""))
            if basic is not None:
                return AuthCredentials(["basic"]), Account(basic)
            if conn.scope["method"] not in SAFE_METHODS:
                return None  # never the cookie for a write: a cross-site form could post it
        sealed = self.sealer.open(conn.session.get(SESSION_KEY))
        return None if sealed is None else (AuthCredentials(["cookie"]), Account(sealed))


class CsrfMiddleware:
    """Refuses a form posted to a page without the session's CSRF token: ``refuse`` answers the :class:`CsrfError`."""

    def __init__(self, app: ASGIApp, refuse: Callable[[Request, CsrfError], Awaitable[Response]]) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or is_api(scope):
            await self.app(scope, receive, send)
            return
        body = await Request(scope, receive).body()
        request = Request(scope, _replay(body, receive))
        async with request.form() as form:
            tokens = form.getlist(CSRF_FIELD)
        if len(tokens) != 1 or not csrf_valid(request.session, tokens[0]):
            err = CsrfError("the form's CSRF token is missing or wrong: reload the page and send it again")
            await (await self.refuse(request, err))(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then what ``receive`` gives (the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
