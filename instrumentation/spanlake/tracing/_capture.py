"""The capped request-path encoder, shared with the provider instrumentations (it lives in
:mod:`spanlake.instrumentation._capture`; this name is kept for the manual API)."""

from spanlake.instrumentation._capture import DEFAULT_MAX_BYTES, capture

__all__ = ["DEFAULT_MAX_BYTES", "capture"]
