"""OpenAI ``chat.completions`` configurations of the provider-overhead bench.

Same shape as the Anthropic ones: a real ``openai`` client over an ``httpx2.MockTransport``
serving canned chat-completion JSON and SSE (one chunk per ``data:`` line, usage in a final
chunk because the request asks ``stream_options.include_usage``).
"""

from __future__ import annotations

import json
from typing import Any

from _providers_common import PROMPT_MARKER, REPLY_MARKER, Calls, Setup, build_setup

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
SYSTEM = "You are a concise assistant for a travel company. Answer in two short paragraphs."
REPLY = (
    f"{REPLY_MARKER} Lisbon in late spring is mild and bright, with long evenings. "
    "Walk Alfama early, before the trams fill up, then take the river ferry to Cacilhas. "
) * 4
DELTAS = 32

MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
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
    "messages": MESSAGES,
    "max_completion_tokens": 1024,
    "temperature": 0.2,
    "stop": ["\n\nUser:"],
}
STREAM_EXTRA: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
USAGE = {"prompt_tokens": 412, "completion_tokens": 128, "total_tokens": 540}

CONFIGS: dict[str, str] = {
    "baseline": "no instrumentation",
    "ours": "spanlake OpenAIInstrumentor",
    # Ours with an SDK MeterProvider, so the GenAI client metrics are really recorded
    # ("ours" has none: the API's no-op meter, as for an app that configures no metrics).
    "ours-metrics": "spanlake OpenAIInstrumentor + SDK MeterProvider (GenAI metrics on)",
    "openllmetry": "OpenLLMetry opentelemetry-instrumentation-openai",
    "openinference": "OpenInference openinference-instrumentation-openai",
    "otel-v2": "official opentelemetry-instrumentation-openai-v2 (latest semconv, SPAN_ONLY)",
    "mlflow": "mlflow.openai.autolog()",
    "floor": "hand-written minimal OTel span, same attributes + content",
    # Diagnostic: the floor without one span event per stream chunk, to show what those cost.
    "floor-no-events": "the floor without per-chunk span events",
}
OTEL_CONFIGS = ("ours", "openllmetry", "openinference", "otel-v2", "floor")
PACKAGES = {
    "ours": "spanlake",
    "ours-metrics": "spanlake",
    "openllmetry": "opentelemetry-instrumentation-openai",
    "openinference": "openinference-instrumentation-openai",
    "otel-v2": "opentelemetry-instrumentation-openai-v2",
    "mlflow": "mlflow",
}


def _completion() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_763_000_000,
            "model": RESPONSE_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        }
    ).encode()


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_763_000_000,
        "model": RESPONSE_MODEL,
        "system_fingerprint": "fp_bench",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }
    return f"data: {json.dumps(body)}\n\n".encode()


def _sse_events() -> list[bytes]:
    step = max(1, len(REPLY) // DELTAS)
    events = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [_chunk({"content": REPLY[i : i + step]}) for i in range(0, len(REPLY), step)]
    events.append(_chunk({}, finish="stop"))
    events.append(_chunk(None, usage=USAGE))
    events.append(b"data: [DONE]\n\n")
    return events


def _client(stream: bool) -> Any:
    import httpx2
    import openai

    headers = {"x-request-id": "req_bench"}
    if stream:
        events = _sse_events()

        def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(
                200, headers={**headers, "content-type": "text/event-stream"}, content=iter(events)
            )
    else:
        body = _completion()

        def handler(request: httpx2.Request) -> httpx2.Response:
            return httpx2.Response(
                200, headers={**headers, "content-type": "application/json"}, content=body
            )

    return openai.OpenAI(
        api_key="sk-bench",
        base_url="https://api.openai.com/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def env_for(config: str) -> dict[str, str]:
    """Content capture on everywhere; the official package records it on spans only with the
    latest experimental conventions, so that configuration opts in."""
    env = {
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY",
        "TRACELOOP_TRACE_CONTENT": "true",
    }
    if config == "otel-v2":
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    return env


def build(config: str, processor: str) -> Setup:
    """Instrument (or not) as ``config`` says and return the calls to time."""
    return build_setup(
        config,
        processor,
        instrumentors={
            "ours": _ours,
            "ours-metrics": _ours_metrics,
            "openllmetry": _openllmetry,
            "openinference": _openinference,
            "otel-v2": _otel_v2,
        },
        plain=("baseline", "floor", "floor-no-events"),
        mlflow_flavor="openai",
        make_calls=_calls,
        versions=["openai", "httpx2", "opentelemetry-sdk", PACKAGES.get(config, "")],
    )


def _ours(provider: Any) -> None:
    from spanlake.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)


def _ours_metrics(provider: Any) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from spanlake.instrumentation.openai import OpenAIInstrumentor

    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    OpenAIInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)


