"""HTML pages: the templates rendered with what every page shows (account, CSRF token, the last write's message).

A write ends with a redirect; :func:`flash` keeps its message (and the key of the session it
wrote, so that the next page marks that row) in the session cookie until the next page shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import Response

from ..formats import key_text, value_text
from .logins import CSRF_FIELD, csrf_token
from .middleware import Account
from .service import kept_rights

FLASH = "flash"  # the session cookie's entry holding the message of the last write


def flash(request: Request, text: str, key: dict[str, str] | None = None, *, changed: bool = True) -> None:
    """Keep ``text`` (and the written session's key as text parameters) for the next page to show once.

    ``changed``: whether the write changed anything. The one rule of the message's style: a write
    that changed something is shown as done (``flash``, green); a refusal or a write that changed
    nothing (``Not saved: ...``, ``Nothing to save``, ``Already present``) as a warning (``warning``).
    """
    request.session[FLASH] = {"text": text, "key": key, "style": "flash" if changed else "warning"}


@cache
def _templates() -> Environment:
    templates = Environment(
        loader=PackageLoader("element_session.web", "templates"), autoescape=select_autoescape(default=True)
    )
    templates.globals["urlencode"] = urlencode
    templates.globals["key_text"] = key_text  # a key as every output shows it (times UTC, with their offset)
    templates.globals["value_text"] = value_text  # one value of it so (a form's key field, read back as the time)
    return templates


def page(
    request: Request, name: str, status: int = 200, *, headers: Mapping[str, str] | None = None, **context: Any
) -> Response:
    """The template ``name`` rendered with ``context``, the logged-in account and the session's CSRF token.

    A page not given the account's ``rights`` shows the navigation by those last found for it, if any
    (:func:`~.service.kept_rights`: the database is not asked, as on an error page answering its failure).
    """
    user = request.user.display_name if request.user.is_authenticated else None
    if "rights" not in context and isinstance(request.user, Account):
        context["rights"] = kept_rights(request.app.state.accounts, request.user.credentials)
    context.update(request=request, csrf=csrf_token(request.session), csrf_field=CSRF_FIELD, user=user)
    context["flash"] = request.session.pop(FLASH, None) if status < 300 else None
    return Response(_templates().get_template(name).render(context), status, headers, media_type="text/html")


def page_numbers(current: int, last: int, around: int = 2) -> list[int | None]:
    """The page numbers to link: the first, the last, and ``around`` either side of ``current``; None for a gap."""
    shown = sorted({1, last, *range(max(1, current - around), min(last, current + around) + 1)})
    numbers: list[int | None] = []
    for number in shown:
        if numbers and number - (numbers[-1] or 0) > 1:
            numbers.append(None)
        numbers.append(number)
    return numbers
