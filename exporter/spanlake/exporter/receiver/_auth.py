"""Optional bearer-token authentication, compared in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

from spanlake.exporter.errors import ConfigError
from spanlake.exporter.receiver._errors import Unauthenticated


def load_token(path: str) -> str:
    """The token in ``path`` (surrounding whitespace ignored); ConfigError if unusable."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read auth token file {path!r}: {exc}") from exc
    if not token:
        raise ConfigError(f"auth token file {path!r} is empty")
    return token


class TokenAuth:
    """Checks ``Authorization: Bearer <token>``; a no-op when no token is configured."""

    def __init__(self, token: str | None) -> None:
        self._expected = token.encode() if token else None

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def check(self, authorization: str | None) -> None:
        if self._expected is None:
            return
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        given = credentials.strip().encode("utf-8", "surrogateescape")
        # compare_digest even on a wrong scheme, so timing says nothing about the token.
        ok = hmac.compare_digest(given, self._expected)
        if not ok or scheme.lower() != "bearer":
            raise Unauthenticated("missing or invalid bearer token")
