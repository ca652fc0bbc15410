"""The ASGI application: the routes, and the middleware and exception handler they share.

- Logins (:class:`~.middleware.AccountBackend`): the JSON API (``/api/...``) takes HTTP Basic with a
  database account (401 without or with wrong credentials); ``GET`` also accepts a browser login,
  so that pages can link the CSV download. Pages: a login form posts to ``/login``; the session
  cookie then holds the sealed credentials (:mod:`element_session.web.logins`).
- CSRF (:class:`~.middleware.CsrfMiddleware`): every form that writes carries the session's CSRF
  token; a POST without it, or with another, is refused (403) before anything else is looked at.
- Errors (:func:`~.exceptions.handle_error`): a typed error raised by a route is answered once, with
  the status of :data:`~.exceptions.STATUSES`, in JSON for the API and as a page otherwise; so are an
  address no route serves (404) and a method a route does not take (405) (:func:`~.exceptions.handle_http`).
  Failures of the database are typed once, around the work of a request (:meth:`.Accounts.use`).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.authentication import BaseUser
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from .. import formats
from ..errors import (
    DatabaseUnreachableError,
    ElementSessionError,
    InputError,
    InputProblem,
    LoginRequiredError,
    PermissionDeniedError,
    SessionLockedError,
    not_json,
    one_problem,
)
from ..ingest.readers import no_duplicate_keys
from ..ingest.validate import check_integer
from ..status import LOCKED, STATES, in_words
from . import changes, forms, plot, service
from .accounts import Accounts
from .exceptions import handle_error, handle_http, headline, resend, status_of, typed_fields
from .logins import SESSION_KEY, Sealer, derive_key
from .middleware import (
    Account,
    AccountBackend,
    CsrfMiddleware,
    SecurityHeadersMiddleware,
    SessionCookieMiddleware,
)
from .pages import flash, page, page_numbers

PAGE_SIZE = 50
PAGE_SIZES = (25, 50, 100, 200)  # the page sizes offered
SHOWN_CHANGES = 10  # changes of a session's history shown before the rest are folded
MAX_BODY = 64 * 2**20  # bytes of a posted list of sessions (about 100,000 sessions)


class WebApp:
    """The routes of one served pipeline; ``accounts`` holds the logged-in accounts' connections."""

    def __init__(self, pipeline: ModuleType, secret: bytes, timezone: str | None = None) -> None:
        self.pipeline = pipeline
        self.timezone = timezone  # the lab's zone: of times without an offset where none is given (service.local_zone)
        self.accounts = Accounts(pipeline, pipeline.session.Session.connection, derive_key(secret, "cache"))
        self.sealer = Sealer(secret)

    async def as_account(self, user: BaseUser, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(account, *args)`` in a worker thread as the database account of ``user`` (``request.user``).

        Raises :class:`LoginRequiredError` when there is no login, and what
        :meth:`~element_session.web.accounts.Accounts.use` raises; a :class:`SessionLockedError`
        of ``work`` says how to reopen the session in words (:func:`~element_session.status.in_words`).
        """
        if not isinstance(user, Account):
            raise LoginRequiredError("log in with a database account")

        def run() -> Any:
            with self.accounts.use(user.credentials) as account:
                try:
                    return work(account, *args)
                except SessionLockedError as err:  # every web answer (page, form, JSON) says how to reopen in words
                    raise in_words(err) from err.__cause__

        return await run_in_threadpool(run)

    # -- JSON API ------------------------------------------------------------------------------
    async def api_sessions(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._api_add(request)
        selection = service.parse_selection(request.query_params.multi_items(), 100, self.timezone)

        def work(user):
            found = service.session_page(user, selection)
            return service.session_records(user, found.rows, found.keys), found

        records, found = await self.as_account(request.user, work)
        past = _past_the_end(request, selection, found)
        if past is not None:
            raise past
        following = None
        if found.next_after is not None:  # the same selection, after this page's last session
            kept = [(n, v) for n, v in request.query_params.multi_items() if n not in ("offset", "page", "after")]
            following = "/api/sessions?" + urlencode([*kept, ("after", found.next_after)])
        return JSONResponse(
            {
                "sessions": records,
                "total": found.total,
                "total_exact": found.exact,
                "limit": selection.limit,
                "offset": selection.offset,
                "next": following,
            }
            | ({"warnings": list(found.unknown)} if found.unknown else {})  # a name that does not exist
        )

    async def _api_add(self, request: Request) -> Response:
        if not request.user.is_authenticated:  # never the cookie (middleware.AccountBackend)
            raise LoginRequiredError("POST /api/sessions needs HTTP Basic credentials of a database account")
        params = request.query_params.multi_items()
        unknown = [(n, v) for n, v in params if n != "timezone"]
        if unknown or len(params) > 1:
            reason = "unknown or repeated parameter: only timezone"
            raise InputError([InputProblem("query", None, n, v, reason) for n, v in unknown or params])
        timezone = service.local_zone(params[0][1] if params else None, self.timezone)
        rows = _rows_of(await _body(request))
        report = await self.as_account(request.user, service.add_sessions, rows, timezone)
        body = {"kind": report.kind, "rows": report.rows, "new": report.new, "present": len(report.present)}
        return JSONResponse({**body, "inserted": report.inserted}, 201 if report.new else 200)

    async def api_sessions_csv(self, request: Request) -> Response:
        selection = service.parse_selection(request.query_params.multi_items(), 0, self.timezone, paged=False)

        def work(user):
            stream = io.StringIO(newline="")
            formats.write_sessions_csv(service.all_sessions(user, selection), user.session.Session, stream)
            return stream.getvalue()

        text = await self.as_account(request.user, work)
        headers = {"Content-Disposition": 'attachment; filename="sessions.csv"'}
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)

    # -- pages ---------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        target = request.query_params.get("next", "/")
        target = target if target.startswith("/") and not target.startswith("//") else "/"
        if request.method == "GET":
            return page(request, "login.html", target=target, message=None)
        fields = await request.form()
        credentials = forms.credentials(fields)
        if credentials is None:
            return page(request, "login.html", 400, target=target, message="give an account and its password")
        try:
            await self.as_account(Account(credentials), lambda _user: None)
        except (LoginRequiredError, DatabaseUnreachableError, PermissionDeniedError) as err:
            return page(request, "login.html", status_of(err), target=target, message=str(err))
        request.session.clear()  # a new session: a new CSRF token
        request.session[SESSION_KEY] = self.sealer.seal(credentials)
        kept = await typed_fields(request)  # a form refused when the login had ended: to be sent again
        if kept:
            request.scope["user"] = Account(credentials)
            return resend(request, kept, 200, "Logged in: send the form again")
        return RedirectResponse(target, 303)

    async def logout(self, request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def index(self, request: Request) -> Response:
        if not isinstance(request.user, Account):
            raise LoginRequiredError("log in with a database account")
        filters = [(n, v) for n, v in request.query_params.multi_items() if n in service.FILTERS and v]
        shown: dict[str, Any] = {
            "filters": filters,
            "params": dict(filters),
            "subjects": [v for n, v in filters if n == "subject"],
            "statuses": [v for n, v in filters if n == "status"],
            "states": STATES,
            "page_sizes": PAGE_SIZES,
            "default_limit": PAGE_SIZE,
            "page_size": _page_size(request),
            "lab_zone": self.timezone,
            "read_zone": service.local_zone(dict(filters).get("timezone"), self.timezone) or "UTC",
        }
        sorts = request.query_params.getlist("sort")
        refused: list[InputProblem] = []
        try:
            shown["sort"] = service.parse_sort(sorts)
        except InputError as err:
            shown["sort"], refused = "-start", err.problems
        try:
            params = [(n, v) for n, v in request.query_params.multi_items() if n != "sort"]
            selection = service.parse_selection(params, PAGE_SIZE, self.timezone)
        except InputError as err:
            refused = [*err.problems, *refused]
        if refused:
            return _refused_list(request, InputError(refused), shown)
        sort = shown["sort"]

        def work(user):
            found = service.session_page(user, selection, newest_first=True, sort=sort)
            subject_keys = formats.subject_attributes(user.session.Session)
            rows = _rows_for_page(user, found.rows)
            return rows, found, subject_keys, service.rights(user), service.choices(user)

        try:
            rows, found, subject_keys, rights, choices = await self.as_account(request.user, work)
        except InputError as err:  # what only the query finds wrong (until not after since): kept in the form too
            return _refused_list(request, err, shown)
        total = found.total
        current = selection.offset // selection.limit + 1 if selection.limit else 1
        last = max(1, -(-total // selection.limit)) if selection.limit else 1
        past = _past_the_end(request, selection, found)
        if past is not None:
            return _refused_list(request, past, shown)
        if not found.exact:  # more than total: number the counted pages, and the current one
            last = max(last, current)
        return page(
            request,
            "sessions.html",
            rows=rows,
            total=total,
            selection=selection,
            subject_keys=subject_keys,
            errors={},
            message=None,
            rights=rights,
            choices=choices,
            current=current,
            page_numbers=page_numbers(current, last),
            exact=found.exact,
            more=found.next_after is not None,
            unknown=found.unknown,
            **shown,
        )

    async def session(self, request: Request) -> Response:
        def work(user):
            key = service.parse_session_key(user, request.query_params.multi_items())
            detail = service.session_detail(user, key)
            subject_keys = formats.subject_attributes(user.session.Session)
            past = changes.session_history(user, key)
            return detail, service.key_params(user, detail.record), subject_keys, service.rights(user), past

        detail, key, subject_keys, rights, past = await self.as_account(request.user, work)
        return page(
            request,
            "session.html",
            d=detail,
            key=key,
            subject_keys=subject_keys,
            rights=rights,
            history=past,
            shown_changes=SHOWN_CHANGES,
        )

    async def subject(self, request: Request) -> Response:
        def work(user):
            found = service.subject_sessions(user, request.query_params.multi_items())
            return _rows_for_page(user, found), formats.subject_attributes(user.session.Session), service.rights(user)

        rows, subject_keys, rights = await self.as_account(request.user, work)
        name = ", ".join(request.query_params.get(k, "") for k in subject_keys)
        timeline = plot.sessions_over_time([row["record"] for row in rows])
        newest_first = sorted(rows, key=lambda row: row["record"]["session_datetime"] or "", reverse=True)
        return page(request, "subject.html", subject_name=name, rows=newest_first, timeline=timeline, rights=rights)

    async def jobs(self, request: Request) -> Response:
        table = request.query_params.get("table") or None
        if request.method == "POST":
            fields = await request.form()
            table = str(fields.get("table") or "")
            key = {name[2:]: str(v) for name, v in fields.items() if name.startswith("k.") and isinstance(v, str)}
            cleared = await self.as_account(request.user, service.clear_errors, table, key or None)
            what = f"the error of {formats.key_text(key)}" if key else "every error"
            text = f"Cleared {what} of {table}: {cleared} key(s) will be made again by the next populate."
            flash(request, text, changed=cleared > 0)
            return RedirectResponse("/jobs?" + urlencode({"table": table}), 303)

        def work(user):
            return service.jobs_view(user, table), service.rights(user)

        view, rights = await self.as_account(request.user, work)
        return page(request, "jobs.html", view=view, table=table, rights=rights)

    async def add(self, request: Request) -> Response:
        def load(user):
            me = service.choices(user)["experimenter"]
            preset = {"experimenter": user.user} if user.user in me else {}  # the account, where it is a person
            return formats.subject_attributes(user.session.Session), service.rights(user), service.choices(user), preset

        subject_keys, rights, choices, preset = await self.as_account(request.user, load)
        form = {"subject_keys": subject_keys, "lab_zone": self.timezone, "rights": rights, "choices": choices}
        if request.method == "GET":
            return page(request, "add.html", fields=preset, errors={}, message=None, attributes={}, **form)
        fields = await request.form()
        try:
            row, timezone = forms.session_row(fields, subject_keys, self.timezone)
            report = await self.as_account(request.user, service.add_sessions, [row], timezone)
            added = await self.as_account(request.user, service.added_session, row, timezone)
        except (InputError, PermissionDeniedError) as err:  # shown with the form, as it was filled in
            errors = forms.errors_by_field(err) if isinstance(err, InputError) else {}
            return page(
                request,
                "add.html",
                status_of(err),
                fields=fields,
                errors=errors,
                message=headline(err),
                attributes=forms.attribute_pairs(fields),
                **form,
            )
        text, key = added
        new = report.new > 0
        flash(request, ("Added " if new else "Already present, nothing changed: ") + text, key, changed=new)
        return RedirectResponse("/?" + urlencode([("subject", row[k]) for k in subject_keys]), 303)

    async def edit(self, request: Request) -> Response:
        def load(user):
            key = service.parse_session_key(user, request.query_params.multi_items())
            record = service.session_record(user, key)
            return key, record, service.session_name(user, record), service.choices(user), service.rights(user)

        key, record, name, choices, rights = await self.as_account(request.user, load)
        query = request.url.query
        shown = {"record": record, "session_name": name, "query": query, "choices": choices, "rights": rights}
        if request.method == "GET":
            stored = forms.SessionEdit(
                record["session_note"] or "",
                record["attributes"],
                record["experimenters"],
                record["projects"],
                record["session_dir"] or "",
            )
            return page(request, "edit.html", errors={}, edit=stored, message=None, **shown)
        fields = await request.form()
        try:
            edit = forms.session_edit(fields)
            changed = await self.as_account(
                request.user,
                lambda user: service.update_session(
                    user,
                    key,
                    edit.note,
                    edit.attributes,
                    experimenters=edit.experimenters,
                    projects=edit.projects,
                    directory=edit.directory,
                ),
            )
        except SessionLockedError as err:  # nothing to correct in the form: the session must be reopened first
            flash(request, f"Not saved: {err.problems[0].reason}", changed=False)
            return RedirectResponse("/session?" + query, 303)
        except InputError as err:  # shown with the form, as it was filled in
            return page(
                request,
                "edit.html",
                status_of(err),
                errors=forms.errors_by_field(err),
                edit=forms.session_edit(fields, strict=False),
                message=headline(err),
                **shown,
            )
        flash(request, "Saved." if changed else "Nothing to save: the session was as stored.", changed=changed)
        return RedirectResponse("/session?" + query, 303)

    async def delete(self, request: Request) -> Response:
        def load(user):
            key = service.parse_session_key(user, request.query_params.multi_items())
            record = service.session_record(user, key)
            preview = service.delete_preview(user, key)
            return key, record, service.session_name(user, record), preview, service.rights(user)

        key, record, name, preview, rights = await self.as_account(request.user, load)
        if request.method == "GET":
            locked = record["status"] in LOCKED
            shown = {"record": record, "session_name": name, "preview": preview, "locked": locked, "rights": rights}
            return page(request, "delete.html", query=request.url.query, **shown)
        confirm = (await request.form()).getlist("confirm")
        if confirm != ["yes"]:
            reason = "tick the box to confirm the delete"
            raise InputError([InputProblem("form", None, "confirm", confirm[-1] if confirm else None, reason)])
        try:
            await self.as_account(request.user, service.delete_session, key)
        except SessionLockedError as err:  # as an edit of it is refused: the session must be reopened first
            flash(request, f"Not deleted: {err.problems[0].reason}", changed=False)
            return RedirectResponse("/session?" + request.url.query, 303)
        flash(request, f"Deleted the session {formats.key_text(key)} and the rows listed with it.")
        return RedirectResponse("/", 303)


def _past_the_end(request: Request, selection: service.Selection, found: service.SessionPage) -> InputError | None:
    """The refusal of a page past the last one (``offset`` or ``page``), in the list and the API alike, or None.

    Only where the matches were counted exactly and no cursor was given; the first page of no match is no refusal.
    """
    if not (found.exact and selection.after is None and 0 < selection.offset >= found.total):
        return None
    name = "page" if "page" in request.query_params else "offset"
    last = max(1, -(-found.total // selection.limit)) if selection.limit else 1
    reason = f"past the last page: {found.total:,} session(s) make {last} page(s) of {selection.limit}"
    return one_problem("query", name, request.query_params[name], reason)


def _page_size(request: Request) -> int:
    """The page size the list was asked for (``limit``), kept in its form also where the query is refused."""
    try:  # read as parse_selection reads it
        return check_integer(request.query_params.get("limit", ""), 1, service.MAX_LIMIT)
    except ValueError:
        return PAGE_SIZE


def _refused_list(request: Request, err: InputError, shown: dict[str, Any]) -> Response:
    """The list page refusing its query (400): the filter form as given, each reason next to its field, and the
    problems of parameters without a field (``page``, ``sort``, ...) in the message, with their values."""
    errors = forms.errors_by_field(err)
    loose = [p for p in err.problems if p.column not in service.FILTERS]
    said = "; ".join(f'parameter {p.column}, value "{str(p.value)[:80]}": {p.reason}' for p in loose)
    return page(
        request,
        "sessions.html",
        status_of(err),
        rows=[],
        total=0,
        selection=None,
        subject_keys=[],
        choices={},
        errors=errors,
        message=f"{headline(err)}: {said}" if said else headline(err),
        **shown,
    )


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
        raise InputError([InputProblem("body", None, None, None, f"the body is {not_json(err)}")]) from None
    except (ValueError, RecursionError) as err:
        raise InputError([InputProblem("body", None, None, None, str(err))]) from None
    if not isinstance(data, list):
        reason = "expected a JSON list of session objects"
        raise InputError([InputProblem("body", None, None, _json_kind(data), reason)])
    bad = [i for i, row in enumerate(data, start=1) if not isinstance(row, dict)]
    if bad:
        reason = "expected an object of column names to values"
        raise InputError([InputProblem("body", i, None, repr(data[i - 1])[:80], reason) for i in bad])
    return data


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in words: ``a JSON object``, ``a JSON string``, ..."""
    kinds = {dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else f"a JSON {kinds.get(type(value), type(value).__name__)}"


def _rows_for_page(user: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a page of sessions lists (the list, a subject's page), from the sessions' ``rows``
    (:attr:`.service.SessionPage.rows`): each session's JSON object, local start, zone, key parameters and
    whether a job of it failed (:func:`~.service.failed_sessions`)."""
    records = service.session_records(user, rows)
    failed = service.failed_sessions(user, rows)
    return [
        {
            "record": record,
            "local": service.local_time(row["session_datetime_local"]),
            "zone": service.text_or_none(row["session_timezone"]),
            "key": service.key_params(user, record),
            "failed": failed[i],
        }
        for i, (row, record) in enumerate(zip(rows, records, strict=True))
    ]


def create_app(pipeline: ModuleType, secret: bytes, timezone: str | None = None) -> ASGIApp:
    """The web application serving ``pipeline`` (an imported pipeline module); ``secret`` keys its cookies.

    ``timezone`` is the lab's zone (``serve --timezone``), preset in the add form and the zone of a time
    without an offset where none is given (:func:`~.service.local_zone`); without it the form's zone
    starts empty and is required, and ``POST /api/sessions`` refuses a time without an offset.
    """
    web = WebApp(pipeline, secret, timezone)

    routes = [
        Route("/", web.index),
        Route("/login", web.login, methods=["GET", "POST"]),
        Route("/logout", web.logout, methods=["POST"]),
        Route("/session", web.session),
        Route("/subject", web.subject),
        Route("/jobs", web.jobs, methods=["GET", "POST"]),
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

    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(SessionCookieMiddleware, secret=derive_key(secret, "cookie").hex()),
        Middleware(AuthenticationMiddleware, backend=AccountBackend(web.sealer)),
        Middleware(CsrfMiddleware, refuse=handle_error, routes=routes),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ElementSessionError: handle_error, HTTPException: handle_http},
        lifespan=lifespan,
    )
    app.state.accounts = web.accounts  # the rights kept for a page's navigation (pages.page)
    return app
