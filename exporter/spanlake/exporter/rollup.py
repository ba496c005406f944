"""A trace's spans -> its :class:`TraceInfo`: a pure function, the same for every store.

The record depends only on the *set* of spans, never on their arrival order: spans are
sorted by (start time, span id) before anything is merged, so a trace whose spans come in
many batches, from several processes, always rolls up the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from spanlake.exporter.pricing import price_for
from spanlake.exporter.records import SpanRecord, TokenUsage, TraceInfo, TraceState

PREVIEW_MAX_CHARS = 1000


def rollup(
    spans: Sequence[SpanRecord],
    *,
    experiment: str | None = None,
    tag_overrides: Mapping[str, str | None] | None = None,
) -> TraceInfo:
    """Derive the trace record. ``experiment`` defaults to the root's (else the earliest
    span's); ``tag_overrides`` are tags set later in the store (a None value deletes a tag
    the spans carry)."""
    if not spans:
        raise ValueError("rollup needs at least one span")
    ordered = sorted(spans, key=lambda s: (s.start_time_ns, s.span_id))
    roots = [s for s in ordered if s.parent_span_id is None]
    root = roots[0] if roots else None

    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    client_request_id: str | None = None
    for span in ordered:
        tags.update(span.trace_tags)
        metadata.update(span.trace_metadata)
        client_request_id = span.client_request_id or client_request_id
    for key, value in (tag_overrides or {}).items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value

    usage, cost = _usage_and_cost(ordered)
    if root is None or root.end_time_ns is None:
        state = TraceState.IN_PROGRESS
    elif root.status == "ERROR":
        state = TraceState.ERROR
    else:
        state = TraceState.OK
    start_ns = root.start_time_ns if root else ordered[0].start_time_ns
    duration_ms = (
        (root.end_time_ns - root.start_time_ns) // 1_000_000
        if root is not None and root.end_time_ns is not None
        else None
    )
    service = next(
        (s.service_name for s in ([root] if root else []) + ordered if s.service_name), None
    )
    return TraceInfo(
        trace_id=ordered[0].trace_id,
        experiment=experiment or (root or ordered[0]).experiment,
        name=root.name if root else None,
        state=state,
        request_time_ms=start_ns // 1_000_000,
        execution_time_ms=duration_ms,
        request_preview=preview(root.inputs, "user") if root else None,
        response_preview=preview(root.outputs, "assistant") if root else None,
        tags=tags,
        metadata=metadata,
        token_usage=usage,
        cost_usd=cost,
        span_count=len(ordered),
        models=sorted({s.model for s in ordered if s.model}),
        providers=sorted({s.provider for s in ordered if s.provider}),
        service_name=service,
        client_request_id=client_request_id,
    )


def _usage_and_cost(spans: Sequence[SpanRecord]) -> tuple[TokenUsage, float | None]:
    """Sum usage of spans whose ancestors carry none (a framework's LLM span wrapping the
    SDK's is counted once); cost only where the model's price is known."""
    by_id = {s.span_id: s for s in spans}
    total = TokenUsage()
    cost: float | None = None
    for span in spans:
        if span.token_usage is None or _ancestor_has_usage(span, by_id):
            continue
        total.add(span.token_usage)
        price = price_for(span.model) if span.model else None
        if price is not None:
            cost = (cost or 0.0) + price.cost(span.token_usage)
    return total, (round(cost, 10) if cost is not None else None)


def _ancestor_has_usage(span: SpanRecord, by_id: Mapping[str, SpanRecord]) -> bool:
    seen: set[str] = set()
    parent_id = span.parent_span_id
    while parent_id is not None and parent_id in by_id and parent_id not in seen:
        seen.add(parent_id)
        parent = by_id[parent_id]
        if parent.token_usage is not None:
            return True
        parent_id = parent.parent_span_id
    return False


def preview(json_text: str | None, role: str) -> str | None:
    """A short human preview of inputs/outputs: for chat payloads the last message of
    ``role``; otherwise the value itself. Capped at :data:`PREVIEW_MAX_CHARS`."""
    if json_text is None:
        return None
    try:
        value = orjson.loads(json_text)
    except orjson.JSONDecodeError:
        return json_text[:PREVIEW_MAX_CHARS]
    text = _chat_text(value, role)
    if text is None:
        text = value if isinstance(value, str) else json_text
    return text[:PREVIEW_MAX_CHARS]


def _messages(value: Any) -> list[Any] | None:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and "role" in m for m in value)
    ):
        return value
    if isinstance(value, dict):
        for key in ("messages", "input", "output"):
            inner = value.get(key)
            if isinstance(inner, list):
                found = _messages(inner)
                if found:
                    return found
        choices = value.get("choices")
        if isinstance(choices, list):
            return [
                c["message"]
                for c in choices
                if isinstance(c, dict) and isinstance(c.get("message"), dict)
            ]
    return None


def _chat_text(value: Any, role: str) -> str | None:
    messages = _messages(value)
    if not messages:
        return None
    for message in reversed(messages):
        if message.get("role") == role:
            return _content_text(message)
    return _content_text(messages[-1])


def _content_text(message: dict[str, Any]) -> str:
    for key in ("parts", "content"):
        content = message.get(key)
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [
                str(p.get("content") or p.get("text") or "")
                for p in content
                if isinstance(p, dict)
                and p.get("type") in ("text", None, "input_text", "output_text")
            ]
            if any(texts):
                return "\n".join(t for t in texts if t)
    return orjson.dumps(message).decode()
