"""spanlake's errors. They never reach instrumented user code (the exporter contains them).

SpanlakeError
 ├── ConfigError            bad store URI, unknown scheme, missing directory, bad setting
 ├── FilterError            malformed filter_string / order_by (names the bad token)
 ├── NotFoundError          unknown trace / experiment
 └── StoreError             the store failed, or cannot be opened (open_store wraps backend errors)
      └── TransientStoreError   retry later (locked database, busy table, I/O hiccup)
"""

from __future__ import annotations


class SpanlakeError(Exception):
    """Base of every spanlake error."""


class ConfigError(SpanlakeError, ValueError):
    """A setting (store URI, env var) is invalid."""


class FilterError(SpanlakeError, ValueError):
    """A filter or order-by string is malformed; ``position`` and ``token`` point at it."""

    def __init__(self, message: str, *, position: int = -1, token: str = "") -> None:
        super().__init__(message)
        self.position = position
        self.token = token


class NotFoundError(SpanlakeError, KeyError):
    """The trace or experiment does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class StoreError(SpanlakeError):
    """The store failed; nothing of the failed call was committed."""


class TransientStoreError(StoreError):
    """The store is temporarily unavailable; the same call may succeed later."""
