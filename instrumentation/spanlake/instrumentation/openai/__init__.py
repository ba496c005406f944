"""OpenAI instrumentation: one CLIENT span per ``chat.completions.create`` / ``.parse``,
``responses.create`` / ``.parse`` and ``embeddings.create`` call, sync and async, streaming
or not.

The SDK's resource classes are patched with ``wrapt`` (not the client constructor), so
clients created before :meth:`OpenAIInstrumentor.instrument` are traced as well. The stream
helpers (``chat.completions.stream``, ``responses.stream``) and ``with_raw_response`` /
``with_streaming_response`` route through the same ``create`` and are covered by it.
Each SDK module is patched when the application imports it (:mod:`.._lazy`), so
instrumenting costs nothing for an app that never imports ``openai``::

    from spanlake.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

from .._genai import bind_metrics
from .._genai._peers import warn_if_peers_active
from .._lazy import DeferredPatches, imported
from ._wrappers import CHAT, EMBEDDINGS, RESPONSES, Endpoint, async_wrapper, sync_wrapper
from .package import _instruments

__all__ = ["OpenAIInstrumentor"]

#: ``(module, "Class.method", endpoint, is_async)`` for every patched method. ``parse`` (structured
#: outputs) posts directly, so it is patched too; the ``stream()`` helpers call ``create``.
_TARGETS: tuple[tuple[str, str, Endpoint, bool], ...] = (
    ("openai.resources.chat.completions", "Completions.create", CHAT, False),
    ("openai.resources.chat.completions", "AsyncCompletions.create", CHAT, True),
    ("openai.resources.chat.completions", "Completions.parse", CHAT, False),
    ("openai.resources.chat.completions", "AsyncCompletions.parse", CHAT, True),
    ("openai.resources.responses", "Responses.create", RESPONSES, False),
    ("openai.resources.responses", "AsyncResponses.create", RESPONSES, True),
    ("openai.resources.responses", "Responses.parse", RESPONSES, False),
    ("openai.resources.responses", "AsyncResponses.parse", RESPONSES, True),
    ("openai.resources.embeddings", "Embeddings.create", EMBEDDINGS, False),
    ("openai.resources.embeddings", "AsyncEmbeddings.create", EMBEDDINGS, True),
)

_PEERS = (
    "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor",
    "opentelemetry.instrumentation.openai:OpenAIInstrumentor",
    "openinference.instrumentation.openai:OpenAIInstrumentor",
)


def _patcher(
    tracer: trace_api.Tracer, module: str, targets: list[tuple[str, Endpoint, bool]]
) -> Any:
    """The post-import hook that patches one SDK module's targets."""

    def patch(loaded: Any) -> None:
        warn_if_peers_active(
            "openai", peer_instrumentors=_PEERS, targets=[(module, path) for path, _, _ in targets]
        )
        for path, endpoint, is_async in targets:
            factory = async_wrapper if is_async else sync_wrapper
            try:
                wrapt.wrap_function_wrapper(loaded, path, factory(tracer, endpoint))
            except AttributeError:
                continue  # an older SDK without this API: the others are still traced

    return patch


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the ``openai`` SDK (entry point ``spanlake_openai``)."""

    _deferred = DeferredPatches()

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from spanlake.instrumentation import openai as this_package

        tracer = trace_api.get_tracer(
            this_package.__name__,
            tracer_provider=kwargs.get("tracer_provider"),
            schema_url="https://opentelemetry.io/schemas/1.37.0",
        )
        bind_metrics(tracer, this_package.__name__, kwargs.get("meter_provider"))
        by_module: dict[str, list[tuple[str, Endpoint, bool]]] = {}
        for module, path, endpoint, is_async in _TARGETS:
            by_module.setdefault(module, []).append((path, endpoint, is_async))
        for module, targets in by_module.items():
            self._deferred.when_imported(module, _patcher(tracer, module, targets))

    def _uninstrument(self, **kwargs: Any) -> None:
        self._deferred.cancel()
        for module, path, _, _ in _TARGETS:
            loaded = imported(module)
            if loaded is None:
                continue  # never imported, so never patched
            cls, method = path.split(".")
            try:
                unwrap(getattr(loaded, cls), method)
            except AttributeError:
                continue
