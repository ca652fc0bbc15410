"""Passwords out of text: the value of a known password field becomes ``***``; nothing else changes.

The known fields are where a connection's password is written by the libraries the package uses:

- ``password=VALUE``, ``passwd=VALUE``, ``DJ_PASS=VALUE``, ``MYSQL_PASSWORD=VALUE`` (any name ending
  in ``_pass``, ``_password`` or ``_passwd``), ``PGPASSWORD=VALUE``, ``database.password=VALUE``
  (keyword arguments, libpq connection strings, URL queries, environment listings; the value bare
  or in quotes; names in any case);
- ``"password": "VALUE"`` and ``'passwd': 'VALUE'`` (JSON, settings dicts, DataJoint's ``conn_info``);
- the password of a URL, ``scheme://user:VALUE@host``.

Every value in such a field is masked, the configured password or any other (a wrong one typed by a
user is a secret too). Free text is never searched for the password: replacing each occurrence of a
short password garbled messages ("MySQL" became "M***SQL" for the password "y") and showed it
where the stars fell. A server message that quotes a password in free text is therefore shown as
it is; neither MySQL/MariaDB nor PostgreSQL writes one (they name the account, not its password).
"""

from __future__ import annotations

import re

MASK = "***"

_NAME = r"(?<![\w.])(?:(?:\w*_)?(?:password|passwd|pass)|pgpassword|database\.password)"
_FIELDS = re.compile(
    rf"""(?ix)
      (?P<q>["']){_NAME}(?P=q)\s*:\s*(?P<vq>["'])(?P<quoted>(?:\\.|(?!(?P=vq)).)*)(?P=vq)  # "password": "v"
    | {_NAME}\s*=\s*(?:(?P<eq>["'])(?P<assigned>(?:\\.|(?!(?P=eq)).)*)(?P=eq)       # password='v'
                     |(?P<bare>[^\s,;&)'"]+))                                       # password=v
    | \b[a-z][a-z0-9+.-]*://[^\s:/@]*:(?P<url>[^\s/@]*)@                            # scheme://user:v@
    """
)


def without_password(text: str) -> str:
    """``text`` with the value of every known password field (see the module) replaced by ``***``.

    Text outside those fields is returned unchanged, character for character.
    """

    def mask(match: re.Match[str]) -> str:
        group = next(name for name in ("quoted", "assigned", "bare", "url") if match[name] is not None)
        start, end = match.span(group)
        whole = match[0]
        return whole[: start - match.start()] + MASK + whole[end - match.start() :]

    return _FIELDS.sub(mask, text)
