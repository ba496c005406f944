"""MLflow-style span types and their mapping to and from ``gen_ai.operation.name``."""

from __future__ import annotations

from enum import Enum

from spanlake.semconv.gen_ai import Operation


class SpanType(str, Enum):
    """What a span does; stored as its string value."""

    LLM = "LLM"
    CHAT_MODEL = "CHAT_MODEL"
    AGENT = "AGENT"
    TOOL = "TOOL"
    RETRIEVER = "RETRIEVER"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    CHAIN = "CHAIN"
    PARSER = "PARSER"
    MEMORY = "MEMORY"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"
    UNKNOWN = "UNKNOWN"

    def __str__(self) -> str:
        return self.value


_FROM_OPERATION: dict[str, SpanType] = {
    Operation.CHAT: SpanType.CHAT_MODEL,
    Operation.TEXT_COMPLETION: SpanType.LLM,
    Operation.GENERATE_CONTENT: SpanType.LLM,
    Operation.EMBEDDINGS: SpanType.EMBEDDING,
    Operation.CREATE_AGENT: SpanType.AGENT,
    Operation.INVOKE_AGENT: SpanType.AGENT,
    Operation.EXECUTE_TOOL: SpanType.TOOL,
    Operation.RETRIEVAL: SpanType.RETRIEVER,
}

_TO_OPERATION: dict[SpanType, str] = {
    SpanType.CHAT_MODEL: Operation.CHAT,
    SpanType.LLM: Operation.TEXT_COMPLETION,
    SpanType.EMBEDDING: Operation.EMBEDDINGS,
    SpanType.AGENT: Operation.INVOKE_AGENT,
    SpanType.TOOL: Operation.EXECUTE_TOOL,
    SpanType.RETRIEVER: Operation.RETRIEVAL,
}

#: Span types whose token usage counts toward a trace's totals.
LLM_SPAN_TYPES: frozenset[str] = frozenset(
    {SpanType.LLM.value, SpanType.CHAT_MODEL.value, SpanType.EMBEDDING.value}
)


def span_type_from_operation(operation: str | None) -> SpanType | None:
    """The span type a ``gen_ai.operation.name`` implies, or None when unknown."""
    if not operation:
        return None
    return _FROM_OPERATION.get(operation)


def operation_from_span_type(span_type: SpanType | str) -> str | None:
    """The ``gen_ai.operation.name`` a span type implies, or None when there is none."""
    try:
        return _TO_OPERATION.get(SpanType(span_type))
    except ValueError:
        return None


def coerce_span_type(value: object) -> SpanType:
    """A ``SpanType`` from user input (enum or case-insensitive string); UNKNOWN otherwise."""
    if isinstance(value, SpanType):
        return value
    if isinstance(value, str):
        try:
            return SpanType(value.upper())
        except ValueError:
            return SpanType.UNKNOWN
    return SpanType.UNKNOWN
