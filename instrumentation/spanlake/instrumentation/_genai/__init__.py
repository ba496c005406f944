"""The GenAI instrumentation core shared by every provider (Anthropic, Bedrock, OpenAI).

Small, stable API; everything here is contained (never raises into the app).

Content settings (:mod:`._config`)
    ``content_config() -> ContentConfig`` (``on_span``, ``on_event``, ``max_bytes``,
    ``binary``, ``enabled``) from ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    (default ``SPAN_ONLY``; legacy ``true``/``false``), ``SPANLAKE_CONTENT_MAX_BYTES``
    (default 128 KiB per attribute) and ``SPANLAKE_CAPTURE_BINARY_CONTENT``.

Message parts (:mod:`._parts`)
    ``text_part``, ``reasoning_part``, ``tool_call_part(id, name, arguments)``,
    ``tool_call_response_part(id, response)``, ``blob_part(modality, mime, data,
    include_bytes=cfg.binary)``, ``uri_part``, ``file_part``, ``generic_part``,
    ``message(role, parts)``, ``output_message(role, parts, finish_reason)``,
    ``tool_definition(name, description, parameters)``.

One call = one span (:mod:`._invocation`)
    ``Request(operation, provider, model, server_address=, server_port=, stream=,
    temperature=, top_p=, top_k=, max_tokens=, stop_sequences=, seed=,
    frequency_penalty=, presence_penalty=, choice_count=, span_type=, attributes=)``;
    ``Usage(input_tokens, output_tokens, cache_read_input_tokens,
    cache_creation_input_tokens, reasoning_output_tokens, input_includes_cache)`` (our
    ``gen_ai.usage.input_tokens`` always includes cache read + creation);
    ``Response(id, model, finish_reasons, usage, output_messages, attributes)``.
    ``inv = Invocation.start(tracer, request)`` (None if the span could not start), then
    ``inv.captures_content`` / ``inv.content``, ``inv.record_input(messages=, system=,
    tools=)``, ``result = inv.run(fn, *a, **kw)`` / ``await inv.run_async(...)`` (span
    current during the call; on error: status ERROR, ``error.type``, exception event,
    span ended, exception re-raised unchanged), ``inv.finish(Response)`` (ends once),
    ``inv.set_response``, ``inv.fail(exc, error_type=None)``, ``inv.end()``.

Streams (:mod:`._stream`)
    ``SyncStreamProxy(stream, inv, accumulator)`` / ``AsyncStreamProxy(...)``: chunks pass
    through unchanged; the accumulator (``add(chunk) -> text|None``, ``response() ->
    Response``; both may raise, it is contained) aggregates; the span ends exactly once on
    exhaustion, ``close()``/``aclose()``, with-exit, error (from the stream or raised in a
    ``with`` block) or GC of the proxy (``spanlake.stream.end`` = exhausted | closed |
    context_exit | error | dropped; ``spanlake.stream.chunks``), with time-to-first-chunk and
    bounded ``spanlake.stream.chunk`` events (one per chunk, stamped with its arrival time,
    added when the stream ends; ``content`` = the text delta only when content goes on events,
    EVENT_ONLY / SPAN_AND_EVENT; ``SPANLAKE_MAX_CHUNK_EVENTS``, default 128). ``proxy._self_state`` is the
    :class:`StreamState` (``finish(how)``, ``fail(exc)``); pass ``state=`` to a new proxy to
    move a live stream's span onto it (SDK helpers that re-wrap a response).

Metrics (:mod:`._metrics`)
    ``bind_metrics(tracer, name, meter_provider)`` in ``_instrument``: every call started
    with that tracer then records ``gen_ai.client.token.usage``, ``.operation.duration``,
    ``.operation.time_to_first_chunk``, ``.operation.time_per_output_chunk`` and
    ``spanlake.client.cost`` when its span ends (nothing else for a wrapper to do).

Helpers
    ``safe_invoke(fn, *a, **kw)``, ``@contained``; ``warn_if_peers_active(library,
    peer_instrumentors=["module:Class"], targets=[("module", "Class.method")])`` (call before
    wrapping; logs once per peer: an active peer instrumentor, a wrapt wrapper, or a
    function patched in from another package such as MLflow autolog);
    ``error_type_of(exc)`` (the ``error.type`` rule: the exception's qualified class name).

A typical wrapper::

    def wrapper(wrapped, instance, args, kwargs):
        inv = Invocation.start(tracer, request_from(kwargs))
        if inv is None:
            return wrapped(*args, **kwargs)
        if inv.captures_content:
            safe_invoke(record_input, inv, kwargs)
        result = inv.run(wrapped, *args, **kwargs)
        if kwargs.get("stream"):
            return SyncStreamProxy(result, inv, MyAccumulator())
        inv.finish(safe_invoke(response_from, result, inv.content))
        return result
"""

from ._config import (
    DEFAULT_CONTENT_MAX_BYTES,
    ENV_CAPTURE_BINARY_CONTENT,
    ENV_CONTENT_MAX_BYTES,
    ContentConfig,
    content_config,
)
from ._invocation import (
    CHUNK_EVENT,
    STREAM_CHUNKS,
    STREAM_END,
    Invocation,
    Request,
    Response,
    Usage,
    error_type_of,
)
from ._metrics import bind as bind_metrics
from ._parts import (
    Message,
    Part,
    blob_part,
    file_part,
    generic_part,
    message,
    output_message,
    reasoning_part,
    text_part,
    tool_call_part,
    tool_call_response_part,
    tool_definition,
    uri_part,
)
from ._peers import warn_if_peers_active
from ._safe import contained, safe_invoke
from ._stream import AsyncStreamProxy, StreamAccumulator, StreamState, SyncStreamProxy

__all__ = [
    "CHUNK_EVENT",
    "DEFAULT_CONTENT_MAX_BYTES",
    "ENV_CAPTURE_BINARY_CONTENT",
    "ENV_CONTENT_MAX_BYTES",
    "STREAM_CHUNKS",
    "STREAM_END",
    "AsyncStreamProxy",
    "ContentConfig",
    "Invocation",
    "Message",
    "Part",
    "Request",
    "Response",
    "StreamAccumulator",
    "StreamState",
    "SyncStreamProxy",
    "Usage",
    "bind_metrics",
    "blob_part",
    "contained",
    "content_config",
    "error_type_of",
    "file_part",
    "generic_part",
    "message",
    "output_message",
    "reasoning_part",
    "safe_invoke",
    "text_part",
    "tool_call_part",
    "tool_call_response_part",
    "tool_definition",
    "uri_part",
    "warn_if_peers_active",
]
