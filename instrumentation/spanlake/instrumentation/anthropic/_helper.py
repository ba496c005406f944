"""The ``messages.stream()`` helper: one span per entered manager, ended exactly once.

The manager sends its request lazily, on ``__enter__``/``__aenter__``, so we swap its private
request callable for one that opens the span there. Two SDK shapes:
- current SDKs: the helper ``MessageStream`` reads a raw ``Stream`` we hand it wrapped in a
  stream proxy, so every helper path (iteration, ``text_stream``, ``until_done``,
  ``get_final_message``) flows through the proxy;
- older SDKs (``MessageStream`` *is* the ``Stream``): we tap its internal iterator instead.
The manager itself is proxied so an exception leaving its ``with`` block fails the span, and
leaving it ends the span (``closed``) if the stream was not read to the end.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import trace as trace_api

from spanlake.instrumentation._genai import (
    AsyncStreamProxy,
    Invocation,
    StreamState,
    SyncStreamProxy,
)

from ._accumulator import AnthropicAccumulator
from ._call import run, run_async, start

if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:
    _ProxyBase = wrapt.ObjectProxy


def _request_attr(manager: Any) -> str | None:
    for name in vars(manager):
        if name.endswith("__api_request"):
            return str(name)
    return None


def _is_helper_stream(raw: Any) -> bool:
    """True on older SDKs, where the request returns the helper stream itself."""
    return hasattr(raw, "text_stream") and hasattr(raw, "_iterator")


class StreamManagerProxy(_ProxyBase):
    """Proxy of ``MessageStreamManager`` / ``AsyncMessageStreamManager``."""

    def __init__(self, wrapped: Any, states: list[StreamState]) -> None:
        super().__init__(wrapped)
        self._self_states = states

    def _self_exit(self, exc: BaseException | None) -> None:
        for state in self._self_states:
            if exc is not None:
                state.fail(exc)
            else:
                state.finish("closed")

    def __enter__(self) -> Any:
        return self.__wrapped__.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc is not None:
            self._self_exit(exc)
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_exit(None)

    async def __aenter__(self) -> Any:
        return await self.__wrapped__.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc is not None:
            self._self_exit(exc)
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_exit(None)


class _LazyAwait:
    """An awaitable that builds its coroutine only when awaited (no never-awaited warnings)."""

    def __init__(self, factory: Callable[[], Awaitable[Any]]) -> None:
        self._factory = factory

    def __await__(self) -> Generator[Any, None, Any]:
        return self._factory().__await__()


def _tap(stream: Any, state: StreamState) -> Any:
    inner: Iterator[Any] = stream._iterator

    def tapped() -> Iterator[Any]:
        try:
            for item in inner:
                state.on_chunk(item)
                yield item
        except GeneratorExit:
            state.finish("closed")
            raise
        except BaseException as exc:
            state.fail(exc)
            raise
        state.finish("exhausted")

    stream._iterator = tapped()
    state.finalizer = weakref.finalize(stream, state.dropped)
    return stream


def _atap(stream: Any, state: StreamState) -> Any:
    inner: AsyncIterator[Any] = stream._iterator

    async def tapped() -> AsyncIterator[Any]:
        try:
            async for item in inner:
                state.on_chunk(item)
                yield item
        except GeneratorExit:
            state.finish("closed")
            raise
        except BaseException as exc:
            state.fail(exc)
            raise
        state.finish("exhausted")

    stream._iterator = tapped()
    state.finalizer = weakref.finalize(stream, state.dropped)
    return stream


def _adopt(inv: Invocation, raw: Any, states: list[StreamState], *, is_async: bool) -> Any:
    accumulator = AnthropicAccumulator(inv.content)
    if _is_helper_stream(raw):
        state = StreamState(inv, accumulator)
        states.append(state)
        return _atap(raw, state) if is_async else _tap(raw, state)
    proxy = (AsyncStreamProxy if is_async else SyncStreamProxy)(raw, inv, accumulator)
    states.append(proxy._self_state)
    return proxy


def hook_manager(
    tracer: trace_api.Tracer, instance: Any, kwargs: dict[str, Any], manager: Any, is_async: bool
) -> Any:
    """``manager`` with its request traced, proxied; ``manager`` itself if it has an odd shape."""
    attr = _request_attr(manager)
    if attr is None:
        return manager
    original = getattr(manager, attr)
    states: list[StreamState] = []

    if is_async:

        async def api_request_async() -> Any:
            inv = start(tracer, instance, kwargs, True)
            if inv is None:
                return await original
            raw = await run_async(inv, lambda: original)
            try:
                return _adopt(inv, raw, states, is_async=True)
            except Exception:
                inv.end()
                return raw

        setattr(manager, attr, _LazyAwait(api_request_async))
    else:

        def api_request() -> Any:
            inv = start(tracer, instance, kwargs, True)
            if inv is None:
                return original()
            raw = run(inv, original)
            try:
                return _adopt(inv, raw, states, is_async=False)
            except Exception:
                inv.end()
                return raw

        setattr(manager, attr, api_request)
    return StreamManagerProxy(manager, states)
