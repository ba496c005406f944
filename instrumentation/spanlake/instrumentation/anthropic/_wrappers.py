"""The patched SDK methods: thin wrappers over the shared core's lifecycle.

Native SDK spans: anthropic >= 2 opens its own CLIENT span per API call and propagates its
context in a ``traceparent`` header. We *replace* it (one span per call, ours): while one of
our invocations runs the request, the SDK's ``start_api_call_span`` returns a non-recording
span carrying *our* span's context instead of starting its own. The SDK then records nothing,
yet still makes our span current during the HTTP attempts and, if its ``propagation`` option
is on, sends *our* span's ``traceparent``. Calls we do not instrument (models, batches,
count_tokens...) keep their native spans.
"""

from __future__ import annotations

import contextvars
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import trace as trace_api

from spanlake.instrumentation._genai import (
    AsyncStreamProxy,
    Invocation,
    SyncStreamProxy,
    contained,
    safe_invoke,
)

from ._accumulator import AnthropicAccumulator
from ._convert import (
    build_request,
    build_response,
    get,
    input_messages,
    system_instructions,
    tool_definitions,
)

if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:
    _ProxyBase = wrapt.ObjectProxy

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

#: The span of our invocation whose request is in flight (read by the native-span hook).
_CURRENT: contextvars.ContextVar[trace_api.Span | None] = contextvars.ContextVar(
    "spanlake_anthropic_call", default=None
)


