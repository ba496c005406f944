"""The wrapt wrappers patched onto the SDK's ``create`` methods (sync and async).

Each wrapper: start the span from the request, record input content, run the call with the
span current (errors fail the span and propagate unchanged), then either finish the span
from the returned object or hand back a stream proxy that finishes it. Everything that is
ours runs contained, so a telemetry bug returns the SDK's own result untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from .._genai._invocation import Invocation, Request, Response
from .._genai._safe import contained, safe_invoke
from .._genai._stream import AsyncStreamProxy, StreamAccumulator, SyncStreamProxy
from . import _chat, _embeddings, _raw, _responses

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How one API's requests and results translate to the span."""

    request: Callable[[Any, Mapping[str, Any]], Request]
    record_input: Callable[[Invocation, Mapping[str, Any]], None] | None
    result: Callable[[Invocation, Any], Response]
    accumulator: Callable[[Invocation], StreamAccumulator] | None


def _record_chat(inv: Invocation, kwargs: Mapping[str, Any]) -> None:
    messages, tools = _chat.input_content(kwargs, inv.content.binary)
    inv.record_input(messages=messages, tools=tools)


def _record_responses(inv: Invocation, kwargs: Mapping[str, Any]) -> None:
    messages, system, tools = _responses.input_content(kwargs, inv.content.binary)
    inv.record_input(messages=messages, system=system, tools=tools)


def _record_embeddings(inv: Invocation, kwargs: Mapping[str, Any]) -> None:
    inv.record_input(messages=_embeddings.input_content(kwargs))


def _responses_result(inv: Invocation, result: Any) -> Response:
    failed = _responses.failure(result)
    if failed is not None:
        _responses.mark_failed(inv, *failed)
    return _responses.responses_response(result, inv.captures_content)


CHAT = Endpoint(
    request=_chat.chat_request,
    record_input=_record_chat,
    result=lambda inv, result: _chat.chat_response(result, inv.captures_content),
    accumulator=lambda inv: _chat.ChatStreamState(inv.captures_content),
)
RESPONSES = Endpoint(
    request=_responses.responses_request,
    record_input=_record_responses,
    result=_responses_result,
    accumulator=_responses.ResponsesAccumulator,
)
EMBEDDINGS = Endpoint(
    request=_embeddings.embeddings_request,
    record_input=_record_embeddings,
    result=lambda inv, result: _embeddings.embeddings_response(result),
    accumulator=None,
)


@contained
def _start(
    tracer: trace_api.Tracer, endpoint: Endpoint, instance: Any, kwargs: Mapping[str, Any]
) -> Invocation | None:
    if not is_instrumentation_enabled():
        return None
    inv = Invocation.start(tracer, endpoint.request(instance, kwargs))
    if inv is not None and inv.captures_content and endpoint.record_input is not None:
        safe_invoke(endpoint.record_input, inv, kwargs)
    return inv


def _finish(endpoint: Endpoint, inv: Invocation, result: Any) -> None:
    inv.finish(safe_invoke(endpoint.result, inv, result))


def _parsed_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request seen from the parsed body: same ``stream`` flag, no raw-response marker."""
    return {"stream": kwargs.get("stream")}


def _sync_result(
    endpoint: Endpoint, inv: Invocation, kwargs: Mapping[str, Any], result: Any
) -> Any:
    """What the app gets back: ``result`` itself, or a proxy of the stream it is."""
    raw_mode = _raw.mode(kwargs)
    if raw_mode is not None:
        return _raw.observe_sync(
            raw_mode,
            inv,
            result,
            lambda parsed: _sync_result(endpoint, inv, _parsed_kwargs(kwargs), parsed),
        )
    if endpoint.accumulator is not None and kwargs.get("stream") is True:
        accumulator = safe_invoke(endpoint.accumulator, inv)
        if accumulator is not None:
            proxy = safe_invoke(SyncStreamProxy, result, inv, accumulator)
            if proxy is not None:
                return proxy
        inv.end()
        return result
    _finish(endpoint, inv, result)
    return result


def _async_result(
    endpoint: Endpoint, inv: Invocation, kwargs: Mapping[str, Any], result: Any
) -> Any:
    raw_mode = _raw.mode(kwargs)
    if raw_mode is not None:
        return _raw.observe_async(
            raw_mode,
            inv,
            result,
            lambda parsed: _async_result(endpoint, inv, _parsed_kwargs(kwargs), parsed),
        )
    if endpoint.accumulator is not None and kwargs.get("stream") is True:
        accumulator = safe_invoke(endpoint.accumulator, inv)
        if accumulator is not None:
            proxy = safe_invoke(AsyncStreamProxy, result, inv, accumulator)
            if proxy is not None:
                return proxy
        inv.end()
        return result
    _finish(endpoint, inv, result)
    return result


def sync_wrapper(tracer: trace_api.Tracer, endpoint: Endpoint) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        inv = _start(tracer, endpoint, instance, kwargs)
        if inv is None:
            return wrapped(*args, **kwargs)
        result = inv.run(wrapped, *args, **kwargs)
        observed = safe_invoke(_sync_result, endpoint, inv, kwargs, result)
        if observed is None:
            inv.end()
            return result
        return observed

    return wrapper


def async_wrapper(tracer: trace_api.Tracer, endpoint: Endpoint) -> Wrapper:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        inv = _start(tracer, endpoint, instance, kwargs)
        if inv is None:
            return await wrapped(*args, **kwargs)
        result = await inv.run_async(wrapped, *args, **kwargs)
        observed = safe_invoke(_async_result, endpoint, inv, kwargs, result)
        if observed is None:
            inv.end()
            return result
        return observed

    return wrapper
