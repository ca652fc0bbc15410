"""HTML pages: the templates rendered with what every page shows (the account, the CSRF token)."""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import Response

from .logins import CSRF_FIELD, csrf_token


@cache
def _templates() -> Environment:
    templates = Environment(
        loader=PackageLoader("element_session.web", "templates"), autoescape=select_autoescape(default=True)
    )
    templates.globals["urlencode"] = urlencode
    return templates


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    """The template ``name`` rendered with ``context``, the logged-in account and the session's CSRF token."""
    user = request.user.display_name if request.user.is_authenticated else None
    context.update(request=request, csrf=csrf_token(request.session), csrf_field=CSRF_FIELD, user=user)
    return Response(_templates().get_template(name).render(context), status, media_type="text/html")
