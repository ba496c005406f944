"""EMBEDDING spans for LangChain ``Embeddings`` classes, which fire no callbacks.

The ``embed_documents`` / ``embed_query`` methods (and their async twins) of the known
implementations are wrapped where each class defines them; the span is current during the
call, so the SDK's ``embeddings`` span (OpenAI, Bedrock) nests under it. A call made from
inside another wrapped call (``embed_query`` delegating to ``embed_documents``) adds no
second span. Input texts are content (capture modes and cap apply); vectors are not
recorded, only their dimension count.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind

from spanlake.semconv import gen_ai as ga
from spanlake.semconv.span_type import SpanType

from .._genai._invocation import Invocation, Request, Response
from .._genai._parts import message, text_part
from .._genai._safe import contained, safe_invoke

#: (module, class, provider) of the implementations we wrap.
TARGETS: Final = (
    ("langchain_openai.embeddings.base", "OpenAIEmbeddings", ga.Provider.OPENAI),
    ("langchain_openai.embeddings.azure", "AzureOpenAIEmbeddings", ga.Provider.AZURE_AI_OPENAI),
    ("langchain_aws.embeddings.bedrock", "BedrockEmbeddings", ga.Provider.AWS_BEDROCK),
    ("langchain_core.embeddings.fake", "FakeEmbeddings", "langchain"),
    ("langchain_core.embeddings.fake", "DeterministicFakeEmbedding", "langchain"),
)
METHODS: Final = ("embed_documents", "embed_query", "aembed_documents", "aembed_query")

_INSIDE: ContextVar[bool] = ContextVar("spanlake_langchain_embedding", default=False)


@contained
def _start(
    tracer: trace_api.Tracer, provider: str, instance: Any, method: str, texts: Any
) -> Invocation | None:
    if _INSIDE.get() or not is_instrumentation_enabled():
        return None
    model = next(
        (
            v
            for v in (getattr(instance, k, None) for k in ("model", "model_id", "model_name"))
            if isinstance(v, str)
        ),
        None,
    )
    request = Request(ga.Operation.EMBEDDINGS, provider, model, span_type=SpanType.EMBEDDING)
    inv = Invocation.start(
        tracer, request, kind=SpanKind.INTERNAL, name=f"{type(instance).__name__}.{method}"
    )
    if inv is not None and inv.captures_content:
        items = [texts] if isinstance(texts, str) else list(texts or ())
        inv.record_input(messages=[message("user", [text_part(str(t)) for t in items])])
    return inv


def _response(result: Any) -> Response:
    vector = result[0] if result and isinstance(result[0], list) else result
    count = len(vector) if isinstance(vector, list) else None
    return Response(attributes={ga.EMBEDDINGS_DIMENSION_COUNT: count} if count else {})


def _texts(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("texts", kwargs.get("text"))


def wrapper(tracer: trace_api.Tracer, provider: str, method: str) -> Callable[..., Any]:
    """The wrapt wrapper of one ``Embeddings`` method (sync or async by its name)."""

    def sync(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        inv = _start(tracer, provider, instance, method, _texts(args, kwargs))
        if inv is None:
            return wrapped(*args, **kwargs)
        token = _INSIDE.set(True)
        try:
            result = inv.run(wrapped, *args, **kwargs)
        finally:
            _INSIDE.reset(token)
        inv.finish(safe_invoke(_response, result))
        return result

    async def asynchronous(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        inv = _start(tracer, provider, instance, method, _texts(args, kwargs))
        if inv is None:
            return await wrapped(*args, **kwargs)
        token = _INSIDE.set(True)
        try:
            result = await inv.run_async(wrapped, *args, **kwargs)
        finally:
            _INSIDE.reset(token)
        inv.finish(safe_invoke(_response, result))
        return result

    return asynchronous if method.startswith("a") else sync
