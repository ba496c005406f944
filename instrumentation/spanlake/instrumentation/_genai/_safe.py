"""Containment: telemetry code runs behind these so its bugs never reach the application."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_logger = logging.getLogger("spanlake.instrumentation")

P = ParamSpec("P")
R = TypeVar("R")


def safe_invoke(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R | None:
    """``fn(*args, **kwargs)``, or None (logged at debug) when it raises an ``Exception``."""
    try:
        return fn(*args, **kwargs)
    except Exception:
        _logger.debug("spanlake telemetry hook %r failed", fn, exc_info=True)
        return None


def contained(fn: Callable[P, R]) -> Callable[P, R | None]:
    """Decorator form of :func:`safe_invoke` for telemetry methods that must never raise."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | None:
        try:
            return fn(*args, **kwargs)
        except Exception:
            _logger.debug("spanlake telemetry hook %s failed", fn.__qualname__, exc_info=True)
            return None

    return wrapper