def _openllmetry(provider: Any) -> None:
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)


def _openinference(provider: Any) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)


def _otel_v2(provider: Any) -> None:
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)


def _calls(config: str, provider: Any) -> Calls:
    sync_client = _client(stream=False)
    stream_client = _client(stream=True)
    if config.startswith("floor"):
        events = config == "floor"
        return _floor_calls(provider, sync_client, stream_client, chunk_events=events)

    def sync_call() -> object:
        return sync_client.chat.completions.create(**REQUEST)

    def stream_call() -> object:
        last = None
        for chunk in stream_client.chat.completions.create(**REQUEST, **STREAM_EXTRA):
            last = chunk
        return last

    return sync_call, stream_call


def _floor_calls(
    provider: Any, sync_client: Any, stream_client: Any, *, chunk_events: bool
) -> Calls:
    """The least a hand-written span can do: the same attributes and content, nothing else."""
    import time

    import orjson
    from opentelemetry.trace import SpanKind

    tracer = provider.get_tracer("bench.floor")
    base_attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.request.max_tokens": REQUEST["max_completion_tokens"],
        "gen_ai.request.temperature": REQUEST["temperature"],
        "gen_ai.request.stop_sequences": REQUEST["stop"],
        "spanlake.span.type": "CHAT_MODEL",
    }

    def request_content() -> dict[str, str]:
        system = [
            {"type": "text", "content": m["content"]} for m in MESSAGES if m["role"] == "system"
        ]
        msgs = [
            {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
            for m in MESSAGES
            if m["role"] != "system"
        ]
        return {
            "gen_ai.input.messages": orjson.dumps(msgs).decode(),
            "gen_ai.system_instructions": orjson.dumps(system).decode(),
        }

    def usage_attrs(usage: Any) -> dict[str, int]:
        return {
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
        }

    def sync_call() -> object:
        with tracer.start_as_current_span(
            f"chat {MODEL}",
            kind=SpanKind.CLIENT,
            attributes={**base_attrs, "gen_ai.request.stream": False},
        ) as span:
            span.set_attributes(request_content())
            resp = sync_client.chat.completions.create(**REQUEST)
            choice = resp.choices[0]
            out = [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": choice.message.content}],
                    "finish_reason": choice.finish_reason,
                }
            ]
            span.set_attributes(
                {
                    "gen_ai.response.id": resp.id,
                    "gen_ai.response.model": resp.model,
                    "gen_ai.response.finish_reasons": [choice.finish_reason],
                    **usage_attrs(resp.usage),
                    "gen_ai.output.messages": orjson.dumps(out).decode(),
                }
            )
            return resp

    def stream_call() -> object:
        start = time.time_ns()
        span = tracer.start_span(
            f"chat {MODEL}",
            kind=SpanKind.CLIENT,
            attributes={**base_attrs, "gen_ai.request.stream": True},
            start_time=start,
        )
        span.set_attributes(request_content())
        texts: list[str] = []
        attrs: dict[str, Any] = {}
        finish = None
        last = None
        for index, chunk in enumerate(
            stream_client.chat.completions.create(**REQUEST, **STREAM_EXTRA)
        ):
            last = chunk
            delta = None
            if index == 0:
                attrs["gen_ai.response.time_to_first_chunk"] = (time.time_ns() - start) / 1e9
                attrs["gen_ai.response.id"] = chunk.id
                attrs["gen_ai.response.model"] = chunk.model
            if chunk.choices:
                choice = chunk.choices[0]
                delta = choice.delta.content
                if delta:
                    texts.append(delta)
                finish = choice.finish_reason or finish
            if chunk.usage is not None:
                attrs.update(usage_attrs(chunk.usage))
            # One bare event per chunk at its arrival (public API), as ours records chunk
            # arrival in SPAN_ONLY (the text is in the output message).
            if chunk_events:
                span.add_event("gen_ai.chunk")
        attrs["gen_ai.response.finish_reasons"] = [finish or ""]
        attrs["gen_ai.output.messages"] = orjson.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "".join(texts)}],
                    "finish_reason": finish,
                }
            ]
        ).decode()
        span.set_attributes(attrs)
        span.end()
        return last

    return sync_call, stream_call
