"""Keep the spans ended before a SIGTERM that the application does not handle.

Python's default SIGTERM action kills the process at once: no ``atexit``, so the SDK's
batch queue (up to 5 s of spans) is lost at each stop of a service. When SIGTERM still has
its default action, the first exporter installs a handler that flushes the global tracer
provider (bounded), then restores the default action and re-sends the signal, so the
process still dies of SIGTERM as before. An application's own handler is never replaced
(one that calls ``sys.exit`` runs ``atexit``, where the provider shuts down and flushes).
``SPANLAKE_HANDLE_SIGTERM=false`` turns this off.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

from opentelemetry import trace

_logger = logging.getLogger(__name__)
#: Longest wait for the flush on SIGTERM (Kubernetes allows 30 s before SIGKILL).
FLUSH_TIMEOUT_S = 5.0
_installed = False
_install_lock = threading.Lock()


def _flush() -> None:
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if callable(force_flush):
        force_flush(int(FLUSH_TIMEOUT_S * 1000))


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Flush on another thread: the interrupted main thread may hold a processor's lock
    # (its own force_flush), and a deadlock must not keep the process alive.
    flusher = threading.Thread(target=_flush, name="spanlake-sigterm-flush", daemon=True)
    try:
        flusher.start()
        flusher.join(FLUSH_TIMEOUT_S)
    except Exception:  # never keep a process alive that was asked to stop
        _logger.debug("spanlake: flush on SIGTERM failed", exc_info=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def install_sigterm_flush() -> None:
    """Install the handler once, from the main thread, if SIGTERM has its default action."""
    global _installed
    if os.environ.get("SPANLAKE_HANDLE_SIGTERM", "").strip().lower() in ("false", "0", "no"):
        return
    with _install_lock:
        if _installed or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError, AttributeError):  # no signals here (embedded, Windows)
            return
        _installed = True
