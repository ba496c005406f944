"""Anthropic configurations of the provider-overhead bench.

The SDK talks to an ``httpx2.MockTransport`` that serves canned Messages JSON and SSE bodies
(the SSE one chunk per event, as a server would flush them), so the network is out and only
the SDK plus the instrumentation's own work is timed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from _providers_common import PROMPT_MARKER, REPLY_MARKER, Setup, build_setup

MODEL = "claude-sonnet-4-6"
RESPONSE_MODEL = "claude-sonnet-4-6"
SYSTEM = "You are a concise assistant for a travel company. Answer in two short paragraphs."
REPLY = (
    f"{REPLY_MARKER} Lisbon in late spring is mild and bright, with long evenings. "
    "Walk Alfama early, before the trams fill up, then take the river ferry to Cacilhas. "
) * 4
DELTAS = 32  # text chunks in the streamed reply

MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": f"{PROMPT_MARKER} I am planning three days in Lisbon in May."},
    {"role": "assistant", "content": "Happy to help. What do you enjoy most when travelling?"},
    {
        "role": "user",
        "content": "Food, old neighbourhoods and a bit of walking. "
        "Which areas should I prioritise, and is a day trip worth it? " * 3,
    },
]
REQUEST: dict[str, Any] = {
    "model": MODEL,
    "max_tokens": 1024,
    "system": SYSTEM,
    "messages": MESSAGES,
    "stop_sequences": ["\n\nHuman:"],
}
USAGE = {
    "input_tokens": 412,
    "output_tokens": 128,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}

CONFIGS: dict[str, str] = {
    "baseline": "no instrumentation (SDK spans off)",
    "ours": "spanlake AnthropicInstrumentor",
    # Ours with an SDK MeterProvider, so the GenAI client metrics are really recorded
    # ("ours" has none: the API's no-op meter, as for an app that configures no metrics).
    "ours-metrics": "spanlake AnthropicInstrumentor + SDK MeterProvider (GenAI metrics on)",
    # Diagnostic: ours with the SDK's own tracing machinery off, to show what that costs us.
    "ours-native-off": "spanlake AnthropicInstrumentor, ANTHROPIC_OPEN_TELEMETRY=false",
    "openllmetry": "OpenLLMetry opentelemetry-instrumentation-anthropic",
    "openinference": "OpenInference openinference-instrumentation-anthropic",
    "sdk-native": "anthropic SDK native OTel spans, content mode",
    "mlflow": "mlflow.anthropic.autolog()",
    "floor": "hand-written minimal OTel span, same attributes + content",
    # Diagnostic: the floor without one span event per stream chunk, to show what those cost.
    "floor-no-events": "the floor without per-chunk span events",
}
#: Configurations whose cost depends on our TracerProvider's span processor.
OTEL_CONFIGS = ("ours", "openllmetry", "openinference", "sdk-native", "floor")
PACKAGES = {
    "ours": "spanlake",
    "ours-metrics": "spanlake",
    "ours-native-off": "spanlake",
    "openllmetry": "opentelemetry-instrumentation-anthropic",
    "openinference": "openinference-instrumentation-anthropic",
    "mlflow": "mlflow",
    "sdk-native": "anthropic",
}


def _json_body() -> bytes:
    return json.dumps(
        {
            "id": "msg_01BenchBenchBenchBench",
            "type": "message",
            "role": "assistant",
            "model": RESPONSE_MODEL,
            "content": [{"type": "text", "text": REPLY}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": USAGE,
        }
    ).encode()


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _sse_events() -> list[bytes]:
    step = max(1, len(REPLY) // DELTAS)
    pieces = [REPLY[i : i + step] for i in range(0, len(REPLY), step)]
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_01BenchBenchBenchBench",
            "type": "message",
            "role": "assistant",
            "model": RESPONSE_MODEL,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**USAGE, "output_tokens": 1},
        },
    }
    events = [
        _sse("message_start", start),
        _sse(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        _sse("ping", {"type": "ping"}),
    ]
    for piece in pieces:
        events.append(
            _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
        )
    events += [
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": USAGE["output_tokens"]},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    return events


def _client(stream: bool) -> Any:
    """A real client whose transport serves one canned body (JSON or SSE) to every request."""
    import anthropic
    import httpx2

    headers = {"request-id": "req_bench"}
    if stream:
        events = _sse_events()

        def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(
                200,
                headers={**headers, "content-type": "text/event-stream"},
                content=iter(events),
            )
    else:
        body = _json_body()

        def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(
                200, headers={**headers, "content-type": "application/json"}, content=body
            )

    return anthropic.Anthropic(
        api_key="sk-ant-bench",
        base_url="https://api.anthropic.com",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def env_for(config: str) -> dict[str, str]:
    """Environment of a configuration's worker: content capture on everywhere it can be."""
    env = {
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        "TRACELOOP_TRACE_CONTENT": "true",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "",
    }
    if config == "sdk-native":
        env["ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE"] = "content"
    elif config != "ours":
        # Ours runs with the SDK's default settings, as a user would have them: if it keeps
        # the native span, that cost is ours too.
        env["ANTHROPIC_OPEN_TELEMETRY"] = "false"
    return env