class Switch:
    """Lets wrappers bound before ``uninstrument()`` (cached SDK helpers) turn into no-ops."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = True


# --- helpers ------------------------------------------------------------------------------


def _start(
    tracer: trace_api.Tracer, resource: Any, kwargs: dict[str, Any], stream: bool
) -> Invocation | None:
    request = safe_invoke(build_request, getattr(resource, "_client", None), kwargs, stream=stream)
    if request is None:
        return None
    inv = Invocation.start(tracer, request)
    if inv is not None and inv.captures_content:
        safe_invoke(_record_input, inv, kwargs)
    return inv


def _record_input(inv: Invocation, kwargs: dict[str, Any]) -> None:
    cfg = inv.content
    inv.record_input(
        messages=input_messages(kwargs, cfg),
        system=system_instructions(kwargs, cfg),
        tools=tool_definitions(kwargs),
    )


def _run(inv: Invocation, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    token = _CURRENT.set(inv.span)
    try:
        return inv.run(fn, *args, **kwargs)
    finally:
        _CURRENT.reset(token)


async def _run_async(
    inv: Invocation, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
) -> Any:
    token = _CURRENT.set(inv.span)
    try:
        return await inv.run_async(fn, *args, **kwargs)
    finally:
        _CURRENT.reset(token)


def _is_stream(result: Any, *, is_async: bool) -> bool:
    from anthropic import AsyncStream, Stream

    return isinstance(result, AsyncStream if is_async else Stream)


def _is_raw_response(result: Any) -> bool:
    from anthropic._response import BaseAPIResponse

    return isinstance(result, BaseAPIResponse)


def _finish_message(inv: Invocation, result: Any) -> None:
    inv.finish(build_response(result, inv.content))


def _wrap_result(inv: Invocation, result: Any, *, is_async: bool) -> Any:
    """What the app gets back: ``result`` itself, or a transparent proxy that ends the span."""
    try:
        if _is_stream(result, is_async=is_async):
            proxy_cls = AsyncStreamProxy if is_async else SyncStreamProxy
            return proxy_cls(result, inv, AnthropicAccumulator(inv.content))
        if _is_raw_response(result):
            if safe_invoke(_read_json, result) is not None:  # with_raw_response: already read
                _finish_message(inv, result.http_response.json())
                return result
            raw_cls = AsyncRawResponseProxy if is_async else RawResponseProxy
            return raw_cls(result, inv)
        _finish_message(inv, result)
    except Exception:
        inv.end()
    return result


# --- messages.create / messages.parse -------------------------------------------------------


def create_wrapper(tracer: trace_api.Tracer, switch: Switch) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not switch.active:
            return wrapped(*args, **kwargs)
        inv = _start(tracer, instance, kwargs, bool(get(kwargs, "stream")))
        if inv is None:
            return wrapped(*args, **kwargs)
        return _wrap_result(inv, _run(inv, wrapped, *args, **kwargs), is_async=False)

    return wrapper


def async_create_wrapper(tracer: trace_api.Tracer, switch: Switch) -> Wrapper:
    async def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not switch.active:
            return await wrapped(*args, **kwargs)
        inv = _start(tracer, instance, kwargs, bool(get(kwargs, "stream")))
        if inv is None:
            return await wrapped(*args, **kwargs)
        return _wrap_result(inv, await _run_async(inv, wrapped, *args, **kwargs), is_async=True)

    return wrapper


# --- messages.stream() helper ---------------------------------------------------------------


def _request_attr(manager: Any) -> str | None:
    for name in vars(manager):
        if name.endswith("__api_request"):
            return str(name)
    return None


class StreamManagerProxy(_ProxyBase):
    """Proxy of ``MessageStreamManager``: an exception leaving its ``with`` block fails the span."""

    def __init__(self, wrapped: Any, holder: list[Any]) -> None:
        super().__init__(wrapped)
        self._self_holder = holder

    def _self_fail(self, exc: BaseException | None) -> None:
        if exc is not None and self._self_holder:
            self._self_holder[0]._self_state.fail(exc)

    def __enter__(self) -> Any:
        return self.__wrapped__.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        self._self_fail(exc)
        return self.__wrapped__.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Any:
        return await self.__wrapped__.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        self._self_fail(exc)
        return await self.__wrapped__.__aexit__(exc_type, exc, tb)


class _LazyAwait:
    """An awaitable that builds its coroutine only when awaited (no never-awaited warnings)."""

    def __init__(self, factory: Callable[[], Awaitable[Any]]) -> None:
        self._factory = factory

    def __await__(self) -> Generator[Any, None, Any]:
        return self._factory().__await__()


def _hook_manager(
    tracer: trace_api.Tracer, instance: Any, kwargs: dict[str, Any], manager: Any, is_async: bool
) -> Any:
    attr = _request_attr(manager)
    if attr is None:
        return manager
    original = getattr(manager, attr)
    holder: list[Any] = []

    if is_async:

        async def api_request_async() -> Any:
            inv = _start(tracer, instance, kwargs, True)
            if inv is None:
                return await original
            raw = await _run_async(inv, lambda: original)
            proxy = AsyncStreamProxy(raw, inv, AnthropicAccumulator(inv.content))
            holder.append(proxy)
            return proxy

        setattr(manager, attr, _LazyAwait(api_request_async))
    else:

        def api_request() -> Any:
            inv = _start(tracer, instance, kwargs, True)
            if inv is None:
                return original()
            raw = _run(inv, original)
            proxy = SyncStreamProxy(raw, inv, AnthropicAccumulator(inv.content))
            holder.append(proxy)
            return proxy

        setattr(manager, attr, api_request)
    return StreamManagerProxy(manager, holder)


def stream_wrapper(tracer: trace_api.Tracer, switch: Switch, *, is_async: bool) -> Wrapper:
    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        manager = wrapped(*args, **kwargs)
        if not switch.active:
            return manager
        hooked = safe_invoke(_hook_manager, tracer, instance, kwargs, manager, is_async)
        return manager if hooked is None else hooked

    return wrapper


# --- with_raw_response / with_streaming_response ------------------------------------------


class _RawState:
    """Ends the span of a raw ``APIResponse`` once: when parsed, read, closed or dropped."""

    __slots__ = ("__weakref__", "finalizer", "inv")

    def __init__(self, inv: Invocation) -> None:
        self.inv = inv
        self.finalizer: weakref.finalize[Any, Any] | None = None

    def detach(self) -> None:
        if self.finalizer is not None:
            self.finalizer.detach()
            self.finalizer = None

    @contained
    def finish_from(self, raw: Any, parsed: Any = None) -> None:
        if self.inv.ended:
            return
        self.detach()
        data = parsed if hasattr(parsed, "content") else safe_invoke(_read_json, raw)
        response = None if data is None else safe_invoke(build_response, data, self.inv.content)
        self.inv.finish(response)

    def dropped(self) -> None:
        try:
            self.detach()
            self.inv.end()
        except BaseException:  # pragma: no cover - finalisers must never raise
            pass


def _read_json(raw: Any) -> Any:
    """The decoded body of a non-stream raw response the app has already read, else None."""
    if getattr(raw, "_is_sse_stream", False):
        return None
    http = raw.http_response
    if not (http.is_closed or http.is_stream_consumed):
        return None
    return http.json()


def _adopt_stream(state: _RawState, parsed: Any, *, is_async: bool) -> Any:
    """A stream parsed out of a raw response takes over the span."""
    state.detach()
    proxy_cls = AsyncStreamProxy if is_async else SyncStreamProxy
    return proxy_cls(parsed, state.inv, AnthropicAccumulator(state.inv.content))


class RawResponseProxy(_ProxyBase):
    """Proxy of a sync ``APIResponse``; the span ends with what the app reads from it."""

    def __init__(self, wrapped: Any, inv: Invocation) -> None:
        super().__init__(wrapped)
        self._self_state = _RawState(inv)
        self._self_stream: Any = None
        self._self_state.finalizer = weakref.finalize(self, self._self_state.dropped)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if _is_stream(parsed, is_async=False):
            if self._self_stream is None:
                self._self_stream = safe_invoke(
                    _adopt_stream, self._self_state, parsed, is_async=False
                )
            return self._self_stream if self._self_stream is not None else parsed
        self._self_state.finish_from(self.__wrapped__, parsed)
        return parsed

    def read(self) -> Any:
        data = self.__wrapped__.read()
        self._self_state.finish_from(self.__wrapped__)
        return data

    def text(self) -> Any:
        data = self.__wrapped__.text()
        self._self_state.finish_from(self.__wrapped__)
        return data

    def json(self) -> Any:
        data = self.__wrapped__.json()
        self._self_state.finish_from(self.__wrapped__)
        return data

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            if self._self_stream is None:
                self._self_state.finish_from(self.__wrapped__)


class AsyncRawResponseProxy(_ProxyBase):
    """Proxy of an ``AsyncAPIResponse``; the span ends with what the app reads from it."""

    def __init__(self, wrapped: Any, inv: Invocation) -> None:
        super().__init__(wrapped)
        self._self_state = _RawState(inv)
        self._self_stream: Any = None
        self._self_state.finalizer = weakref.finalize(self, self._self_state.dropped)

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = await self.__wrapped__.parse(*args, **kwargs)
        if _is_stream(parsed, is_async=True):
            if self._self_stream is None:
                self._self_stream = safe_invoke(
                    _adopt_stream, self._self_state, parsed, is_async=True
                )
            return self._self_stream if self._self_stream is not None else parsed
        self._self_state.finish_from(self.__wrapped__, parsed)
        return parsed

    async def read(self) -> Any:
        data = await self.__wrapped__.read()
        self._self_state.finish_from(self.__wrapped__)
        return data

    async def text(self) -> Any:
        data = await self.__wrapped__.text()
        self._self_state.finish_from(self.__wrapped__)
        return data

    async def json(self) -> Any:
        data = await self.__wrapped__.json()
        self._self_state.finish_from(self.__wrapped__)
        return data

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            if self._self_stream is None:
                self._self_state.finish_from(self.__wrapped__)


# --- the SDK's own span -----------------------------------------------------------------------


def native_span_wrapper() -> Wrapper:
    """Replace the SDK's call span by a non-recording one with our span's context."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        ours = _CURRENT.get()
        if ours is None:
            return wrapped(*args, **kwargs)
        return trace_api.NonRecordingSpan(ours.get_span_context())

    return wrapper
