"""The patched SDK methods: thin wrappers over the shared core's lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from spanlake.instrumentation._genai import (
    AsyncStreamProxy,
    Invocation,
    SyncStreamProxy,
    safe_invoke,
)

from ._accumulator import AnthropicAccumulator
from ._call import Switch, Wrapper, is_stream, run, run_async, start, with_trace_headers
from ._convert import REQUEST_ID, build_response, get
from ._helper import hook_manager
from ._raw import AsyncRawResponseProxy, RawResponseProxy, is_raw_response, read_json


def _record_request_id(inv: Invocation, stream: Any) -> None:
    request_id = stream.response.headers.get("request-id")
    if request_id:
        inv.span.set_attribute(REQUEST_ID, request_id)


def _wrap_result(inv: Invocation, result: Any, *, is_async: bool) -> Any:
    """What the app gets back: ``result`` itself, or a transparent proxy that ends the span."""
    try:
        if is_stream(result, is_async=is_async):
            safe_invoke(_record_request_id, inv, result)
            proxy_cls = AsyncStreamProxy if is_async else SyncStreamProxy
            return proxy_cls(result, inv, AnthropicAccumulator(inv.content))
        if is_raw_response(result):
            body = safe_invoke(read_json, result)
            if body is None:
                raw_cls = AsyncRawResponseProxy if is_async else RawResponseProxy
                return raw_cls(result, inv)
            result_for_span: Any = body  # with_raw_response: body already read
        else:
            result_for_span = result
        inv.finish(build_response(result_for_span, inv.content))
    except Exception:
        inv.end()
    return result


def create_wrapper(tracer: trace_api.Tracer, switch: Switch) -> Wrapper:
    """``messages.create`` / ``messages.parse`` (sync)."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not switch.active or not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        inv = start(tracer, instance, kwargs, bool(get(kwargs, "stream")))
        if inv is None:
            return wrapped(*args, **kwargs)
        sent = safe_invoke(with_trace_headers, instance, inv, kwargs)
        call_kwargs, headers_sent = sent if sent is not None else (kwargs, False)
        result = run(inv, wrapped, *args, _headers_sent=headers_sent, **call_kwargs)
        return _wrap_result(inv, result, is_async=False)

    return wrapper


def async_create_wrapper(tracer: trace_api.Tracer, switch: Switch) -> Wrapper:
    """``messages.create`` / ``messages.parse`` (async)."""

    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not switch.active or not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        inv = start(tracer, instance, kwargs, bool(get(kwargs, "stream")))
        if inv is None:
            return await wrapped(*args, **kwargs)
        sent = safe_invoke(with_trace_headers, instance, inv, kwargs)
        call_kwargs, headers_sent = sent if sent is not None else (kwargs, False)
        result = await run_async(inv, wrapped, *args, _headers_sent=headers_sent, **call_kwargs)
        return _wrap_result(inv, result, is_async=True)

    return wrapper


def stream_wrapper(tracer: trace_api.Tracer, switch: Switch, *, is_async: bool) -> Wrapper:
    """``messages.stream()`` (sync and async managers; see :mod:`._helper`)."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        manager = wrapped(*args, **kwargs)
        if not switch.active or not is_instrumentation_enabled():
            return manager
        hooked = safe_invoke(hook_manager, tracer, instance, kwargs, manager, is_async)
        return manager if hooked is None else hooked

    return wrapper
