"""The exception handler: a typed error as an HTTP status, in JSON for the API and as a page otherwise.

The one map from errors to statuses is :data:`STATUSES`: invalid input 400, a conflict with stored
rows 409, a refusal by the database (or a form without its CSRF token) 403, no such session 404, an
unreachable database (or a deadlock that persisted: try again) 503, no login 401 (a page redirects
to the login form instead). Starlette's own refusals, an address no route serves (404) and a method a
route does not take (405), are answered the same way (:func:`handle_http`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..errors import (
    ConflictError,
    CsrfError,
    DatabaseBusyError,
    DatabaseUnreachableError,
    ElementSessionError,
    InputError,
    InputProblem,
    LoginRequiredError,
    PermissionDeniedError,
    SessionNotFoundError,
)
from .logins import CSRF_FIELD
from .middleware import is_api
from .pages import page

#: The HTTP status of each typed error: the first class the error is an instance of (any other: 400).
STATUSES: tuple[tuple[type[ElementSessionError], int], ...] = (
    (CsrfError, 403),
    (LoginRequiredError, 401),
    (ConflictError, 409),
    (InputError, 400),
    (PermissionDeniedError, 403),
    (SessionNotFoundError, 404),
    (DatabaseUnreachableError, 503),
    (DatabaseBusyError, 503),
)


def status_of(err: Exception) -> int:
    """The HTTP status answering ``err`` (:data:`STATUSES`)."""
    return next((status for kind, status in STATUSES if isinstance(err, kind)), 400)


def headline(err: BaseException) -> str:
    """The first line of an error's message (an InputError lists its problems on the lines after it)."""
    return str(err).split("\n")[0].rstrip(":")


def problems_json(problems: list[InputProblem]) -> list[dict[str, Any]]:
    """``problems`` (of an InputError) as JSON objects: row (from 1, or null), column, value and reason."""
    return [
        {
            "row": p.row,
            "column": p.column,
            "value": p.value if _jsonable(p.value) else repr(p.value),
            "reason": p.reason,
        }
        for p in problems
    ]


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


async def handle_error(request: Request, err: Exception) -> Response:
    """The answer to a typed error (:class:`ElementSessionError`) raised by a route or refused by a middleware.

    A page's form of this server refused for its CSRF token (an older login's page, or the login has ended) is
    answered by :func:`resend`: what was typed is kept.
    """
    if isinstance(err, CsrfError) and not is_api(request.scope) and _from_this_server(request):
        kept = await typed_fields(request)
        if kept:  # not "reload the page": that would lose what was typed
            ended = not request.user.is_authenticated
            why = "your login had ended" if ended else "the form came from a page of an earlier login"
            return resend(request, kept, 403, f"Not sent: {why}")
    status = status_of(err)
    if status == 401 and not is_api(request.scope):  # no login, or one the database no longer accepts
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), 303)
    headers = {"WWW-Authenticate": 'Basic realm="element-session", charset="UTF-8"'} if status == 401 else None
    problems = err.problems if isinstance(err, InputError) else None
    return _answer(request, status, headline(err), problems, headers)


async def handle_http(request: Request, err: Exception) -> Response:
    """The answer to Starlette's :class:`HTTPException`: an address no route serves (404), a method the route
    does not take (405, with its ``Allow`` header), as every other error is answered (:func:`handle_error`)."""
    assert isinstance(err, HTTPException)  # the only kind it is registered for (app.create_app)
    path, headers = request.url.path, dict(err.headers or {})
    if err.status_code == 404:
        message = f"{path} is no address of this server"
    elif err.status_code == 405:  # Starlette lists the route's methods in the order of a set: sorted here
        headers["Allow"] = ", ".join(sorted(m.strip() for m in headers.get("Allow", "").split(",") if m.strip()))
        message = f"{request.method} is not taken at {path}: it takes {headers['Allow'] or 'no method'}"
    else:
        message = err.detail
    return _answer(request, err.status_code, message, None, headers)


#: The fields of the add, edit, delete and jobs forms in the words of their labels (:func:`resend` shows them).
FIELD_WORDS = {"subject": "Subject", "session_datetime": "Start time", "timezone": "Zone",
               "session_id": "Session number", "experimenter": "Experimenters", "project": "Projects",
               "session_dir": "Directory", "session_note": "Note", "attr_name": "Attribute", "attr_value": "Its value",
               "confirm": "Delete confirmed", "table": "Table"}  # fmt: skip
RESEND = "resend."  # the prefix of a kept field carried through the login form (:func:`resend`)


def _from_this_server(request: Request) -> bool:
    """Whether the browser says the form was posted from a page of this server (``Origin``, else ``Referer``).

    Only such a form is offered to be sent again (:func:`resend`): another site's form must never be.
    """
    sent_from = request.headers.get("origin") or request.headers.get("referer") or ""
    return urlsplit(sent_from).netloc == request.url.netloc and urlsplit(sent_from).scheme == request.url.scheme


async def typed_fields(request: Request) -> list[tuple[str, str]]:
    """The text fields of a posted page form, as typed (those carried through the login form unprefixed); never
    the CSRF token nor a login's account or password; none of the login and logout forms' own."""
    fields = [(n, v) for n, v in (await request.form()).multi_items() if isinstance(v, str)]
    carried = [(n.removeprefix(RESEND), v) for n, v in fields if n.startswith(RESEND)]
    if request.url.path in ("/login", "/logout"):
        return carried
    return [(n, v) for n, v in fields if n not in (CSRF_FIELD, "username", "password")]


def resend(request: Request, fields: list[tuple[str, str]], status: int, message: str) -> Response:
    """The page that keeps a form's typed ``fields`` when it could not be taken (``message`` says why): sent again
    with a fresh CSRF token, or first through the login form where there is no login."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.url.path == "/login":  # the fields were carried through the login form: to the form's address
        given = request.query_params.get("next", "/")
        target = given if given.startswith("/") and not given.startswith("//") else "/"
    style = "error" if status >= 400 else "warning"
    fields_words = [(FIELD_WORDS.get(name, name), value) for name, value in fields if value]
    return page(request, "resend.html", status, message=message, style=style, fields=fields, target=target,
                prefix=RESEND, typed=fields_words)  # fmt: skip


def _answer(
    request: Request, status: int, message: str, problems: list[InputProblem] | None, headers: Mapping[str, str] | None
) -> Response:
    """An error in JSON for the API (``error``, and ``problems`` of an InputError), else as the error page."""
    if is_api(request.scope):
        body: dict[str, Any] = {"error": message}
        if problems is not None:
            body["problems"] = problems_json(problems)
        return JSONResponse(body, status, headers=headers)
    return page(request, "error.html", status, headers=headers, code=status, message=message, problems=problems or [])
