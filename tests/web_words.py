"""People's words on pages: no Python repr, traceback or DataJoint hint outside a folded traceback."""

from __future__ import annotations

import re

#: Text that shows a page speaks Python to people (a repr of a dict or datetime, an exception, an API hint).
REPR_LIKE = ("{'", "{\"", "datetime.datetime(", "datetime.date(", "Traceback", "create_schema=True", "Decimal(",
             "numpy.", "np.int", "<class '", "object at 0x", "DataJointError", "pymysql", "psycopg")  # fmt: skip
_FOLDED = re.compile(r"<details>.*?</details>", re.S)  # a traceback folded under its error is allowed


def repr_like(html: str) -> list[str]:
    """The repr-like fragments of a page's HTML, outside ``<details>`` (and with HTML's quote entities read)."""
    text = _FOLDED.sub("", html).replace("&#39;", "'").replace("&#34;", '"').replace("&quot;", '"')
    return [fragment for fragment in REPR_LIKE if fragment in text]


def assert_in_words(html: str) -> None:
    """Fail, showing the fragment and its surroundings, if the page holds repr-like text."""
    found = repr_like(html)
    if found:
        text = _FOLDED.sub("", html).replace("&#39;", "'")
        at = text.find(found[0].replace("&#39;", "'"))
        raise AssertionError(f"repr-like text {found} on the page: ...{text[max(0, at - 200) : at + 200]}...")
