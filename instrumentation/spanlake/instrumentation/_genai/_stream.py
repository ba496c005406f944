"""Transparent proxies around provider streams that end the call's span exactly once.

The proxy hands every chunk to the app unchanged and as it arrives (no buffering), feeds it
to a per-provider :class:`StreamAccumulator`, marks time-to-first-chunk, notes a bounded
number of chunk arrivals (``time_ns()``; the text delta too when content goes on events),
added as ``spanlake.stream.chunk`` events with those timestamps just before the span ends
(see ``_events``: one ``add_event`` per chunk was most of a stream's overhead), and ends the span on the first of: exhaustion (``exhausted``),
``close()`` (``closed``), ``with`` exit (``context_exit``), an error raised by the stream or
inside a ``with`` block (``error``), or the proxy being garbage-collected unconsumed or after
an early ``break`` (``dropped``, via ``weakref.finalize``, which never raises). The end
reason goes on ``spanlake.stream.end``. Anything else (attributes, SDK helper methods) passes
through to the wrapped stream (``wrapt.ObjectProxy``).
"""

from __future__ import annotations

import logging
import os
import weakref
from time import time_ns
from typing import TYPE_CHECKING, Any, Final, Protocol

import wrapt

from ._config import env_probe
from ._events import add_chunk_events
from ._invocation import CHUNK_EVENT, STREAM_CHUNKS, STREAM_END, Invocation, Response
from ._metrics import MAX_CHUNK_GAPS
from ._safe import contained, safe_invoke

_logger = logging.getLogger("spanlake.instrumentation")

ENV_MAX_CHUNK_EVENTS: Final = "SPANLAKE_MAX_CHUNK_EVENTS"
DEFAULT_MAX_CHUNK_EVENTS: Final = 128
if TYPE_CHECKING:
    _ProxyBase = wrapt.ObjectProxy[Any]
else:  # wrapt 1.x proxies are not subscriptable at runtime
    _ProxyBase = wrapt.ObjectProxy

#: Longest chunk text copied onto one chunk event.
_MAX_EVENT_TEXT: Final = 1024


_max_events_raw = env_probe(ENV_MAX_CHUNK_EVENTS)
_max_events_cache: tuple[Any, int] = (object(), DEFAULT_MAX_CHUNK_EVENTS)


def _max_chunk_events() -> int:
    """``SPANLAKE_MAX_CHUNK_EVENTS``, re-parsed only when it changed (see ``_config``)."""
    global _max_events_cache
    raw = _max_events_raw()
    if raw == _max_events_cache[0]:
        return _max_events_cache[1]
    value = os.environ.get(ENV_MAX_CHUNK_EVENTS)
    parsed = DEFAULT_MAX_CHUNK_EVENTS
    if value is not None:
        try:
            parsed = max(int(value), 0)
        except ValueError:
            pass
    _max_events_cache = (raw, parsed)
    return parsed


class StreamAccumulator(Protocol):
    """Per-provider aggregation of a stream's chunks into the final response."""

    def add(self, chunk: Any) -> str | None:
        """Fold ``chunk`` in; return its text delta (for the chunk event) or None."""
        ...

    def response(self) -> Response:
        """The aggregated response so far (called once, when the span ends)."""
        ...


