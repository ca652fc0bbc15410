"""The ASGI application: routes, logins, CSRF and the one map from errors to HTTP statuses.

- JSON API (``/api/...``): HTTP Basic with a database account (401 without or with wrong
  credentials); ``GET`` also accepts a browser login, so that pages can link the CSV download.
- Pages: a login form posts to ``/login``; the session cookie then holds the sealed credentials
  (:mod:`element_session.web.logins`). Every form that writes carries the session's CSRF token; a
  POST without it, or with another, is refused (403) before anything else is looked at.

Errors map to statuses in :func:`_status`: invalid input 400, a conflict with stored rows 409, a
refusal by the database 403, no such session 404, an unreachable database (or a deadlock that
persisted: try again) 503.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import formats
from ..errors import (
    ConflictError,
    CsrfError,
    DatabaseBusyError,
    DatabaseUnreachableError,
    ElementSessionError,
    InputError,
    InputProblem,
    LoginRefusedError,
    LoginRequiredError,
    PermissionDeniedError,
    SessionNotFoundError,
)
from ..ingest.readers import no_duplicate_keys
from . import forms, plot, service
from .accounts import Accounts, Credentials
from .logins import CSRF_FIELD, SESSION_KEY, Sealer, csrf_token, csrf_valid, derive_key

PAGE_SIZE = 50
MAX_BODY = 64 * 2**20  # bytes of a posted list of sessions (about 100,000 sessions)
COOKIE = "element_session"


def _status(err: BaseException) -> int:
    for kind, status in (
        (CsrfError, 403), (LoginRequiredError, 401), (ConflictError, 409), (InputError, 400),
        (PermissionDeniedError, 403), (SessionNotFoundError, 404), (DatabaseUnreachableError, 503),
        (DatabaseBusyError, 503),
        (ElementSessionError, 400),
    ):  # fmt: skip
        if isinstance(err, kind):
            return status
    raise err


def problems_json(err: InputError) -> list[dict[str, Any]]:
    """The problems of ``err`` as JSON objects: row (from 1, or null), column, value and reason."""
    return [
        {"row": p.row, "column": p.column, "value": p.value if _jsonable(p.value) else repr(p.value),
         "reason": p.reason}
        for p in err.problems
    ]  # fmt: skip


def _headline(err: BaseException) -> str:
    """The first line of an error's message (an InputError lists its problems on the lines after it)."""
    return str(err).split("\n")[0].rstrip(":")


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


