"""The ``messages.stream()`` helper: one span per entered manager, ended exactly once.

The manager sends its request lazily, on ``__enter__``/``__aenter__``, so we swap its private
request callable for one that opens the span there and hands back the raw ``Stream`` wrapped
in a stream proxy. The helper ``MessageStream`` reads that raw stream, so every helper path
(iteration, ``text_stream``, ``until_done``, ``get_final_message``) flows through the proxy.
Older SDKs build the helper on a fresh raw stream over the same response; the manager proxy
then moves the span onto a proxy of that one (``_self_rehome``).
The manager itself is proxied so an exception leaving its ``with`` block fails the span, and
leaving it ends the span (``closed``) if the stream was not read to the end.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
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


class StreamManagerProxy(_ProxyBase):
    """Proxy of ``MessageStreamManager`` / ``AsyncMessageStreamManager``."""

    def __init__(self, wrapped: Any, proxies: list[Any]) -> None:
        super().__init__(wrapped)
        self._self_proxies = proxies

    def _self_exit(self, exc: BaseException | None) -> None:
        for proxy in self._self_proxies:
            state: StreamState = proxy._self_state
            if exc is not None:
                state.fail(exc)
            else:
                state.finish("closed")

    def _self_rehome(self, stream: Any) -> Any:
        """Older SDKs build the helper on a *new* raw stream over the same response: move the
        span onto a proxy of that one so every helper path still flows through us."""
        raw = getattr(stream, "_raw_stream", None)
        for proxy in self._self_proxies:
            if raw is not None and raw is not proxy:
                state: StreamState = proxy._self_state
                stream._raw_stream = type(proxy)(
                    raw, state.invocation, state.accumulator, state=state
                )
        return stream

    def __enter__(self) -> Any:
        return self._self_rehome(self.__wrapped__.__enter__())

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        if exc is not None:
            self._self_exit(exc)
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_exit(None)

    async def __aenter__(self) -> Any:
        return self._self_rehome(await self.__wrapped__.__aenter__())

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


def _adopt(inv: Invocation, raw: Any, proxies: list[Any], *, is_async: bool) -> Any:
    proxy = (AsyncStreamProxy if is_async else SyncStreamProxy)(
        raw, inv, AnthropicAccumulator(inv.content)
    )
    proxies.append(proxy)
    return proxy


def hook_manager(
    tracer: trace_api.Tracer, instance: Any, kwargs: dict[str, Any], manager: Any, is_async: bool
) -> Any:
    """``manager`` with its request traced, proxied; ``manager`` itself if it has an odd shape."""
    attr = _request_attr(manager)
    if attr is None:
        return manager
    original = getattr(manager, attr)
    proxies: list[Any] = []

    if is_async:

        async def api_request_async() -> Any:
            inv = start(tracer, instance, kwargs, True)
            if inv is None:
                return await original
            raw = await run_async(inv, lambda: original)
            try:
                return _adopt(inv, raw, proxies, is_async=True)
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
                return _adopt(inv, raw, proxies, is_async=False)
            except Exception:
                inv.end()
                return raw

        setattr(manager, attr, api_request)
    return StreamManagerProxy(manager, proxies)
