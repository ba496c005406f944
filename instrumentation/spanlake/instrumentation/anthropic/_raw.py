"""``with_raw_response`` / ``with_streaming_response``: the span follows the raw response.

A body already read (``with_raw_response`` on a JSON call) ends the span at once. Otherwise
the response is proxied and the span ends when the app parses, reads or closes it, or drops
it (GC); a stream parsed out of it takes the span over. Duck-typed, so both the current
``APIResponse`` and older SDKs' ``LegacyAPIResponse`` work.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

import wrapt

from spanlake.instrumentation._genai import (
    AsyncStreamProxy,
    Invocation,
    SyncStreamProxy,
    contained,
    safe_invoke,
)

from ._accumulator import AnthropicAccumulator
from ._call import is_stream
from ._convert import build_response

if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:
    _ProxyBase = wrapt.ObjectProxy


try:  # the SDK's parsed results are pydantic models, never raw responses
    from pydantic import BaseModel as _Parsed
except ImportError:  # pragma: no cover - every anthropic SDK depends on pydantic
    _Parsed = None  # type: ignore[assignment,misc]


def is_raw_response(result: Any) -> bool:
    # A parsed model first: ``hasattr`` of a missing field on one costs ~2 µs (it raises).
    if _Parsed is not None and isinstance(result, _Parsed):
        return False
    return hasattr(result, "http_response") and callable(getattr(result, "parse", None))


def read_json(raw: Any) -> Any:
    """The decoded body of a non-stream raw response whose body is already read, else None."""
    if getattr(raw, "_is_sse_stream", False) or getattr(raw, "_stream", False):
        return None
    http = raw.http_response
    if not (http.is_closed or http.is_stream_consumed):
        return None
    return http.json()


class _RawState:
    """Ends the span of a raw response once: when parsed, read, closed or dropped."""

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
        data = parsed if hasattr(parsed, "content") else safe_invoke(read_json, raw)
        response = None if data is None else safe_invoke(build_response, data, self.inv.content)
        self.inv.finish(response)

    def dropped(self) -> None:
        try:
            self.detach()
            self.inv.end()
        except BaseException:  # pragma: no cover - finalisers must never raise
            pass


def _adopt_stream(state: _RawState, parsed: Any, *, is_async: bool) -> Any:
    """A stream parsed out of a raw response takes over the span."""
    state.detach()
    proxy_cls = AsyncStreamProxy if is_async else SyncStreamProxy
    return proxy_cls(parsed, state.inv, AnthropicAccumulator(state.inv.content))


class RawResponseProxy(_ProxyBase):
    """Proxy of a sync raw response; the span ends with what the app reads from it."""

    def __init__(self, wrapped: Any, inv: Invocation) -> None:
        super().__init__(wrapped)
        self._self_state = _RawState(inv)
        self._self_stream: Any = None
        self._self_state.finalizer = weakref.finalize(self, self._self_state.dropped)

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if is_stream(parsed, is_async=False):
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
    """Proxy of an async raw response; the span ends with what the app reads from it."""

    def __init__(self, wrapped: Any, inv: Invocation) -> None:
        super().__init__(wrapped)
        self._self_state = _RawState(inv)
        self._self_stream: Any = None
        self._self_state.finalizer = weakref.finalize(self, self._self_state.dropped)

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = await self.__wrapped__.parse(*args, **kwargs)
        if is_stream(parsed, is_async=True):
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
