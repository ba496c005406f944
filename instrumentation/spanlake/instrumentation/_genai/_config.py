"""Content-capture settings, read from the environment through one tolerant helper.

``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``: ``NO_CONTENT`` | ``SPAN_ONLY`` |
``EVENT_ONLY`` | ``SPAN_AND_EVENT``, or the legacy ``true`` (= ``SPAN_ONLY``) / ``false``
(= ``NO_CONTENT``). Unset means ``SPAN_ONLY``: spanlake's zero-code promise is that prompts
and responses are recorded (SPEC §2); one variable turns it off. An invalid value logs a
warning once and falls back to the default.

``SPANLAKE_CONTENT_MAX_BYTES``: cap for one content attribute (default 128 KiB).
``SPANLAKE_CAPTURE_BINARY_CONTENT``: ``true`` records image/blob bytes (base64) in
content; by default a blob part keeps only its type, MIME type and size.

The environment is re-read when it changes (a cheap comparison per call, on the raw
values ``os.environ`` keeps: ``os.environ.get`` encodes the key and decodes the value, ~1.3 µs
a variable, which was measurable per LLM call), so tests and long-running apps see a new
setting without re-instrumenting.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from spanlake.semconv.gen_ai import (
    ENV_CAPTURE_MESSAGE_CONTENT,
    ENV_SEMCONV_STABILITY_OPT_IN,
    CaptureMode,
    latest_experimental,
)

ENV_CONTENT_MAX_BYTES: Final = "SPANLAKE_CONTENT_MAX_BYTES"
ENV_CAPTURE_BINARY_CONTENT: Final = "SPANLAKE_CAPTURE_BINARY_CONTENT"
DEFAULT_CONTENT_MAX_BYTES: Final = 128 * 1024
_MIN_MAX_BYTES: Final = 256

_logger = logging.getLogger("spanlake.instrumentation")
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True, slots=True)
class ContentConfig:
    """Where message content goes and how big one attribute may get."""

    on_span: bool = True
    on_event: bool = False
    max_bytes: int = DEFAULT_CONTENT_MAX_BYTES
    binary: bool = False

    @property
    def enabled(self) -> bool:
        """True when content is recorded anywhere (so providers may skip building it)."""
        return self.on_span or self.on_event


_MODES: Final[dict[str, tuple[bool, bool]]] = {
    CaptureMode.NO_CONTENT: (False, False),
    CaptureMode.SPAN_ONLY: (True, False),
    CaptureMode.EVENT_ONLY: (False, True),
    CaptureMode.SPAN_AND_EVENT: (True, True),
    "TRUE": (True, False),
    "FALSE": (False, False),
}

_cache_value: ContentConfig = ContentConfig()


def _warn_once(var: str, value: str, fallback: str) -> None:
    if (var, value) not in _warned:
        _warned.add((var, value))
        _logger.warning("Invalid %s=%r; using %s", var, value, fallback)


def _parse(mode: str | None, max_bytes: str | None, binary: str | None) -> ContentConfig:
    on_span, on_event = True, False
    if mode is not None and mode.strip():
        parsed = _MODES.get(mode.strip().upper())
        if parsed is None:
            _warn_once(ENV_CAPTURE_MESSAGE_CONTENT, mode, CaptureMode.SPAN_ONLY)
        else:
            on_span, on_event = parsed
    cap = DEFAULT_CONTENT_MAX_BYTES
    if max_bytes is not None and max_bytes.strip():
        try:
            cap = max(int(max_bytes.strip()), _MIN_MAX_BYTES)
        except ValueError:
            _warn_once(ENV_CONTENT_MAX_BYTES, max_bytes, str(DEFAULT_CONTENT_MAX_BYTES))
    want_binary = (binary or "").strip().lower() in {"1", "true", "yes"}
    return ContentConfig(on_span=on_span, on_event=on_event, max_bytes=cap, binary=want_binary)


def env_probe(name: str) -> Callable[[], Any]:
    """A cheap probe of ``name``'s raw value in ``os.environ`` (only compared, never parsed).

    Reads the mapping's own store with the key encoded once; falls back to
    ``os.environ.get`` when ``os.environ`` is not the CPython ``_Environ`` it was at import.
    """
    environ = os.environ
    data = getattr(environ, "_data", None)
    encode = getattr(environ, "encodekey", None)
    if isinstance(data, dict) and callable(encode):
        try:
            key = encode(name)
        except Exception:  # pragma: no cover - only str keys reach here
            key = None
        if key is not None:
            get = data.get

            def probe() -> Any:
                if os.environ is environ:
                    return get(key)
                return os.environ.get(name)  # pragma: no cover - os.environ was replaced

            return probe
    return lambda: os.environ.get(name)  # pragma: no cover - not CPython's os.environ


_mode_raw = env_probe(ENV_CAPTURE_MESSAGE_CONTENT)
_max_bytes_raw = env_probe(ENV_CONTENT_MAX_BYTES)
_binary_raw = env_probe(ENV_CAPTURE_BINARY_CONTENT)
_latest_raw = env_probe(ENV_SEMCONV_STABILITY_OPT_IN)
_cache_raw: tuple[Any, Any, Any] | None = None


def content_config() -> ContentConfig:
    """The current content settings (re-parsed only when the environment changed)."""
    global _cache_raw, _cache_value
    raw = (_mode_raw(), _max_bytes_raw(), _binary_raw())
    if raw != _cache_raw:
        env = os.environ
        _cache_value = _parse(
            env.get(ENV_CAPTURE_MESSAGE_CONTENT),
            env.get(ENV_CONTENT_MAX_BYTES),
            env.get(ENV_CAPTURE_BINARY_CONTENT),
        )
        _cache_raw = raw
    return _cache_value


_latest_key: Any = object()
_latest_value = False


def latest_names() -> bool:
    """``gen_ai.latest_experimental()``, re-parsed only when the variable changed."""
    global _latest_key, _latest_value
    raw = _latest_raw()
    if raw != _latest_key:
        _latest_value = latest_experimental()
        _latest_key = raw
    return _latest_value
