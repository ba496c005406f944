"""Accumulators for the two Bedrock event streams, plugged into the core's stream proxy.

The proxy hands each botocore event to the app unchanged; these fold a copy of what it
says (text, tool-call arguments, stop reason, usage) into a response for the span.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from spanlake.instrumentation._genai import Response as CoreResponse
from spanlake.instrumentation._genai import SyncStreamProxy

from . import _converse
from ._families import ModelFamily
from ._types import StreamAggregator, usage_from_invocation_metrics


class ConverseAccumulator:
    """For ``converse_stream``: events are ``{"contentBlockDelta": {...}}`` and friends."""

    __slots__ = ("_agg", "_content")

    def __init__(self, content: bool) -> None:
        self._agg = StreamAggregator()
        self._content = content

    def add(self, chunk: Any) -> str | None:
        if not isinstance(chunk, dict):
            return None
        agg = self._agg
        agg.delta = None
        _converse.on_stream_event(agg, chunk)
        return agg.delta

    def response(self) -> CoreResponse:
        return self._agg.build().to_core(content=self._content)


class InvokeAccumulator:
    """For ``invoke_model_with_response_stream``: events are ``{"chunk": {"bytes": b"{json}"}}``
    in the model family's own streaming format."""

    __slots__ = ("_agg", "_content", "_family")

    def __init__(self, family: ModelFamily, content: bool) -> None:
        self._agg = StreamAggregator()
        self._family = family
        self._content = content

    def add(self, chunk: Any) -> str | None:
        part = chunk.get("chunk") if isinstance(chunk, dict) else None
        raw = part.get("bytes") if isinstance(part, dict) else None
        if not raw:
            return None
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            return None
        agg = self._agg
        agg.delta = None
        self._family.on_chunk(agg, payload)
        if "amazon-bedrock-invocationMetrics" in payload:
            agg.response.usage.merge(usage_from_invocation_metrics(payload))
        return agg.delta

    def response(self) -> CoreResponse:
        return self._agg.build().to_core(content=self._content)


class EventStreamProxy(SyncStreamProxy):
    """The core's stream proxy, with two Bedrock specifics:

    - ``with`` fails exactly as on botocore's ``EventStream`` (a ``TypeError``), as long as
      that class is no context manager;
    - ``close()`` while an exception is being handled (``with contextlib.closing(stream):``
      left by an error raised in the loop, or ``close()`` in an ``except`` block) records
      that exception on the span, like the core's ``with``-exit does for SDK streams.
    """

    def close(self) -> Any:
        exc = sys.exc_info()[1]
        if exc is None:
            return super().close()
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.fail(exc)

    def __enter__(self) -> EventStreamProxy:
        if not hasattr(self.__wrapped__, "__enter__"):
            name = type(self.__wrapped__).__name__
            raise TypeError(f"'{name}' object does not support the context manager protocol")
        super().__enter__()
        return self