class _CookieBySchemeMiddleware:
    """The session cookie, marked Secure when the request came over HTTPS (plain HTTP on 127.0.0.1 works)."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        options = {"session_cookie": COOKIE, "same_site": "lax", "max_age": None}
        self.plain = SessionMiddleware(app, secret, https_only=False, **options)
        self.secure = SessionMiddleware(app, secret, https_only=True, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secure = scope.get("scheme") in ("https", "wss")
        await (self.secure if secure else self.plain)(scope, receive, send)


class WebApp:
    """The routes of one served pipeline; ``accounts`` holds the logged-in accounts' connections."""

    def __init__(self, pipeline: ModuleType, secret: bytes) -> None:
        self.pipeline = pipeline
        self.accounts = Accounts(pipeline, pipeline.session.Session.connection, derive_key(secret, "cache"))
        self.sealer = Sealer(secret)
        self.templates = Environment(
            loader=PackageLoader("element_session.web", "templates"), autoescape=select_autoescape(default=True)
        )
        self.templates.globals["urlencode"] = urlencode

    # -- logins --------------------------------------------------------------------------------
    @staticmethod
    def basic_credentials(request: Request) -> Credentials | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return Credentials(user, password) if sep and user else None

    def cookie_credentials(self, request: Request) -> Credentials | None:
        return self.sealer.open(request.session.get(SESSION_KEY))

    async def as_account(self, credentials: Credentials | None, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(user, *args)`` in a worker thread as the account of ``credentials``."""
        if credentials is None:
            raise LoginRequiredError("log in with a database account")

        def run() -> Any:
            with self.accounts.use(credentials) as user:
                return work(user, *args)

        return await run_in_threadpool(run)

    # -- rendering -----------------------------------------------------------------------------
    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        credentials = self.cookie_credentials(request)
        context.update(
            request=request, csrf=csrf_token(request.session), csrf_field=CSRF_FIELD,
            user=credentials.user if credentials else None,
        )  # fmt: skip
        return Response(self.templates.get_template(name).render(context), status, media_type="text/html")

    def error_page(self, request: Request, err: BaseException) -> Response:
        status = _status(err)
        if status == 401:  # no login, or one the database no longer accepts
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse("/login?" + urlencode({"next": target}), 303)
        problems = err.problems if isinstance(err, InputError) else []
        return self.page(request, "error.html", status, code=status, message=_headline(err),
                         problems=problems)  # fmt: skip

    @staticmethod
    def api_error(err: BaseException) -> Response:
        status = _status(err)
        headers = {"WWW-Authenticate": 'Basic realm="element-session", charset="UTF-8"'} if status == 401 else None
        body: dict[str, Any] = {"error": _headline(err)}
        if isinstance(err, InputError):
            body["problems"] = problems_json(err)
        return JSONResponse(body, status, headers=headers)

    async def check_csrf(self, request: Request) -> dict[str, str | list[str]]:
        """The posted form (a field given twice is a list); raises :class:`CsrfError` without the session's token."""
        form = await request.form()
        fields: dict[str, Any] = {}
        for name, value in form.multi_items():
            if not isinstance(value, str):
                continue  # a file upload: no form here takes one
            fields[name] = [*fields[name], value] if isinstance(fields.get(name), list) else (
                [fields[name], value] if name in fields else value
            )  # fmt: skip
        if not csrf_valid(request.session, fields.get(CSRF_FIELD)):
            raise CsrfError("the form's CSRF token is missing or wrong: reload the page and send it again")
        return fields

    # -- JSON API ------------------------------------------------------------------------------
    async def api_sessions(self, request: Request) -> Response:
        try:
            if request.method == "POST":
                return await self._api_add(request)
            credentials = self.basic_credentials(request) or self.cookie_credentials(request)
            selection = service.parse_selection(request.query_params.multi_items(), 100)

            def work(user):
                frame, total = service.session_page(user, selection)
                return service.session_records(user, frame), total

            records, total = await self.as_account(credentials, work)
            return JSONResponse(
                {"sessions": records, "total": total, "limit": selection.limit, "offset": selection.offset}
            )
        except ElementSessionError as err:
            return self.api_error(err)

    async def _api_add(self, request: Request) -> Response:
        credentials = self.basic_credentials(request)  # never the cookie: a cross-site form could post it
        if credentials is None:
            raise LoginRequiredError("POST /api/sessions needs HTTP Basic credentials of a database account")
        params = request.query_params.multi_items()
        unknown = [(n, v) for n, v in params if n != "timezone"]
        if unknown or len(params) > 1:
            raise InputError(
                [InputProblem("query", None, n, v, "unknown or repeated parameter: only timezone")
                 for n, v in unknown or params]
            )  # fmt: skip
        timezone = params[0][1] if params else "UTC"
        rows = _rows_of(await _body(request))
        report = await self.as_account(credentials, service.add_sessions, rows, timezone)
        body = {
            "kind": report.kind, "rows": report.rows, "new": report.new, "present": len(report.present),
            "inserted": report.inserted,
        }  # fmt: skip
        return JSONResponse(body, 201 if report.new else 200)

    async def api_sessions_csv(self, request: Request) -> Response:
        try:
            credentials = self.basic_credentials(request) or self.cookie_credentials(request)
            selection = service.parse_selection(request.query_params.multi_items(), 0)

            def work(user):
                stream = io.StringIO(newline="")
                formats.write_sessions_csv(service.all_sessions(user, selection), user.session.Session, stream)
                return stream.getvalue()

            text = await self.as_account(credentials, work)
            return Response(text, media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="sessions.csv"'})  # fmt: skip
        except ElementSessionError as err:
            return self.api_error(err)

    # -- pages ---------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        target = request.query_params.get("next", "/")
        target = target if target.startswith("/") and not target.startswith("//") else "/"
        if request.method == "GET":
            return self.page(request, "login.html", target=target, message=None)
        try:
            fields = await self.check_csrf(request)
        except CsrfError as err:
            return self.page(request, "login.html", 403, target=target, message=str(err))
        user, password = fields.get("username"), fields.get("password")
        if not isinstance(user, str) or not isinstance(password, str) or not user:
            return self.page(request, "login.html", 400, target=target, message="give an account and its password")
        credentials = Credentials(user, password)
        try:
            await self.as_account(credentials, lambda _user: None)
        except (LoginRefusedError, DatabaseUnreachableError) as err:
            return self.page(request, "login.html", _status(err), target=target, message=str(err))
        except PermissionDeniedError as err:
            return self.page(request, "login.html", 403, target=target, message=str(err))
        request.session.clear()  # a new session: a new CSRF token
        request.session[SESSION_KEY] = self.sealer.seal(credentials)
        return RedirectResponse(target, 303)

    async def logout(self, request: Request) -> Response:
        try:
            await self.check_csrf(request)
        except CsrfError as err:
            return self.page(request, "error.html", 403, code=403, message=str(err), problems=[])
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def index(self, request: Request) -> Response:
        try:
            selection = service.parse_selection(request.query_params.multi_items(), PAGE_SIZE)

            def work(user):
                frame, total = service.session_page(user, selection, newest_first=True)
                return _rows_for_page(user, frame), total, formats.subject_attributes(user.session.Session)

            rows, total, subject_keys = await self.as_account(self.cookie_credentials(request), work)
        except ElementSessionError as err:
            return self.error_page(request, err)
        filters = [(n, v) for n, v in request.query_params.multi_items() if n in service.FILTERS and v]
        return self.page(request, "sessions.html", rows=rows, total=total, selection=selection, filters=filters,
                         subject_keys=subject_keys, params=dict(filters), subjects=[v for n, v in filters
                                                                                   if n == "subject"])  # fmt: skip

    async def session(self, request: Request) -> Response:
        try:

            def work(user):
                key = service.parse_session_key(user, request.query_params)
                detail = service.session_detail(user, key)
                return detail, service.key_params(user, detail.record), formats.subject_attributes(user.session.Session)

            detail, key, subject_keys = await self.as_account(self.cookie_credentials(request), work)
        except ElementSessionError as err:
            return self.error_page(request, err)
        return self.page(request, "session.html", d=detail, key=key, subject_keys=subject_keys)

    async def subject(self, request: Request) -> Response:
        try:

            def work(user):
                frame = service.subject_sessions(user, request.query_params)
                records = service.session_records(user, frame)
                keys = formats.subject_attributes(user.session.Session)
                return records, [service.key_params(user, r) for r in records], keys

            records, keys, subject_keys = await self.as_account(self.cookie_credentials(request), work)
        except ElementSessionError as err:
            return self.error_page(request, err)
        name = ", ".join(request.query_params.get(k, "") for k in subject_keys)
        return self.page(request, "subject.html", subject_name=name, records=records, keys=keys,
                         svg=plot.sessions_over_time(records))  # fmt: skip

    async def add(self, request: Request) -> Response:
        credentials = self.cookie_credentials(request)
        if credentials is None:
            return self.error_page(request, LoginRequiredError("log in"))
        fields: dict[str, Any] = {}
        try:
            subject_keys = await self.as_account(credentials, lambda u: formats.subject_attributes(u.session.Session))
            if request.method == "GET":
                return self.page(request, "add.html", fields={}, errors={}, subject_keys=subject_keys, message=None,
                                 attributes={})  # fmt: skip
            fields = await self.check_csrf(request)
            row, timezone = forms.session_row(fields, subject_keys)
            await self.as_account(credentials, service.add_sessions, [row], timezone)
        except InputError as err:
            return self.page(request, "add.html", _status(err), fields=fields, errors=forms.errors_by_field(err),
                             subject_keys=subject_keys, message=_headline(err),
                             attributes=forms.attribute_pairs(fields))  # fmt: skip
        except (PermissionDeniedError, CsrfError) as err:
            return self.page(request, "add.html", 403, fields=fields, errors={}, subject_keys=subject_keys,
                             message=str(err), attributes=forms.attribute_pairs(fields))  # fmt: skip
        except ElementSessionError as err:
            return self.error_page(request, err)
        return RedirectResponse("/?" + urlencode([("subject", row[k]) for k in subject_keys]), 303)

    async def edit(self, request: Request) -> Response:
        credentials = self.cookie_credentials(request)

        def load(user):
            key = service.parse_session_key(user, request.query_params)
            return key, service.session_record(user, key)

        try:
            key, record = await self.as_account(credentials, load)
        except ElementSessionError as err:
            return self.error_page(request, err)
        fields: dict[str, Any] = {}
        try:
            if request.method == "GET":
                note = record["session_note"] or ""
                return self.page(request, "edit.html", record=record, query=request.url.query, errors={}, note=note,
                                 attributes=record["attributes"], message=None)  # fmt: skip
            fields = await self.check_csrf(request)
            note, attributes = forms.note_and_attributes(fields)
            await self.as_account(credentials, service.update_session, key, note, attributes)
        except InputError as err:
            note, attributes = forms.note_and_attributes(fields, strict=False)
            return self.page(request, "edit.html", _status(err), record=record, query=request.url.query,
                             errors=forms.errors_by_field(err), note=note, attributes=attributes,
                             message=_headline(err))  # fmt: skip
        except ElementSessionError as err:
            return self.error_page(request, err)
        return RedirectResponse("/session?" + request.url.query, 303)

    async def delete(self, request: Request) -> Response:
        credentials = self.cookie_credentials(request)
        try:

            def load(user):
                key = service.parse_session_key(user, request.query_params)
                return key, service.session_record(user, key), service.delete_preview(user, key)

            key, record, preview = await self.as_account(credentials, load)
            if request.method == "GET":
                return self.page(request, "delete.html", record=record, preview=preview, query=request.url.query)
            fields = await self.check_csrf(request)
            if fields.get("confirm") != "yes":
                raise InputError([InputProblem("form", None, "confirm", fields.get("confirm"),
                                                       "tick the box to confirm the delete")])  # fmt: skip
            await self.as_account(credentials, service.delete_session, key)
        except ElementSessionError as err:
            return self.error_page(request, err)
        return RedirectResponse("/", 303)


async def _body(request: Request) -> bytes:
    """The request's body, refused (400) past ``MAX_BODY`` bytes before it is all read."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise InputError([InputProblem("body", None, None, size, f"larger than {MAX_BODY // 2**20} MiB")])
        chunks.append(chunk)
    return b"".join(chunks)


def _rows_of(body: bytes) -> list[dict[str, Any]]:
    """The posted session rows: a JSON list of objects, anything else a 400."""
    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
    except UnicodeDecodeError:
        raise InputError([InputProblem("body", None, None, None, "not UTF-8 text")]) from None
    except json.JSONDecodeError as err:
        raise InputError([InputProblem("body", None, None, None, f"malformed JSON: {err.msg}")]) from None
    except (ValueError, RecursionError) as err:
        raise InputError([InputProblem("body", None, None, None, str(err))]) from None
    if not isinstance(data, list):
        raise InputError([InputProblem("body", None, None, type(data).__name__,
                                               "expected a JSON list of session objects")])  # fmt: skip
    bad = [i for i, row in enumerate(data, start=1) if not isinstance(row, dict)]
    if bad:
        reason = "expected an object of column names to values"
        raise InputError([InputProblem("body", i, None, repr(data[i - 1])[:80], reason) for i in bad])
    return data


def _rows_for_page(user: Any, frame: Any) -> list[dict[str, Any]]:
    records = service.session_records(user, frame)
    rows = []
    for record, (_, row) in zip(records, frame.iterrows(), strict=True):
        local, zone = service.local_time(row["session_datetime_local"]), service.text_or_none(row["session_timezone"])
        rows.append({"record": record, "local": local, "zone": zone,
                     "key": service.key_params(user, record)})  # fmt: skip
    return rows


def create_app(pipeline: ModuleType, secret: bytes) -> ASGIApp:
    """The web application serving ``pipeline`` (an imported pipeline module); ``secret`` keys its cookies."""
    web = WebApp(pipeline, secret)

    routes = [
        Route("/", web.index),
        Route("/login", web.login, methods=["GET", "POST"]),
        Route("/logout", web.logout, methods=["POST"]),
        Route("/session", web.session),
        Route("/subject", web.subject),
        Route("/add", web.add, methods=["GET", "POST"]),
        Route("/edit", web.edit, methods=["GET", "POST"]),
        Route("/delete", web.delete, methods=["GET", "POST"]),
        Route("/api/sessions", web.api_sessions, methods=["GET", "POST"]),
        Route("/api/sessions.csv", web.api_sessions_csv),
        Mount("/static", StaticFiles(packages=[("element_session.web", "static")]), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        web.accounts.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.web = web
    return _CookieBySchemeMiddleware(app, derive_key(secret, "cookie").hex())
