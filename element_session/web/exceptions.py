"""The exception handler: a typed error as an HTTP status, in JSON for the API and as a page otherwise.

The one map from errors to statuses is :data:`STATUSES`: invalid input 400, a conflict with stored
rows 409, a refusal by the database (or a form without its CSRF token) 403, no such session 404, an
unreachable database (or a deadlock that persisted: try again) 503, no login 401 (a page redirects
to the login form instead).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..errors import (
    ConflictError,
    CsrfError,
    DatabaseBusyError,
    DatabaseUnreachableError,
    ElementSessionError,
    InputError,
    LoginRequiredError,
    PermissionDeniedError,
    SessionNotFoundError,
)
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


def problems_json(err: InputError) -> list[dict[str, Any]]:
    """The problems of ``err`` as JSON objects: row (from 1, or null), column, value and reason."""
    return [
        {
            "row": p.row,
            "column": p.column,
            "value": p.value if _jsonable(p.value) else repr(p.value),
            "reason": p.reason,
        }
        for p in err.problems
    ]


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


async def handle_error(request: Request, err: Exception) -> Response:
    """The answer to a typed error (:class:`ElementSessionError`) raised by a route or refused by a middleware."""
    status = status_of(err)
    if is_api(request.scope):
        headers = {"WWW-Authenticate": 'Basic realm="element-session", charset="UTF-8"'} if status == 401 else None
        body: dict[str, Any] = {"error": headline(err)}
        if isinstance(err, InputError):
            body["problems"] = problems_json(err)
        return JSONResponse(body, status, headers=headers)
    if status == 401:  # no login, or one the database no longer accepts
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), 303)
    problems = err.problems if isinstance(err, InputError) else []
    return page(request, "error.html", status, code=status, message=headline(err), problems=problems)
