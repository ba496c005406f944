"""chat.completions.create (non-streaming): attributes, content, errors, instrumentor lifecycle."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pydantic
import pytest
import wrapt
from fakes.openai_server import (
    ChatReply,
    FakeOpenAI,
    ToolCall,
    Usage,
    bad_request,
    rate_limited,
    server_error,
)
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sdk_features import openai_chat_has

from spanlake.instrumentation.openai import OpenAIInstrumentor

USER: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_request_response_and_usage_attributes(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(
        ChatReply(text="Sunny.", usage=Usage(100, 20, cached_tokens=64, reasoning_tokens=5))
    )
    result = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        stop=["END", "STOP"],
        seed=42,
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        n=2,
        response_format={"type": "json_object"},
    )
    span = one_span()
    a = attrs(span)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["spanlake.span.type"] == "CHAT_MODEL"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == fake.port
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.stop_sequences"] == ("END", "STOP")
    assert a["gen_ai.request.seed"] == 42
    assert a["gen_ai.request.frequency_penalty"] == 0.5
    assert a["gen_ai.request.presence_penalty"] == -0.5
    assert a["gen_ai.request.choice.count"] == 2
    assert a["gen_ai.output.type"] == "json"
    assert a["gen_ai.response.id"] == result.id
    assert a["gen_ai.response.model"] == "gpt-4o-mini-2025-01-01"
    assert a["gen_ai.response.finish_reasons"] == ("stop", "stop")
    # OpenAI's prompt_tokens already include the cached ones: kept as is, cache read apart.
    assert a["gen_ai.usage.input_tokens"] == 100
    assert a["gen_ai.usage.cache_read.input_tokens"] == 64
    assert a["gen_ai.usage.output_tokens"] == 40  # 20 per choice, n=2
    assert a["gen_ai.usage.reasoning.output_tokens"] == 5
    assert "gen_ai.system" not in a


def test_max_completion_tokens_and_single_stop_string(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    client.chat.completions.create(
        model="o4-mini", messages=USER, max_completion_tokens=256, stop="\n\n"
    )
    a = attrs(one_span())
    assert a["gen_ai.request.max_tokens"] == 256
    assert a["gen_ai.request.stop_sequences"] == ("\n\n",)
    assert "gen_ai.request.temperature" not in a  # not sent, not invented


def test_content_in_parts_schema_with_system_tools_and_tool_results(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ChatReply(text="It is sunny in Paris."))
    messages: list[Any] = [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer briefly."}]},
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny, 21C"},
    ]
    client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER_TOOL])
    a = attrs(one_span())
    # Semconv: system/developer messages inside ``messages`` are chat history and stay in
    # gen_ai.input.messages; gen_ai.system_instructions is for separately given instructions.
    assert "gen_ai.system_instructions" not in a
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are a weather bot."}]},
        {"role": "developer", "parts": [{"type": "text", "content": "Answer briefly."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_9",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_9", "response": "sunny, 21C"}],
        },
    ]
    assert json.loads(a["gen_ai.tool.definitions"]) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "It is sunny in Paris."}],
            "finish_reason": "stop",
        }
    ]


def test_tool_call_output(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(
        ChatReply(
            text=None,
            tool_calls=[
                ToolCall("get_weather", '{"city": "Paris"}', id="call_a"),
                ToolCall("get_weather", '{"city": "Rome"}', id="call_b"),
            ],
        )
    )
    result = client.chat.completions.create(model="gpt-4o", messages=USER, tools=[WEATHER_TOOL])
    assert result.choices[0].message.tool_calls is not None
    a = attrs(one_span())
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_a",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                },
                {
                    "type": "tool_call",
                    "id": "call_b",
                    "name": "get_weather",
                    "arguments": {"city": "Rome"},
                },
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_image_input_recorded_without_bytes(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    data_url = "data:image/png;base64," + "A" * 4000
    client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": data_url}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
    raw = attrs(one_span())["gen_ai.input.messages"]
    assert "AAAA" not in raw
    parts = json.loads(raw)[0]["parts"]
    assert parts[1] == {
        "type": "blob",
        "modality": "image",
        "mime_type": "image/png",
        "size_bytes": 3000,
    }
    assert parts[2] == {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"}


CONTENT_KEYS = ("gen_ai.input.messages", "gen_ai.output.messages")


@pytest.mark.parametrize(
    ("mode", "on_span", "on_event"),
    [
        (None, True, False),  # spanlake's default: capture on the span
        ("SPAN_ONLY", True, False),
        ("EVENT_ONLY", False, True),
        ("SPAN_AND_EVENT", True, True),
        ("NO_CONTENT", False, False),
        ("true", True, False),
        ("false", False, False),
    ],
)
def test_content_capture_modes(
    client: openai.OpenAI,
    one_span: Callable[[], ReadableSpan],
    monkeypatch: pytest.MonkeyPatch,
    mode: str | None,
    on_span: bool,
    on_event: bool,
) -> None:
    if mode is None:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    else:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": "sys"}, *USER]
    )
    span = one_span()
    a = attrs(span)
    for key in CONTENT_KEYS:
        assert (key in a) is on_span, key
    events = [e for e in span.events if e.name == "gen_ai.client.inference.operation.details"]
    assert bool(events) is on_event
    if on_event:
        details = dict(events[0].attributes or {})
        assert set(CONTENT_KEYS) <= set(details)
    # Usage and ids never depend on the content switch.
    assert a["gen_ai.usage.input_tokens"] > 0
    assert "gen_ai.response.id" in a


def test_content_size_cap_keeps_valid_json_and_marks_truncation(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", "1024")
    client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "word " * 5000}]
    )
    a = attrs(one_span())
    raw = a["gen_ai.input.messages"]
    assert len(raw.encode()) <= 1024
    assert json.loads(raw)[0]["role"] == "user"
    (marker,) = a["spanlake.truncated"]
    assert marker.startswith("gen_ai.input.messages:")
    assert int(marker.split(":")[1]) > 25_000


def test_api_key_never_recorded(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    client.chat.completions.create(model="gpt-4o", messages=USER)
    span = one_span()
    dumped = json.dumps(dict(span.attributes or {})) + json.dumps(
        [dict(e.attributes or {}) for e in span.events]
    )
    assert "sk-test-secret" not in dumped
    assert "authorization" not in dumped.lower()


# --- errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "exc_type"),
    [
        (bad_request("Invalid value for 'temperature'.", "temperature"), openai.BadRequestError),
        (rate_limited(retry_after=7), openai.RateLimitError),
        (server_error(), openai.InternalServerError),
    ],
)
def test_api_errors_propagate_unchanged_and_fail_the_span(
    client: openai.OpenAI,
    fake: FakeOpenAI,
    one_span: Callable[[], ReadableSpan],
    reply: Any,
    exc_type: type[openai.APIStatusError],
) -> None:
    fake.script(reply)
    with pytest.raises(exc_type) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.status_code == reply.status
    assert caught.value.body == reply.body()["error"]
    if reply.status == 429:
        assert caught.value.response.headers["retry-after"] == "7"
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == exc_type.__name__
    (event,) = [e for e in span.events if e.name == "exception"]
    assert str(dict(event.attributes or {})["exception.type"]).endswith(exc_type.__name__)


def test_malformed_request_is_rejected_like_the_api(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    with pytest.raises(openai.BadRequestError, match="empty array"):
        client.chat.completions.create(model="gpt-4o", messages=[])
    assert attrs(one_span())["error.type"] == "BadRequestError"


def test_connection_error_fails_the_span(one_span: Callable[[], ReadableSpan]) -> None:
    with openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0) as dead:
        with pytest.raises(openai.APIConnectionError):
            dead.chat.completions.create(model="gpt-4o", messages=USER)
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "APIConnectionError"


def test_sdk_validation_error_before_the_request(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    with pytest.raises(TypeError):
        client.chat.completions.create(model="gpt-4o")  # type: ignore[call-overload]
    assert attrs(one_span())["error.type"] == "TypeError"


# --- async ------------------------------------------------------------------------------------
async def test_async_chat(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ChatReply(text="async hi", usage=Usage(30, 3, cached_tokens=10)))
    result = await aclient.chat.completions.create(model="gpt-4o", messages=USER, temperature=0)
    assert result.choices[0].message.content == "async hi"
    span = one_span()
    a = attrs(span)
    assert span.name == "chat gpt-4o"
    assert a["gen_ai.request.temperature"] == 0.0
    assert a["gen_ai.usage.input_tokens"] == 30
    assert a["gen_ai.usage.cache_read.input_tokens"] == 10
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "async hi"}
    ]


async def test_async_error(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(rate_limited())
    with pytest.raises(openai.RateLimitError):
        await aclient.chat.completions.create(model="gpt-4o", messages=USER)
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "RateLimitError"


# --- instrumentor lifecycle -----------------------------------------------------------------
def test_client_created_before_instrument_is_traced(
    fake: FakeOpenAI, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    early = openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
    early.chat.completions.create(model="gpt-4o", messages=USER)  # resources already built
    assert span_exporter.get_finished_spans() == ()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        early.chat.completions.create(model="gpt-4o", messages=USER)
        assert len(span_exporter.get_finished_spans()) == 1
    finally:
        instrumentor.uninstrument()
        early.close()


def test_instrument_is_idempotent_and_uninstrument_unwraps(
    client: openai.OpenAI, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.instrument(tracer_provider=tracer_provider)  # second call: no double wrap
    try:
        client.chat.completions.create(model="gpt-4o", messages=USER)
        assert len(span_exporter.get_finished_spans()) == 1
    finally:
        instrumentor.uninstrument()
    instrumentor.uninstrument()  # second call: harmless
    span_exporter.clear()
    client.chat.completions.create(model="gpt-4o", messages=USER)
    assert span_exporter.get_finished_spans() == ()
    from openai.resources.chat.completions import Completions

    assert not isinstance(Completions.__dict__["create"], wrapt.ObjectProxy)


def test_span_nests_under_the_current_span_and_is_current_during_the_call(
    client: openai.OpenAI,
    tracer_provider: TracerProvider,
    instrumented: InMemorySpanExporter,
) -> None:
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("agent") as parent:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    llm, agent = instrumented.get_finished_spans()
    assert agent.context.span_id == parent.get_span_context().span_id
    assert llm.parent is not None and llm.parent.span_id == agent.context.span_id
    assert llm.context.trace_id == agent.context.trace_id


def test_suppressed_instrumentation_records_nothing(
    client: openai.OpenAI, instrumented: InMemorySpanExporter
) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert instrumented.get_finished_spans() == ()


def test_azure_client_reports_azure_provider(
    fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{fake.port}",
        api_key="k",
        api_version="2024-10-21",
        max_retries=0,
    )
    azure.chat.completions.create(model="my-deployment", messages=USER)
    azure.close()
    assert fake.requests[-1].path == "/openai/deployments/my-deployment/chat/completions"
    a = attrs(one_span())
    assert a["gen_ai.provider.name"] == "azure.ai.openai"
    assert a["gen_ai.request.model"] == "my-deployment"


def test_telemetry_failure_never_reaches_the_app(
    client: openai.OpenAI,
    fake: FakeOpenAI,
    one_span: Callable[[], ReadableSpan],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from spanlake.instrumentation.openai import _chat

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(_chat, "chat_response", broken)
    monkeypatch.setattr(_chat, "input_content", broken)
    fake.script(ChatReply(text="still fine"))
    result = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert result.choices[0].message.content == "still fine"
    span = one_span()  # still one span, ended, with the request side intact
    assert attrs(span)["gen_ai.request.model"] == "gpt-4o"
    assert span.status.status_code is StatusCode.UNSET


def test_no_span_leaks_into_the_app_context_after_the_call(
    client: openai.OpenAI, instrumented: InMemorySpanExporter
) -> None:
    client.chat.completions.create(model="gpt-4o", messages=USER)
    assert not trace_api.get_current_span().get_span_context().is_valid


# --- structured outputs, entry point, peers ---------------------------------------------------
class City(pydantic.BaseModel):
    city: str


@pytest.mark.skipif(not openai_chat_has("parse"), reason="chat.completions.parse is beta-only here")
def test_parse_structured_output(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ChatReply(text='{"city": "Paris"}'))
    parsed = client.chat.completions.parse(model="gpt-4o", messages=USER, response_format=City)
    assert parsed.choices[0].message.parsed == City(city="Paris")
    a = attrs(one_span())
    assert a["gen_ai.output.type"] == "json"
    assert a["gen_ai.response.id"] == parsed.id
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": '{"city": "Paris"}'}
    ]


async def test_async_responses_parse_structured_output(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    from fakes.openai_server import ResponsesReply

    fake.script(ResponsesReply(text='{"city": "Rome"}'))
    parsed = await aclient.responses.parse(model="gpt-4.1", input="where?", text_format=City)
    assert parsed.output_parsed == City(city="Rome")
    a = attrs(one_span())
    assert a["gen_ai.output.type"] == "json"
    assert a["gen_ai.response.id"] == parsed.id


def test_entry_point_loads_the_instrumentor() -> None:
    from importlib.metadata import entry_points

    (ep,) = entry_points(group="opentelemetry_instrumentor", name="spanlake_openai")
    assert ep.load() is OpenAIInstrumentor
    assert OpenAIInstrumentor().instrumentation_dependencies() == ("openai >= 1.66.0",)


def test_warns_when_a_peer_already_wrapped_the_sdk(
    tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    from openai.resources.embeddings import Embeddings

    from spanlake.instrumentation._genai._peers import reset_warnings

    def peer(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)

    reset_warnings()
    wrapt.wrap_function_wrapper("openai.resources.embeddings", "Embeddings.create", peer)
    instrumentor = OpenAIInstrumentor()
    try:
        with caplog.at_level("WARNING", logger="spanlake.instrumentation"):
            instrumentor.instrument(tracer_provider=tracer_provider)
        assert any("Embeddings.create" in r.getMessage() for r in caplog.records)
    finally:
        instrumentor.uninstrument()
        unwrap(Embeddings, "create")  # the peer's wrapper
        reset_warnings()
    assert not isinstance(Embeddings.__dict__["create"], wrapt.ObjectProxy)
