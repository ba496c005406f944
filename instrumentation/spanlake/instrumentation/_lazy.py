"""Patch a provider SDK when the application imports it, not when we instrument.

``opentelemetry-instrument`` instruments every installed library at start-up, and importing
anthropic, openai or botocore costs seconds (measured on a loaded 2-core box:
``opentelemetry-instrument python -c pass`` took 10.8 s with eager patching, 1.9 s without)
even for an app that never uses them. A wrapt post-import hook defers each patch to the app's
own import of that module; if the module is already imported, the hook runs at once.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from types import ModuleType

import wrapt

_logger = logging.getLogger(__name__)


class DeferredPatches:
    """Post-import patches of one instrumentor; :meth:`cancel` voids the pending ones."""

    def __init__(self) -> None:
        self._generation = 0
        self._lock = threading.Lock()

    def when_imported(self, module: str, patch: Callable[[ModuleType], None]) -> None:
        """Run ``patch(module)`` once ``module`` is imported (now, if it already is)."""
        with self._lock:
            generation = self._generation

        def hook(imported: ModuleType) -> None:
            with self._lock:
                if generation != self._generation:
                    return  # uninstrumented before the app imported the SDK
            try:
                patch(imported)
            except Exception:  # a failed patch only loses telemetry, never the import
                _logger.warning("spanlake: could not instrument %s", module, exc_info=True)

        wrapt.register_post_import_hook(hook, module)

    def cancel(self) -> None:
        """Void every hook registered so far that has not run yet."""
        with self._lock:
            self._generation += 1


def imported(module: str) -> ModuleType | None:
    """The module if the application has imported it, else None (never imports it)."""
    return sys.modules.get(module)