class StreamState:
    """Everything the finaliser needs, kept apart from the proxy so GC can collect it."""

    __slots__ = (
        "__weakref__",
        "_add",
        "_gaps",
        "_last_arrival",
        "_span",
        "_texts",
        "_times",
        "accumulator",
        "chunks",
        "finalizer",
        "invocation",
        "max_events",
    )

    def __init__(self, invocation: Invocation, accumulator: StreamAccumulator) -> None:
        self.invocation = invocation
        self.accumulator = accumulator
        self.chunks = 0
        self.max_events = _max_chunk_events()
        self.finalizer: weakref.finalize[Any, Any] | None = None
        # Hoisted out of the per-chunk path.
        self._span = invocation.span
        self._add = accumulator.add
        # Arrival times (and text deltas, only when content goes on events) of the chunks
        # that get an event; turned into events once, when the stream ends.
        self._times: list[int] = []
        self._texts: list[str | None] | None = [] if invocation.content.on_event else None
        # Chunk-to-chunk gaps for ``time_per_output_chunk`` (None when no metrics).
        self._gaps = invocation.chunk_gaps
        self._last_arrival = 0

    def on_chunk(self, chunk: Any) -> None:
        try:
            if self.invocation._ended:
                return
            arrived = time_ns()
            index = self.chunks
            self.chunks = index + 1
            if index == 0:
                self.invocation.mark_first_chunk()
            elif (gaps := self._gaps) is not None and len(gaps) < MAX_CHUNK_GAPS:
                gaps.append(arrived - self._last_arrival)
            self._last_arrival = arrived
            try:
                text = self._add(chunk)
            except Exception:  # the chunk still counts and still gets its event
                _logger.debug("spanlake stream accumulator failed", exc_info=True)
                text = None
            if index < self.max_events:
                self._times.append(arrived)
                texts = self._texts
                if texts is not None:
                    texts.append(text[:_MAX_EVENT_TEXT] if text else None)
        except Exception:
            _logger.debug("spanlake stream chunk hook failed", exc_info=True)

    @contained
    def _add_events(self) -> None:
        """The noted chunk arrivals as span events (before anything else ends the span)."""
        times, texts = self._times, self._texts
        self._times = []
        self._texts = None if texts is None else []
        add_chunk_events(self._span, CHUNK_EVENT, times, texts)

    @contained
    def finish(self, how: str) -> None:
        inv = self.invocation
        if inv.ended:
            return
        self._detach()
        self._add_events()
        self._record(how)
        inv.end()

    @contained
    def fail(self, exc: BaseException) -> None:
        inv = self.invocation
        if inv.ended:
            return
        self._detach()
        self._add_events()
        self._record("error")
        inv.fail(exc)

    @contained
    def _record(self, how: str) -> None:
        """What the stream delivered; a failing accumulator must not keep the span open."""
        inv = self.invocation
        inv.span.set_attributes({STREAM_END: how, STREAM_CHUNKS: self.chunks})
        response = safe_invoke(self.accumulator.response)
        if response is not None:
            inv.set_response(response)

    def dropped(self) -> None:
        """Finaliser callback: the app let go of the stream before it ended."""
        try:
            self.finish("dropped")
        except BaseException:  # pragma: no cover - finalisers must never raise
            pass

    def _detach(self) -> None:
        if self.finalizer is not None:
            self.finalizer.detach()
            self.finalizer = None


def _own(proxy: object, state: StreamState) -> StreamState:
    """Make ``proxy`` the object whose collection ends ``state``'s span.

    Passing an existing ``state`` moves a stream's span onto a new proxy (an SDK helper that
    re-wraps the response the first proxy was given) without ending it.
    """
    state._detach()
    try:
        state.finalizer = weakref.finalize(proxy, state.dropped)
    except TypeError:  # pragma: no cover - every wrapt proxy supports weakrefs today
        state.finalizer = None
    return state


class SyncStreamProxy(_ProxyBase):
    """Proxy for a sync iterator of chunks (see module docstring)."""

    def __init__(
        self,
        wrapped: Any,
        invocation: Invocation,
        accumulator: StreamAccumulator,
        *,
        state: StreamState | None = None,
    ):
        super().__init__(wrapped)
        self._self_state = _own(self, state or StreamState(invocation, accumulator))
        self._self_iter: Any = None
        # Bound once: attribute lookups on a proxy add up over hundreds of chunks.
        self._self_next: Any = None
        self._self_on_chunk = self._self_state.on_chunk

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        step = self._self_next
        if step is None:
            it = self._self_iter = iter(self.__wrapped__)
            step = self._self_next = it.__next__
        try:
            chunk = step()
        except StopIteration:
            self._self_state.finish("exhausted")
            raise
        except BaseException as exc:
            self._self_state.fail(exc)
            raise
        self._self_on_chunk(chunk)
        return chunk

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.finish("closed")

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            if exc is not None:
                self._self_state.fail(exc)
            else:
                self._self_state.finish("context_exit")


class AsyncStreamProxy(_ProxyBase):
    """Proxy for an async iterator of chunks (see module docstring)."""

    def __init__(
        self,
        wrapped: Any,
        invocation: Invocation,
        accumulator: StreamAccumulator,
        *,
        state: StreamState | None = None,
    ):
        super().__init__(wrapped)
        self._self_state = _own(self, state or StreamState(invocation, accumulator))
        self._self_iter: Any = None

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        it = self._self_iter
        if it is None:
            it = self._self_iter = self.__wrapped__.__aiter__()
        try:
            chunk = await it.__anext__()
        except StopAsyncIteration:
            self._self_state.finish("exhausted")
            raise
        except BaseException as exc:
            self._self_state.fail(exc)
            raise
        self._self_state.on_chunk(chunk)
        return chunk

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_state.finish("closed")

    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._self_state.finish("closed")

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            if exc is not None:
                self._self_state.fail(exc)
            else:
                self._self_state.finish("context_exit")
