"""A trace's spans -> its :class:`TraceInfo`: a pure function, the same for every store.

The record depends only on the *set* of spans, never on their arrival order: spans are
sorted by (start time, span id) before anything is merged, so a trace whose spans come in
many batches, from several processes, always rolls up the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

import orjson

from spanlake.exporter.pricing import price_for
from spanlake.exporter.records import SpanRecord, TokenUsage, TraceInfo, TraceState
from spanlake.semconv.spanlake_attrs import COST_PARTIAL

PREVIEW_MAX_CHARS = 1000
#: The roll-up order: start time, then span id (ties broken the same everywhere).
_ORDER = attrgetter("start_time_ns", "span_id")


def rollup(
    spans: Sequence[SpanRecord],
    *,
    experiment: str | None = None,
    tag_overrides: Mapping[str, str | None] | None = None,
) -> TraceInfo:
    """Derive the trace record. ``experiment`` defaults to the root's (else the earliest
    span's); ``tag_overrides`` are tags set later in the store (a None value deletes a tag
    the spans carry).

    Runs for every touched trace on every lake write, so it sorts once and gathers in one
    loop; ``tests/exporter/test_rollup_reference.py`` holds it equal to the plain version."""
    if not spans:
        raise ValueError("rollup needs at least one span")
    ordered = sorted(spans, key=_ORDER)
    # One loop gathers everything (traces are small: per-field comprehensions would cost
    # more in setup than in work).
    root: SpanRecord | None = None
    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    client_request_id: str | None = None
    models: set[str] = set()
    providers: set[str] = set()
    by_id: dict[str, SpanRecord] = {}
    used: list[SpanRecord] = []
    for s in ordered:
        by_id[s.span_id] = s
        if root is None and s.parent_span_id is None:
            root = s
        if s.trace_tags:
            tags.update(s.trace_tags)
        if s.trace_metadata:
            metadata.update(s.trace_metadata)
        if s.client_request_id:
            client_request_id = s.client_request_id  # the latest-starting one wins
        if s.model:
            models.add(s.model)
        if s.provider:
            providers.add(s.provider)
        if s.token_usage is not None:
            used.append(s)
    if tag_overrides:
        for key, value in tag_overrides.items():
            if value is None:
                tags.pop(key, None)
            else:
                tags[key] = value

    usage, cost, partial = _usage_and_cost(used, by_id)
    if partial:
        metadata[COST_PARTIAL] = "true"
    first = ordered[0]
    if root is None or root.end_time_ns is None:
        state = TraceState.IN_PROGRESS
    elif root.status == "ERROR":
        state = TraceState.ERROR
    else:
        state = TraceState.OK
    start_ns = root.start_time_ns if root else first.start_time_ns
    duration_ms = (
        (root.end_time_ns - root.start_time_ns) // 1_000_000
        if root is not None and root.end_time_ns is not None
        else None
    )
    service = root.service_name if root else None
    if not service:
        service = next((name for s in ordered if (name := s.service_name)), None)
    return TraceInfo(
        trace_id=first.trace_id,
        experiment=experiment or (root or first).experiment,
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
        models=sorted(models),
        providers=sorted(providers),
        service_name=service,
        client_request_id=client_request_id,
    )


def _usage_and_cost(
    used: Sequence[SpanRecord], by_id: Mapping[str, SpanRecord]
) -> tuple[TokenUsage, float | None, bool]:
    """Sum usage of spans (``used``: those with usage, in roll-up order) whose ancestors
    carry none (a framework's LLM span wrapping the SDK's is counted once); cost only
    where the model's price is known, and whether some counted tokens had no price (the
    cost is then a lower bound). ``by_id``: every span of the trace by id."""
    total = TokenUsage()
    cost: float | None = None
    partial = False
    for span in used:
        usage = span.token_usage
        if usage is None:
            continue
        # the parent inline (most spans are a root's children), the walk beyond it
        pid = span.parent_span_id
        parent = by_id.get(pid) if pid is not None else None
        if parent is not None and (
            parent.token_usage is not None
            or (parent.parent_span_id is not None and _ancestor_has_usage(parent, by_id))
        ):
            continue
        total.add(usage)
        if span.model and (price := price_for(span.model)) is not None:
            cost = (cost or 0.0) + price.cost(usage)
        elif usage.input_tokens or usage.output_tokens:
            partial = True
    return total, (round(cost, 10) if cost is not None else None), partial


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
    if (
        json_text[:1] == "{"
        and "\\u" not in json_text
        and '"messages"' not in json_text
        and '"input"' not in json_text
        and '"output"' not in json_text
        and '"choices"' not in json_text
    ):
        # Fast path: an object (or invalid JSON) without any key _messages looks for. With
        # no \u escape a key is spelled verbatim in the text, so the preview is the text
        # itself, exactly what the parse below would come to.
        return json_text[:PREVIEW_MAX_CHARS]
    try:
        value = orjson.loads(json_text)
    except orjson.JSONDecodeError:
        return json_text[:PREVIEW_MAX_CHARS]
    text = _chat_text(value, role)
    if text is None:
        text = value if isinstance(value, str) else json_text
    return text[:PREVIEW_MAX_CHARS]


def _is_chat(value: list[Any]) -> bool:
    """A non-empty list of objects that all carry a role."""
    if not value:
        return False
    for m in value:
        if not isinstance(m, dict) or "role" not in m:
            return False
    return True


def _messages(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value if _is_chat(value) else None
    if isinstance(value, dict):
        for key in ("messages", "input", "output"):
            inner = value.get(key)
            if isinstance(inner, list) and _is_chat(inner):
                return inner
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
