"""The pure mapping: real SDK spans -> SpanRecord."""

from __future__ import annotations

import orjson
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from spanlake.exporter.mapping import (
    REDACTED,
    SpanInput,
    experiment_for,
    from_readable_span,
    map_span,
)


def _finished(attributes: dict, *, resource: dict | None = None, **kw):
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource or {"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test-scope")
    with tracer.start_as_current_span("outer"):
        with tracer.start_as_current_span("inner", attributes=attributes, **kw) as span:
            span.add_event("chunk", {"index": 1})
            if kw.get("kind") == SpanKind.CLIENT:
                span.set_status(Status(StatusCode.ERROR, "boom"))
    inner, outer = memory.get_finished_spans()
    return inner, outer


def test_genai_attributes_become_typed_fields() -> None:
    inner, outer = _finished(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.response.model": "claude-sonnet-4-20250514",
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.usage.cache_read.input_tokens": 100,
            "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
            "gen_ai.request.stop_sequences": ("a", "b"),
        },
        kind=SpanKind.CLIENT,
    )
    record = map_span(from_readable_span(inner), "exp")
    assert record.trace_id == f"{inner.context.trace_id:032x}" and len(record.trace_id) == 32
    assert record.span_id == f"{inner.context.span_id:016x}"
    assert record.parent_span_id == f"{outer.context.span_id:016x}"
    assert record.span_type == "CHAT_MODEL"
    assert record.kind == "CLIENT"
    assert record.status == "ERROR" and record.status_message == "boom"
    assert record.model == "claude-sonnet-4"  # request model wins over response model
    assert record.provider == "anthropic"
    assert record.token_usage is not None
    assert (record.token_usage.input_tokens, record.token_usage.output_tokens) == (120, 30)
    assert record.token_usage.total_tokens == 150
    assert record.token_usage.cache_read_input_tokens == 100
    assert orjson.loads(record.inputs or "")[0]["role"] == "user"
    assert "gen_ai.input.messages" not in record.attributes  # stored once, as inputs
    assert record.attributes["gen_ai.request.stop_sequences"] == ["a", "b"]
    assert record.events[0].name == "chunk" and record.events[0].attributes == {"index": 1}
    assert record.resource["service.name"] == "svc" and record.service_name == "svc"
    assert record.scope == "test-scope"
    assert map_span(from_readable_span(outer), "exp").parent_span_id is None


def test_fallbacks_for_other_instrumentations() -> None:
    inner, _ = _finished(
        {
            "gen_ai.system": "openai",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.operation.name": "embeddings",
        }
    )
    record = map_span(from_readable_span(inner), "exp")
    assert record.provider == "openai"
    assert record.model == "gpt-4o-2024-08-06"
    assert record.span_type == "EMBEDDING"
    assert record.token_usage is None  # no usage reported is not zero usage


def test_spanlake_keys_trace_fields_and_secrets() -> None:
    inner, _ = _finished(
        {
            "spanlake.span.type": "tool",
            "spanlake.span.inputs": '{"city": "Paris"}',
            "spanlake.span.outputs": '"sunny"',
            "spanlake.trace.tag.env": "prod",
            "spanlake.trace.metadata.app_version": "1.2",
            "spanlake.trace.client_request_id": "req-1",
            "user.id": "alice",
            "session.id": "s-9",
            "http.request.header.authorization": "Bearer sk-secret",
            "llm.api_key": "sk-123",
            "gen_ai.usage.output_tokens": 3,
        }
    )
    record = map_span(from_readable_span(inner), "exp")
    assert record.span_type == "TOOL"
    assert orjson.loads(record.inputs or "") == {"city": "Paris"}
    assert orjson.loads(record.outputs or "") == "sunny"
    assert record.trace_tags == {"env": "prod"}
    assert record.trace_metadata == {"app_version": "1.2", "user": "alice", "session": "s-9"}
    assert record.client_request_id == "req-1"
    assert record.attributes["http.request.header.authorization"] == REDACTED
    assert record.attributes["llm.api_key"] == REDACTED
    assert "sk-" not in orjson.dumps(record.attributes).decode()


def test_experiment_routing_precedence() -> None:
    span = SpanInput("a" * 32, "b" * 16, None, "n", "INTERNAL", 1, 2, "UNSET")
    assert experiment_for(span, "default") == "default"
    span.resource = {"spanlake.experiment": "from-resource"}
    assert experiment_for(span, "default") == "from-resource"
    span.attributes = {"spanlake.experiment": "from-span"}
    assert experiment_for(span, "default") == "from-span"
    assert experiment_for(span, "default", override="from-header") == "from-header"
