"""Store URIs (SQLAlchemy style, as MLflow users know them) and the scheme registry.

``sqlite:///relative/path.db`` (three slashes: relative to the working directory),
``sqlite:////absolute/path.db`` (four: absolute); the lake stores follow the same rule
(``parquet:///rel/dir``, ``delta:////abs/dir``) and ``delta+s3://bucket/prefix`` style
object-store URIs. A bad URI or unknown scheme is a :class:`ConfigError` at start-up; a
store that cannot be opened (unwritable path, missing directory, unreachable bucket) is a
:class:`StoreError`, whatever the backend raised underneath.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass

from spanlake.exporter.errors import ConfigError, SpanlakeError, StoreError
from spanlake.exporter.store.base import Store

ENV_STORE = "SPANLAKE_STORE"
DEFAULT_STORE_URI = "sqlite:///spanlake.db"

#: scheme -> "module:factory"; the factory takes a :class:`StoreURI`. Imported lazily so
#: that optional dependencies (deltalake) load only when their scheme is used.
_FACTORIES: dict[str, str] = {
    "sqlite": "spanlake.exporter.store.sqlite:open_sqlite_store",
    "parquet": "spanlake.exporter.store.parquet:open_parquet_store",
    "delta": "spanlake.exporter.store.delta:open_delta_store",
}


@dataclass(frozen=True, slots=True)
class StoreURI:
    """A parsed store URI: ``scheme`` (``sqlite``), optional ``backend`` (``s3`` in
    ``delta+s3://``) and ``path`` (a local filesystem path, or ``bucket/prefix``)."""

    raw: str
    scheme: str
    path: str
    backend: str | None = None

    @property
    def is_local(self) -> bool:
        return self.backend is None


def parse_store_uri(uri: str) -> StoreURI:
    """Parse and validate a store URI; raises ConfigError naming what is wrong."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError(
            f"Invalid store URI {uri!r}: expected e.g. 'sqlite:///spanlake.db', "
            "'parquet:///dir' or 'delta:////abs/dir'"
        )
    scheme_part, rest = uri.split("://", 1)
    scheme, _, backend = scheme_part.lower().partition("+")
    if scheme not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        raise ConfigError(f"Unknown store scheme {scheme_part!r} in {uri!r}; known: {known}")
    if backend:
        if scheme != "delta":
            raise ConfigError(f"Only delta stores take an object-store backend, got {uri!r}")
        if not rest:
            raise ConfigError(f"Invalid store URI {uri!r}: missing bucket/prefix")
        return StoreURI(uri, scheme, rest, backend)
    if not rest.startswith("/"):
        raise ConfigError(
            f"Invalid store URI {uri!r}: use three slashes for a relative path "
            f"('{scheme}:///relative/path') or four for an absolute one ('{scheme}:////abs/path')"
        )
    path = rest[1:]  # strip the slash that separates the empty host
    if not path or path == "/":
        raise ConfigError(f"Invalid store URI {uri!r}: missing path")
    return StoreURI(uri, scheme, os.path.abspath(path))


def open_store(uri: str | None = None) -> Store:
    """Open the store at ``uri`` (else ``$SPANLAKE_STORE``, else ``./spanlake.db``)."""
    parsed = parse_store_uri(uri or os.environ.get(ENV_STORE) or DEFAULT_STORE_URI)
    module_name, _, attr = _FACTORIES[parsed.scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"The {parsed.scheme!r} store needs an optional dependency: {exc}. "
            f"Install it with: pip install 'spanlake[lake]'"
        ) from exc
    factory: Callable[[StoreURI], Store] = getattr(module, attr)
    try:
        return factory(parsed)
    except SpanlakeError:
        raise
    except Exception as exc:  # OSError, Arrow or Delta errors: one error tree for callers
        raise StoreError(f"cannot open store {parsed.raw!r}: {exc}") from exc
