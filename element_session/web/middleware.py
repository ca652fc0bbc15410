"""What every request goes through before its route: the session cookie, the login, the CSRF check.

- :class:`SessionCookieMiddleware`: Starlette's signed session cookie, marked Secure when the
  request came over HTTPS (plain HTTP on 127.0.0.1 works).
- :class:`AccountBackend` (for Starlette's ``AuthenticationMiddleware``): ``request.user`` is the
  :class:`Account` of the request, or unauthenticated. The JSON API (``/api/...``) takes HTTP Basic
  credentials, and for ``GET`` also the browser's login (so that pages can link the CSV download);
  pages take only the browser's login, sealed in the session cookie (:mod:`.logins`).
- :class:`CsrfMiddleware`: a form posted to a page without the session's CSRF token, or with
  another, is refused (403) before the route sees it. The API never takes the cookie for a write;
  and since a browser may also hold cached HTTP Basic credentials, an API write must say it is
  JSON (``Content-Type: application/json``), which a cross-site form cannot send without the
  server's consent (CORS preflight; this server grants none).
- :class:`SecurityHeadersMiddleware`: every answer forbids framing (``X-Frame-Options``, CSP
  ``frame-ancestors``), loads nothing but this server's own files (CSP), does not let the browser
  guess types (``X-Content-Type-Options``) and sends no page address to other sites
  (``Referrer-Policy``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CsrfError
from .accounts import Credentials
from .logins import CSRF_FIELD, SESSION_KEY, Sealer, csrf_valid

COOKIE = "element_session"
API = "/api/"  # the paths of the JSON API start so
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
JSON = "application/json"  # the only media type of an API write


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
    """Refuses a form posted to a page without the session's CSRF token: ``refuse`` answers the :class:`CsrfError`.

    Only a request one of ``routes`` takes is judged: any other is answered by the router (404, 405) as it is,
    so that an address or a method no route takes is named as such, not as a missing token or JSON body.
    """

    def __init__(
        self, app: ASGIApp, refuse: Callable[[Request, CsrfError], Awaitable[Response]], routes: Sequence[BaseRoute]
    ) -> None:
        self.app = app
        self.refuse = refuse
        self.routes = routes

    def _taken(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or not self._taken(scope):
            await self.app(scope, receive, send)
            return
        if is_api(scope):
            media_type = Headers(scope=scope).get("content-type", "").partition(";")[0].strip().lower()
            if media_type != JSON:
                err = CsrfError(f"an API write must be sent as {JSON} (its Content-Type), not {media_type or 'none'}")
                await (await self.refuse(Request(scope, receive), err))(scope, receive, send)
                return
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


#: The headers every answer carries (:class:`SecurityHeadersMiddleware`).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP answer (a route's own header of the same name is kept)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
