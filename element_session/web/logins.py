"""Browser logins: the account's credentials sealed into the signed session cookie, and CSRF tokens.

The session cookie (Starlette's ``SessionMiddleware``: signed with itsdangerous, HttpOnly,
SameSite=Lax, Secure over HTTPS) can be read by whoever holds it, so the password is never put in
it as such: :class:`Sealer` encrypts the account name and password with Fernet (AES-128-CBC with
HMAC-SHA256, from ``cryptography``) under a key derived from the server's secret, and the cookie
holds only that token. Every worker process of one ``serve`` derives the same key from the same
secret, so a login works whichever worker answers; a new secret (a restart without
``ELEMENT_SESSION_WEB_SECRET``) ends every login. Tokens expire after ``LOGIN_HOURS``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from cryptography.fernet import Fernet, InvalidToken

from .accounts import Credentials

LOGIN_HOURS = 12
SESSION_KEY = "login"  # the sealed credentials in the session cookie
CSRF_KEY = "csrf"  # the session's CSRF token
CSRF_FIELD = "csrf_token"  # the hidden form field carrying it


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A 32-byte key for one ``purpose`` derived from the server's secret."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


class Sealer:
    """Seals credentials into an encrypted, authenticated, expiring token, and opens such tokens."""

    def __init__(self, secret: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(derive_key(secret, "element-session login")))

    def seal(self, credentials: Credentials) -> str:
        text = json.dumps({"user": credentials.user, "password": credentials.password})
        return self._fernet.encrypt(text.encode("utf-8", "surrogatepass")).decode("ascii")

    def open(self, token: object) -> Credentials | None:
        """The credentials of ``token``, or None if it is missing, forged, tampered with or expired."""
        if not isinstance(token, str):
            return None
        try:
            data = json.loads(self._fernet.decrypt(token.encode("ascii"), ttl=LOGIN_HOURS * 3600))
        except (InvalidToken, ValueError, UnicodeError):
            return None
        return Credentials(data["user"], data["password"])


def csrf_token(session: dict) -> str:
    """The session's CSRF token (made on first use)."""
    if not isinstance(session.get(CSRF_KEY), str):
        session[CSRF_KEY] = secrets.token_urlsafe(32)
    return session[CSRF_KEY]


def csrf_valid(session: dict, posted: object) -> bool:
    """Whether a posted CSRF token is the session's."""
    expected = session.get(CSRF_KEY)
    return isinstance(expected, str) and isinstance(posted, str) and hmac.compare_digest(expected, posted)