def build(config: str, processor: str) -> Setup:
    """Instrument (or not) as ``config`` says and return the calls to time."""
    return build_setup(
        config,
        processor,
        instrumentors={
            "ours": _ours,
            "ours-metrics": _ours_metrics,
            "ours-native-off": _ours,
            "openllmetry": _openllmetry,
            "openinference": _openinference,
        },
        plain=("baseline", "sdk-native", "floor", "floor-no-events"),
        mlflow_flavor="anthropic",
        make_calls=_calls,
        versions=["anthropic", "httpx2", "opentelemetry-sdk", PACKAGES.get(config, "")],
    )


def _ours(provider: Any) -> None:
    from spanlake.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().instrument(tracer_provider=provider)


def _ours_metrics(provider: Any) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from spanlake.instrumentation.anthropic import AnthropicInstrumentor

    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    AnthropicInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)


def _openllmetry(provider: Any) -> None:
    from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().instrument(tracer_provider=provider)


def _openinference(provider: Any) -> None:
    from openinference.instrumentation.anthropic import AnthropicInstrumentor

    AnthropicInstrumentor().instrument(tracer_provider=provider)


def _calls(config: str, provider: Any) -> tuple[Callable[[], object], Callable[[], object]]:
    sync_client = _client(stream=False)
    stream_client = _client(stream=True)
    if config.startswith("floor"):
        events = config == "floor"
        return _floor_calls(provider, sync_client, stream_client, chunk_events=events)

    def sync_call() -> object:
        return sync_client.messages.create(**REQUEST)

    def stream_call() -> object:
        last = None
        for event in stream_client.messages.create(**REQUEST, stream=True):
            last = event
        return last

    return sync_call, stream_call


def _floor_calls(
    provider: Any, sync_client: Any, stream_client: Any, *, chunk_events: bool
) -> tuple[Callable[[], object], Callable[[], object]]:
    """The least a hand-written span can do: the same attributes and content, nothing else."""
    import time

    import orjson
    from opentelemetry.trace import SpanKind

    tracer = provider.get_tracer("bench.floor")
    model = REQUEST["model"]
    base_attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": model,
        "server.address": "api.anthropic.com",
        "server.port": 443,
        "gen_ai.request.max_tokens": REQUEST["max_tokens"],
        "gen_ai.request.stop_sequences": REQUEST["stop_sequences"],
        "spanlake.span.type": "CHAT_MODEL",
    }

    def request_content(kwargs: dict[str, Any]) -> dict[str, str]:
        msgs = [
            {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
            for m in kwargs["messages"]
        ]
        return {
            "gen_ai.input.messages": orjson.dumps(msgs).decode(),
            "gen_ai.system_instructions": orjson.dumps(
                [{"type": "text", "content": kwargs["system"]}]
            ).decode(),
        }

    def sync_call() -> object:
        with tracer.start_as_current_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes={**base_attrs, "gen_ai.request.stream": False},
        ) as span:
            span.set_attributes(request_content(REQUEST))
            msg = sync_client.messages.create(**REQUEST)
            parts = [{"type": "text", "content": b.text} for b in msg.content if b.type == "text"]
            span.set_attributes(
                {
                    "gen_ai.response.id": msg.id,
                    "gen_ai.response.model": msg.model,
                    "gen_ai.response.finish_reasons": [msg.stop_reason or ""],
                    "gen_ai.usage.input_tokens": msg.usage.input_tokens,
                    "gen_ai.usage.output_tokens": msg.usage.output_tokens,
                    "gen_ai.output.messages": orjson.dumps(
                        [{"role": "assistant", "parts": parts, "finish_reason": msg.stop_reason}]
                    ).decode(),
                }
            )
            return msg

    def stream_call() -> object:
        start = time.time_ns()
        span = tracer.start_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes={**base_attrs, "gen_ai.request.stream": True},
            start_time=start,
        )
        span.set_attributes(request_content(REQUEST))
        texts: list[str] = []
        attrs: dict[str, Any] = {}
        index = 0
        last = None
        for event in _iter(stream_client.messages.create(**REQUEST, stream=True)):
            last = event
            if index == 0:
                attrs["gen_ai.response.time_to_first_chunk"] = (time.time_ns() - start) / 1e9
            kind = event.type
            index += 1
            delta = None
            if kind == "content_block_delta" and event.delta.type == "text_delta":
                delta = event.delta.text
                texts.append(delta)
            elif kind == "message_start":
                attrs["gen_ai.response.id"] = event.message.id
                attrs["gen_ai.response.model"] = event.message.model
                attrs["gen_ai.usage.input_tokens"] = event.message.usage.input_tokens
            elif kind == "message_delta":
                attrs["gen_ai.response.finish_reasons"] = [event.delta.stop_reason or ""]
                attrs["gen_ai.usage.output_tokens"] = event.usage.output_tokens
            # One bare event per chunk at its arrival (public API), as ours records chunk
            # arrival in SPAN_ONLY (the text is in the output message).
            if chunk_events:
                span.add_event("gen_ai.chunk")
        attrs["gen_ai.output.messages"] = orjson.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "".join(texts)}]}]
        ).decode()
        span.set_attributes(attrs)
        span.end()
        return last

    return sync_call, stream_call


def _iter(stream: Any) -> Iterator[Any]:
    yield from stream
