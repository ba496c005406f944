"""One seeded store and one live viewer server per test module (``ui_server``).

The store holds ordinary agent traces (tests/store/factories.py) in two experiments, a
weather agent whose LLM spans carry GenAI-semconv messages with a tool call and its
result (plus an assessment), a trace whose content is HTML/script (the XSS probe), and
one trace made by the OTel SDK through the real exporter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from store.factories import BASE_NS, make_trace

from spanlake.exporter import SpanlakeSpanExporter
from spanlake.exporter.records import Assessment, SpanEvent, SpanRecord, TokenUsage
from spanlake.exporter.store import Store, open_store
from spanlake.exporter.ui import UIServer, make_server

WEATHER_TRACE = "f" * 32
XSS_TRACE = "e" * 32
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
PROD_TRACES = {make_trace(n, tags={"env": "prod"})[0].trace_id for n in (0, 1, 2)}


@dataclass
class Served:
    url: str
    store: Store
    server: UIServer


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def weather_spans() -> list[SpanRecord]:
    """An agent: LLM asks for get_weather, the tool runs, LLM answers from its result."""
    t0 = BASE_NS + 500 * 1_000_000_000
    ms = 1_000_000
    user = {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}
    call = {
        "type": "tool_call",
        "id": "call_1",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    asked = {"role": "assistant", "parts": [call], "finish_reason": "tool_calls"}
    result = {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny, 21C"}],
    }
    answer = {
        "role": "assistant",
        "parts": [{"type": "text", "content": "It is sunny in Paris."}],
        "finish_reason": "stop",
    }
    system = [{"type": "text", "content": "You are a weather bot."}]

    def span(
        i: int, parent: int | None, name: str, span_type: str, start: int, end: int, **kw: object
    ) -> SpanRecord:
        return SpanRecord(
            trace_id=WEATHER_TRACE,
            span_id=f"{i:016x}",
            parent_span_id=f"{parent:016x}" if parent else None,
            experiment="weather",
            name=name,
            span_type=span_type,
            kind="INTERNAL" if span_type != "CHAT_MODEL" else "CLIENT",
            start_time_ns=t0 + start * ms,
            end_time_ns=t0 + end * ms,
            status="OK",
            resource={"service.name": "weather-bot"},
            **kw,  # type: ignore[arg-type]
        )

    def llm_attrs(inp: list[object], out: list[object]) -> dict[str, object]:
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.system_instructions": _json(system),
            "gen_ai.input.messages": _json(inp),
            "gen_ai.output.messages": _json(out),
        }

    return [
        span(
            1,
            None,
            "weather_agent",
            "AGENT",
            0,
            1000,
            inputs=_json({"question": "Weather in Paris?"}),
            outputs=_json("It is sunny in Paris."),
            trace_tags={"team": "geo"},
            trace_metadata={"user": "u-7"},
        ),
        span(
            2,
            1,
            "chat gpt-4o",
            "CHAT_MODEL",
            10,
            400,
            model="gpt-4o",
            provider="openai",
            token_usage=TokenUsage(120, 30, 150),
            attributes=llm_attrs([user], [asked]),
            events=[SpanEvent("gen_ai.choice", t0 + 390 * ms, {"index": 0})],
        ),
        span(
            3,
            1,
            "get_weather",
            "TOOL",
            420,
            500,
            inputs=_json({"city": "Paris"}),
            outputs=_json("sunny, 21C"),
        ),
        span(
            4,
            1,
            "chat gpt-4o",
            "CHAT_MODEL",
            520,
            990,
            model="gpt-4o",
            provider="openai",
            token_usage=TokenUsage(200, 12, 212),
            attributes=llm_attrs([user, asked, result], [answer]),
        ),
    ]


def xss_spans() -> list[SpanRecord]:
    t0 = BASE_NS + 600 * 1_000_000_000
    root = SpanRecord(
        trace_id=XSS_TRACE,
        span_id="e" * 16,
        parent_span_id=None,
        experiment="weather",
        name=XSS,
        span_type="CHAT_MODEL",
        kind="CLIENT",
        start_time_ns=t0,
        end_time_ns=t0 + 5_000_000,
        status="ERROR",
        status_message=XSS,
        inputs=_json({"messages": [{"role": "user", "content": XSS}]}),
        outputs=_json({"role": "assistant", "content": XSS}),
        model=XSS,
        token_usage=TokenUsage(5, 5, 10),
        attributes={
            XSS: XSS,
            "gen_ai.input.messages": _json(
                [
                    {
                        "role": XSS,
                        "parts": [
                            {"type": "text", "content": XSS},
                            {"type": "tool_call", "id": XSS, "name": XSS, "arguments": XSS},
                        ],
                    }
                ]
            ),
        },
        events=[SpanEvent(XSS, t0 + 1, {XSS: XSS})],
        trace_tags={XSS: XSS},
        trace_metadata={"note": XSS},
    )
    return [root]


def export_otel_trace(store: Store) -> str:
    """A trace made by the OTel SDK and written by the real exporter (the mapping moves
    ``gen_ai.input/output.messages`` into the span's inputs/outputs); returns its id."""
    exporter = SpanlakeSpanExporter(store, experiment="otel")
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("ui-tests")
    asked = [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_9",
                    "name": "lookup_order",
                    "arguments": {"order_id": 42},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]
    with tracer.start_as_current_span("otel_agent") as root:
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 11,
                "gen_ai.usage.output_tokens": 4,
                "gen_ai.input.messages": _json(
                    [{"role": "user", "parts": [{"type": "text", "content": "Where is #42?"}]}]
                ),
                "gen_ai.output.messages": _json(asked),
            },
        ):
            pass
    provider.shutdown()
    return f"{root.get_span_context().trace_id:032x}"


def seed(store: Store) -> None:
    spans: list[SpanRecord] = []
    for n in range(3):
        spans += make_trace(n, tags={"env": "prod"})
    spans += make_trace(3, tags={"env": "dev"}, status="ERROR")
    spans += make_trace(4, experiment="other", name="billing_agent")
    spans += weather_spans() + xss_spans()
    store.write_spans(spans)
    export_otel_trace(store)
    store.log_assessment(
        Assessment(trace_id=WEATHER_TRACE, name="helpful", value=True, rationale="answered")
    )


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    path: Path = tmp_path_factory.mktemp("ui") / "ui.db"
    store = open_store(f"sqlite:///{path}")
    seed(store)
    server = make_server(store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(server.url, store, server)
    server.shutdown()
    server.server_close()
    thread.join(5)
    store.close()
