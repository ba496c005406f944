"""Provider-neutral records a Bedrock call is read into, and the stream aggregator.

Each body parser (converse, and one extension class per model family for ``invoke_model``)
fills these; the instrumentor turns them into span attributes in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from spanlake.instrumentation._genai import Response as CoreResponse
from spanlake.instrumentation._genai import Usage as CoreUsage
from spanlake.instrumentation._genai._parts import (
    Message,
    Part,
    output_message,
    reasoning_part,
    text_part,
    tool_call_part,
)
from spanlake.semconv import gen_ai

_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read", "cache_write")


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reports them: ``input_tokens`` EXCLUDES the cache."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None

    def merge(self, other: Usage) -> None:
        """Fill the counts still unknown from ``other`` (a lower-priority source)."""
        for name in _USAGE_FIELDS:
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))

    def to_core(self) -> CoreUsage | None:
        """The core's usage record (which adds the cache back into input tokens)."""
        if all(getattr(self, n) is None for n in _USAGE_FIELDS):
            return None
        return CoreUsage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_input_tokens=self.cache_read,
            cache_creation_input_tokens=self.cache_write,
            input_includes_cache=False,
        )


@dataclass(slots=True)
class Request:
    """What the app asked for."""

    operation: str
    #: Keyword arguments of the core ``Request`` (``temperature``, ``max_tokens``, ...).
    params: dict[str, Any] = field(default_factory=dict)
    system: list[Part] | None = None
    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Response:
    """What the model answered."""

    response_id: str | None = None
    model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    output: list[Message] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    embedding_dimensions: int | None = None

    def to_core(self, *, content: bool) -> CoreResponse:
        """The core's response record (output messages only when content is captured)."""
        attributes: dict[str, Any] = {}
        if self.embedding_dimensions is not None:
            attributes[gen_ai.EMBEDDINGS_DIMENSION_COUNT] = self.embedding_dimensions
        return CoreResponse(
            id=self.response_id if isinstance(self.response_id, str) else None,
            model=self.model if isinstance(self.model, str) else None,
            finish_reasons=self.finish_reasons or None,
            usage=self.usage.to_core(),
            output_messages=self.output if content and self.output else None,
            attributes=attributes,
        )


def as_int(value: Any) -> int | None:
    """``value`` if it is a real int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_from_invocation_metrics(payload: dict[str, Any]) -> Usage:
    """Usage from the ``amazon-bedrock-invocationMetrics`` of a stream's last chunk."""
    metrics = payload.get("amazon-bedrock-invocationMetrics")
    if not isinstance(metrics, dict):
        return Usage()
    return Usage(
        input_tokens=as_int(metrics.get("inputTokenCount")),
        output_tokens=as_int(metrics.get("outputTokenCount")),
        cache_read=as_int(metrics.get("cacheReadInputTokenCount")),
        cache_write=as_int(metrics.get("cacheWriteInputTokenCount")),
    )


def parse_arguments(raw: str) -> Any:
    """Tool-call arguments streamed as JSON text: the object, or the text if it is cut."""
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclass(slots=True)
class _Block:
    kind: str  # "text" | "reasoning" | "tool_call"
    text: list[str] = field(default_factory=list)
    call_id: str | None = None
    name: str | None = None


class StreamAggregator:
    """Builds a :class:`Response` from stream events, block by block, in arrival order."""

    __slots__ = ("_blocks", "delta", "response")

    def __init__(self) -> None:
        self.response = Response()
        self._blocks: dict[Any, _Block] = {}
        #: Text the last folded event added (for the chunk event), reset by the caller.
        self.delta: str | None = None

    def _block(self, index: Any, kind: str) -> _Block:
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = _Block(kind)
        return block

    def add_text(self, text: str, index: Any = 0) -> None:
        if text:
            self._block(index, "text").text.append(text)
            self.delta = text if self.delta is None else self.delta + text

    def add_reasoning(self, text: str, index: Any = "reasoning") -> None:
        if text:
            self._block(index, "reasoning").text.append(text)

    def start_tool_call(self, index: Any, call_id: str | None, name: str | None) -> None:
        block = self._block(index, "tool_call")
        block.kind, block.call_id, block.name = "tool_call", call_id, name

    def add_tool_arguments(self, index: Any, raw: str) -> None:
        if raw:
            self._block(index, "tool_call").text.append(raw)

    def add_tool_call(self, call_id: str | None, name: str | None, arguments: Any) -> None:
        """A tool call that arrives whole (Cohere, Mistral)."""
        index = ("tool", len(self._blocks))
        self.start_tool_call(index, call_id, name)
        self._block(index, "tool_call").text.append(
            arguments if isinstance(arguments, str) else json.dumps(arguments)
        )

    def finish(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self.response.finish_reasons = [reason]

    def build(self) -> Response:
        """The response so far (also valid for a stream cut short)."""
        parts: list[Part] = []
        text: list[str] | None = None  # the text of consecutive text blocks, joined
        for block in self._blocks.values():
            if block.kind == "text":
                # Nova streams every delta as its own block: one answer is one text part.
                if text is None:
                    text = []
                text.extend(block.text)
                continue
            if text is not None:
                parts.append(text_part("".join(text)))
                text = None
            joined = "".join(block.text)
            if block.kind == "tool_call":
                parts.append(tool_call_part(block.call_id, block.name, parse_arguments(joined)))
            else:
                parts.append(reasoning_part(joined))
        if text is not None:
            parts.append(text_part("".join(text)))
        reason = self.response.finish_reasons[0] if self.response.finish_reasons else None
        if parts or reason:
            self.response.output = [output_message("assistant", parts, reason)]
        return self.response
