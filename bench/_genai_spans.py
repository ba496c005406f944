"""Realistic GenAI OTLP batches for the receiver benchmark and load tests.

Each trace: an agent root span, three chat calls (OTel GenAI semconv, ~2 KB of
attributes: messages as JSON, usage, model, finish reasons) and a tool call.
"""

from __future__ import annotations

import json
import os
import random

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_WORDS = (
    "the quick brown fox jumps over a lazy dog while models answer questions about data".split()
)


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, list):
        arr = AnyValue()
        arr.array_value.values.extend(AnyValue(string_value=str(v)) for v in value)
        return KeyValue(key=key, value=arr)
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _chat_attrs(rng: random.Random) -> dict[str, object]:
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": _text(rng, 40)}]},
        {"role": "user", "parts": [{"type": "text", "content": _text(rng, 120)}]},
    ]
    output = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": _text(rng, 80)}],
            "finish_reason": "stop",
        }
    ]
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.model": "claude-sonnet-4-5-20250929",
        "gen_ai.response.id": f"msg_{rng.getrandbits(64):016x}",
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.input_tokens": rng.randint(100, 4000),
        "gen_ai.usage.output_tokens": rng.randint(10, 800),
        "gen_ai.usage.cache_read.input_tokens": rng.randint(0, 100),
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.input.messages": json.dumps(messages),
        "gen_ai.output.messages": json.dumps(output),
        "server.address": "api.anthropic.com",
        "server.port": 443,
    }


def make_request(
    n_spans: int, seed: int, service: str = "bench-app", experiment: str | None = None
) -> ExportTraceServiceRequest:
    """One ExportTraceServiceRequest of ``n_spans`` spans with ids unique per ``seed``."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", service), _kv("service.version", "1.2.3")])
    if experiment:
        rs.resource.attributes.append(_kv("spanlake.experiment", experiment))
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.anthropic"
    t0 = 1_700_000_000_000_000_000 + seed * 1_000_000_000
    made = 0
    while made < n_spans:
        trace_id = os.urandom(16) if seed < 0 else rng.getrandbits(128).to_bytes(16, "big")
        root_id = rng.getrandbits(64).to_bytes(8, "big")
        for i in range(min(5, n_spans - made)):
            span = ss.spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if i == 0 else rng.getrandbits(64).to_bytes(8, "big")
            span.start_time_unix_nano = t0 + made * 1000 + i
            span.end_time_unix_nano = span.start_time_unix_nano + 5_000_000
            if i == 0:
                span.name = "invoke_agent support-bot"
                span.kind = 1
                span.attributes.extend(
                    [_kv("gen_ai.operation.name", "invoke_agent"), _kv("session.id", "s-1")]
                )
            else:
                span.parent_span_id = root_id
                span.kind = 3
                if i == 4:
                    span.name = "execute_tool search"
                    span.attributes.extend(
                        [
                            _kv("gen_ai.operation.name", "execute_tool"),
                            _kv("gen_ai.tool.name", "search"),
                            _kv("gen_ai.tool.call.arguments", json.dumps({"q": _text(rng, 8)})),
                            _kv("gen_ai.tool.call.result", _text(rng, 60)),
                        ]
                    )
                else:
                    span.name = "chat claude-sonnet-4-5"
                    span.attributes.extend(_kv(k, v) for k, v in _chat_attrs(rng).items())
            span.status.code = 1
        made += min(5, n_spans - made)
    return req
