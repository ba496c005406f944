"""OpenTelemetry instrumentation of Amazon Bedrock Runtime (``botocore`` ``bedrock-runtime``).

``converse``, ``converse_stream``, ``invoke_model`` (Anthropic, Amazon Titan / Nova, Meta
Llama, Cohere, Mistral bodies; Titan and Cohere embeddings) and
``invoke_model_with_response_stream`` each become one CLIENT span in the OTel GenAI
conventions, ``gen_ai.provider.name = "aws.bedrock"`` whatever the model::

    from spanlake.instrumentation.bedrock import BedrockInstrumentor

    BedrockInstrumentor().instrument()  # clients created earlier are traced too
    ...
    BedrockInstrumentor().uninstrument()

The app sees exactly what botocore returns: the read-once ``StreamingBody`` of
``invoke_model`` is handed back over the same bytes, and the event streams are passed
through chunk by chunk while their span ends exactly once (exhausted, ``close()``, error,
or the stream dropped / garbage-collected after an early ``break``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from spanlake.instrumentation._genai import bind_metrics, warn_if_peers_active
from spanlake.instrumentation._lazy import DeferredPatches, imported

from . import _patch
from .package import _instruments

__all__ = ["BedrockInstrumentor"]

_TARGET = ("botocore.client", "BaseClient._make_api_call")
_PEERS = (
    "opentelemetry.instrumentation.botocore:BotocoreInstrumentor",
    "opentelemetry.instrumentation.bedrock:BedrockInstrumentor",
    "openinference.instrumentation.bedrock:BedrockInstrumentor",
)


class BedrockInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces ``bedrock-runtime`` calls of every botocore/boto3 client in the process."""

    _deferred = DeferredPatches()

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        tracer = trace_api.get_tracer(__name__, tracer_provider=tracer_provider)
        bind_metrics(tracer, __name__, kwargs.get("meter_provider"))
        _patch.STATE.tracer = tracer
        self._deferred.when_imported("botocore.client", _patch_client)

    def _uninstrument(self, **kwargs: Any) -> None:
        _patch.STATE.tracer = None
        self._deferred.cancel()
        client_module = imported("botocore.client")
        if client_module is None:
            return  # never imported, so never patched
        current = client_module.BaseClient.__dict__.get("_make_api_call")
        if _is_ours(current):
            client_module.BaseClient._make_api_call = current.__wrapped__
        # Otherwise someone wrapped on top of us: our wrapper stays in their chain but,
        # with no tracer, passes every call straight through.


def _patch_client(client_module: Any) -> None:
    """Post-import hook: wrap ``BaseClient._make_api_call`` once botocore is imported."""
    warn_if_peers_active("botocore bedrock-runtime", peer_instrumentors=_PEERS, targets=[_TARGET])
    if not _in_chain(client_module.BaseClient.__dict__.get("_make_api_call")):
        wrapt.wrap_function_wrapper(*_TARGET, _patch.make_api_call_wrapper)


_PROXY_BASE: type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)


def _is_ours(attr: Any) -> bool:
    return (
        isinstance(attr, _PROXY_BASE)
        and getattr(attr, "_self_wrapper", None) is _patch.make_api_call_wrapper
    )


def _in_chain(attr: Any) -> bool:
    """Whether our wrapper is anywhere in a chain of wrapt wrappers (a peer may sit on top)."""
    for _ in range(32):
        if _is_ours(attr):
            return True
        if not isinstance(attr, _PROXY_BASE):
            return False
        attr = getattr(attr, "__wrapped__", None)
    return False
