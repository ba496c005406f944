"""OpenTelemetry instrumentation of the ``anthropic`` SDK (entry point ``spanlake_anthropic``).

Traced: ``messages.create`` (sync/async, ``stream=True``), ``messages.parse``, the
``messages.stream()`` helper (iteration, ``text_stream``, ``until_done``,
``get_final_message``), ``with_raw_response`` / ``with_streaming_response``, the same on
``beta.messages``, and every client sharing these resources (``Anthropic``,
``AsyncAnthropic``, ``AnthropicBedrock`` -> provider ``aws.bedrock``, ``AnthropicVertex``
-> ``gcp.vertex_ai``). Methods are patched on the SDK classes, so clients created before
``instrument()`` are traced too.

One span per call, ours: anthropic >= 2 traces itself; while instrumented we *replace* its
call span for the calls above rather than enrich it (see :mod:`._call`), so the user sees
exactly one LLM span with all our attributes, and requests still carry a ``traceparent``
(ours) whenever the SDK would have sent one. Uninstrumenting gives the SDK its spans back.

Span extras beyond the GenAI conventions: ``anthropic.request.id`` (the API's request id),
``anthropic.thinking.type`` / ``anthropic.thinking.budget_tokens``,
``anthropic.request.service_tier``; on streams ``spanlake.stream.end`` /
``spanlake.stream.chunks`` and ``spanlake.stream.chunk`` events (see ``_genai``).
The version floor (``package.py``) is tested too: anthropic 0.40 with wrapt 1.16.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from spanlake.instrumentation._genai import bind_metrics, warn_if_peers_active
from spanlake.instrumentation._lazy import DeferredPatches

from ._call import Switch, native_span_wrapper
from ._wrappers import async_create_wrapper, create_wrapper, stream_wrapper
from .package import _instruments

__all__ = ["AnthropicInstrumentor"]

# Package paths that re-export the classes in every supported SDK version.
_MESSAGES: Final = "anthropic.resources.messages"
_BETA_MESSAGES: Final = "anthropic.resources.beta.messages"
_NATIVE: Final = ("anthropic._base_client", "start_api_call_span")
#: Platform clients whose beta ``Messages`` classes copy the first-party methods as class
#: attributes when imported (``create = FirstPartyMessagesAPI.create``): imported before
#: ``instrument()`` they hold the unpatched functions, so they are targets of their own.
_PLATFORM_BETA_MESSAGES: Final = (
    "anthropic.lib.bedrock._beta_messages",
    "anthropic.lib.vertex._beta_messages",
)
_MODULES: Final = (_MESSAGES, _BETA_MESSAGES, *_PLATFORM_BETA_MESSAGES)

#: (module, "Class.method", kind) for every patched SDK method.
_TARGETS: Final = tuple(
    (module, f"{cls}.{method}", kind)
    for module in _MODULES
    for cls, method, kind in (
        ("Messages", "create", "create"),
        ("Messages", "parse", "create"),
        ("AsyncMessages", "create", "acreate"),
        ("AsyncMessages", "parse", "acreate"),
        ("Messages", "stream", "stream"),
        ("AsyncMessages", "stream", "astream"),
    )
)

_PEERS: Final = (
    "opentelemetry.instrumentation.anthropic:AnthropicInstrumentor",  # OpenLLMetry / contrib
    "openinference.instrumentation.anthropic:AnthropicInstrumentor",
)

try:
    from importlib.metadata import version as _dist_version

    __version__ = _dist_version("spanlake")
except Exception:  # pragma: no cover - not installed as a distribution
    __version__ = "0.0.0"


def _resolve(module: str, path: str) -> tuple[Any, str] | None:
    try:
        obj: Any = importlib.import_module(module)
    except ImportError:
        return None
    *owners, attr = path.split(".")
    for name in owners:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return (obj, attr) if hasattr(obj, attr) else None


def _copied(owner: Any, name: str) -> bool:
    """True when ``owner.name`` is (a class-bound copy of) the wrapper a patched first-party
    class holds: wrapt's bound copy keeps its parent's wrapper function."""
    wrapper = getattr(vars(owner).get(name), "_self_wrapper", None)
    if wrapper is None:
        return False
    for base in (_MESSAGES, _BETA_MESSAGES):
        found = _resolve(base, f"{owner.__name__}.{name}")
        first_party = vars(found[0]).get(found[1]) if found is not None else None
        if getattr(first_party, "_self_wrapper", None) is wrapper:
            return True
    return False


class AnthropicInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces Anthropic SDK calls as OTel GenAI CLIENT spans.

    ``AnthropicInstrumentor().instrument(tracer_provider=...)``; ``uninstrument()`` undoes it.
    Both are idempotent.
    """

    # BaseInstrumentor is a per-class singleton whose ``__init__`` runs on every
    # ``AnthropicInstrumentor()``: patch state lives on the class so a second instance
    # (``AnthropicInstrumentor().uninstrument()``) still sees what the first one patched.
    _switch: Switch | None = None
    _patched: list[tuple[Any, str]] = []  # noqa: RUF012 - class-level on purpose (see above)
    _deferred = DeferredPatches()

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace_api.get_tracer(
            "spanlake.instrumentation.anthropic",
            __version__,
            tracer_provider=kwargs.get("tracer_provider"),
        )
        bind_metrics(tracer, "spanlake.instrumentation.anthropic", kwargs.get("meter_provider"))
        switch = Switch()
        factories = {
            "create": lambda: create_wrapper(tracer, switch),
            "acreate": lambda: async_create_wrapper(tracer, switch),
            "stream": lambda: stream_wrapper(tracer, switch, is_async=False),
            "astream": lambda: stream_wrapper(tracer, switch, is_async=True),
        }
        cls = type(self)
        cls._switch = switch
        cls._patched = []

        def patch_messages(module: str) -> Any:
            def patch(_: Any) -> None:
                if module == _MESSAGES:
                    warn_if_peers_active(
                        "anthropic",
                        peer_instrumentors=_PEERS,
                        targets=[(m, p) for m, p, _ in _TARGETS if m == _MESSAGES],
                    )
                for target_module, path, kind in _TARGETS:
                    found = _resolve(target_module, path) if target_module == module else None
                    if found is None:
                        continue
                    owner, name = found
                    if _copied(owner, name):
                        # Imported after the first-party patch: it copied our wrapper. Not
                        # wrapped twice; listed so uninstrument restores the original.
                        cls._patched.append(found)
                        continue
                    wrap_function_wrapper(target_module, path, factories[kind]())
                    cls._patched.append(found)

            return patch

        def patch_native(_: Any) -> None:
            if _resolve(*_NATIVE) is not None:
                wrap_function_wrapper(_NATIVE[0], _NATIVE[1], native_span_wrapper())
                cls._patched.append((importlib.import_module(_NATIVE[0]), _NATIVE[1]))

        # Patched when the app imports the SDK, not now (see .._lazy): instrumenting costs
        # nothing for an app that never imports anthropic.
        for module in _MODULES:
            cls._deferred.when_imported(module, patch_messages(module))
        cls._deferred.when_imported(_NATIVE[0], patch_native)

    def _uninstrument(self, **kwargs: Any) -> None:
        cls = type(self)
        cls._deferred.cancel()
        if cls._switch is not None:
            cls._switch.active = False  # wrappers cached in SDK helpers stop tracing too
        for owner, attr in cls._patched:
            unwrap(owner, attr)
        cls._switch, cls._patched = None, []
