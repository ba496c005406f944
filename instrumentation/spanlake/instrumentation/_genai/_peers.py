"""Detect another instrumentation of the same library and warn once.

Two instrumentors on one SDK double every span (and double-count tokens in naive roll-ups),
so we tell the user. Two signals, both cheap and import-free for absent peers:
- a peer ``BaseInstrumentor`` subclass (OpenLLMetry, OpenInference, official contrib) that
  is already imported and reports ``is_instrumented_by_opentelemetry``;
- a target method that is already a ``wrapt`` wrapper we did not create (any wrapt-based
  peer, e.g. one whose class we do not know), or a plain function from another package
  (monkeypatching peers such as MLflow autolog).
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterable

import wrapt

from ._safe import contained

_logger = logging.getLogger("spanlake.instrumentation")
_warned: set[tuple[str, str]] = set()
# wrapt 2 split the proxy base out of ObjectProxy; wrapt 1 has only ObjectProxy.
_PROXY_BASE: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


def _resolve(module: str, attr_path: str) -> object | None:
    obj: object | None = sys.modules.get(module)
    if obj is None:
        try:
            obj = importlib.import_module(module)
        except Exception:
            return None
    for name in attr_path.split("."):
        # Look in the class dict so a wrapper on a base class is not mistaken for ours.
        namespace = getattr(obj, "__dict__", None)
        if namespace is not None and name in namespace:
            obj = namespace[name]
        else:
            obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


def _peer_active(spec: str) -> bool:
    """``spec`` is ``"module:Class"`` of a peer instrumentor; only checked if already imported."""
    module_name, _, class_name = spec.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        return False
    cls = getattr(module, class_name, None)
    instance = getattr(cls, "_instance", None)  # BaseInstrumentor is a per-class singleton
    return bool(getattr(instance, "is_instrumented_by_opentelemetry", False))


@contained
def warn_if_peers_active(
    library: str,
    *,
    peer_instrumentors: Iterable[str] = (),
    targets: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """Log one warning naming the newly seen peers of ``library``; return all peers found.

    Call from ``_instrument`` *before* wrapping: ``targets`` are ``(module, "Class.method")``
    pairs that are then still unwrapped unless someone else got there first.
    """
    found: list[str] = [spec for spec in peer_instrumentors if _peer_active(spec)]
    for module, path in targets:
        obj = _resolve(module, path)
        if isinstance(obj, _PROXY_BASE):
            found.append(f"wrapt wrapper on {module}.{path}")
        elif callable(obj):
            owner = str(getattr(obj, "__module__", None) or "")
            if owner and owner.split(".")[0] != module.split(".")[0]:
                found.append(f"{module}.{path} patched by {owner}")
    new = [peer for peer in found if (library, peer) not in _warned]
    if new:
        _warned.update((library, peer) for peer in new)
        _logger.warning(
            "spanlake: another instrumentation of %s is active (%s); each call may be "
            "traced twice. Disable one of them (e.g. OTEL_PYTHON_DISABLED_INSTRUMENTATIONS).",
            library,
            "; ".join(new),
        )
    return found


def reset_warnings() -> None:
    """Forget which peers were reported (for tests)."""
    _warned.clear()
