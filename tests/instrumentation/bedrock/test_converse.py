"""``converse`` through the real boto3 client: attributes, content, tools, usage, errors,
content modes, instrument/uninstrument."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from fakes.bedrock_server import ErrorReply, FakeBedrock, JsonReply
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sdk_features import botocore_knows

from spanlake.instrumentation.bedrock import BedrockInstrumentor

CLAUDE = "anthropic.claude-3-5-sonnet-20241022-v2:0"
TOOLS: list[dict[str, Any]] = [
    {
        "toolSpec": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "inputSchema": {
                "json": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                }
            },
        }
    }
]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def converse_reply(
    content: list[dict[str, Any]], stop: str = "end_turn", **usage: int
) -> JsonReply:
    counts = {"inputTokens": 7, "outputTokens": 5, "totalTokens": 12, **usage}
    return JsonReply(
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": counts,
            "metrics": {"latencyMs": 10},
        }
    )


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_converse_span_carries_request_response_and_content(
    client: Any, one_span: Callable[[], ReadableSpan]
) -> None:
    response = client.converse(
        modelId=CLAUDE,
        system=[{"text": "You are terse."}],
        messages=[user("Describe the purpose of a 'hello world' program in one line.")],
        inferenceConfig={
            "maxTokens": 512,
            "temperature": 0.1,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
        additionalModelRequestFields={"top_k": 40},
    )
    assert response["output"]["message"]["content"][0]["text"].startswith("Echo: Describe")

    span = one_span()
    a = attrs(span)
    assert span.name == f"chat {CLAUDE}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "aws.bedrock"
    assert a["gen_ai.request.model"] == CLAUDE
    assert a["spanlake.span.type"] == "CHAT_MODEL"
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.request.max_tokens"] == 512
    assert a["gen_ai.request.temperature"] == pytest.approx(0.1)
    assert a["gen_ai.request.top_p"] == pytest.approx(0.9)
    assert a["gen_ai.request.top_k"] == 40
    assert a["gen_ai.request.stop_sequences"] == ("END",)
    assert a["server.address"] == "127.0.0.1"
    assert isinstance(a["server.port"], int)
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert a["gen_ai.usage.input_tokens"] == response["usage"]["inputTokens"]
    assert a["gen_ai.usage.output_tokens"] == response["usage"]["outputTokens"]
    assert a["aws.request_id"] == response["ResponseMetadata"]["RequestId"]
    assert "gen_ai.system" not in a

    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are terse."}
    ]
    inputs = json.loads(a["gen_ai.input.messages"])
    assert inputs[0]["role"] == "user"
    assert inputs[0]["parts"][0]["content"].startswith("Describe the purpose")
    outputs = json.loads(a["gen_ai.output.messages"])
    assert outputs == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": response["output"]["message"]["content"][0]["text"]}
            ],
            "finish_reason": "end_turn",
        }
    ]


@pytest.mark.parametrize("latest", [False, True], ids=["v1.41", "latest_experimental"])
def test_usage_input_tokens_include_cache_read_and_write(
    client: Any,
    fake: FakeBedrock,
    one_span: Callable[[], ReadableSpan],
    monkeypatch: pytest.MonkeyPatch,
    latest: bool,
) -> None:
    if latest:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    usage_shape = client.meta.service_model.shape_for("TokenUsage")
    if "cacheReadInputTokens" not in usage_shape.members:
        pytest.skip("this botocore predates Bedrock prompt caching")
    fake.enqueue(
        converse_reply(
            [{"text": "cached"}],
            inputTokens=4,
            outputTokens=23,
            cacheReadInputTokens=10339,
            cacheWriteInputTokens=12,
            totalTokens=10378,
        )
    )
    response = client.converse(modelId=CLAUDE, messages=[user("hi")])
    assert response["usage"]["cacheReadInputTokens"] == 10339

    a = attrs(one_span())
    assert a["gen_ai.usage.input_tokens"] == 4 + 10339 + 12
    assert a["gen_ai.usage.cache_read.input_tokens"] == 10339
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 12
    assert a["gen_ai.usage.output_tokens"] == 23
    # The newer name for cache writes only behind the opt-in switch.
    assert a.get("gen_ai.usage.cache_write.input_tokens") == (12 if latest else None)


def test_tool_use_round_trip_records_definitions_calls_and_results(
    client: Any,
    fake: FakeBedrock,
    one_span: Callable[[], ReadableSpan],
    instrumented: InMemorySpanExporter,
) -> None:
    call = {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "San Francisco, CA"}}
    fake.enqueue(converse_reply([{"text": "Let me check."}, {"toolUse": call}], stop="tool_use"))
    messages = [user("What's the weather like in San Francisco today?")]
    first = client.converse(modelId=CLAUDE, messages=messages, toolConfig={"tools": TOOLS})
    assert first["stopReason"] == "tool_use"

    a = attrs(one_span())
    assert a["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert json.loads(a["gen_ai.tool.definitions"]) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": TOOLS[0]["toolSpec"]["inputSchema"]["json"],
        }
    ]
    out = json.loads(a["gen_ai.output.messages"])[0]
    assert out["parts"] == [
        {"type": "text", "content": "Let me check."},
        {
            "type": "tool_call",
            "id": "tooluse_1",
            "name": "get_weather",
            "arguments": {"city": "San Francisco, CA"},
        },
    ]

    instrumented.clear()
    messages.append(first["output"]["message"])
    messages.append(
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "sunny"}]}}],
        }
    )
    client.converse(modelId=CLAUDE, messages=messages, toolConfig={"tools": TOOLS})
    inputs = json.loads(attrs(one_span())["gen_ai.input.messages"])
    assert [m["role"] for m in inputs] == ["user", "assistant", "tool"]
    assert inputs[1]["parts"][1]["type"] == "tool_call"
    assert inputs[2]["parts"] == [
        {"type": "tool_call_response", "id": "tooluse_1", "response": "sunny"}
    ]


def test_image_block_recorded_without_bytes_by_default(
    client: Any, one_span: Callable[[], ReadableSpan]
) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 600
    message = {
        "role": "user",
        "content": [
            {"text": "what is this?"},
            {"image": {"format": "png", "source": {"bytes": png}}},
        ],
    }
    client.converse(modelId=CLAUDE, messages=[message])
    parts = json.loads(attrs(one_span())["gen_ai.input.messages"])[0]["parts"]
    assert parts[1] == {
        "type": "blob",
        "modality": "image",
        "mime_type": "image/png",
        "size_bytes": len(png),
    }


@pytest.mark.parametrize(
    ("error_type", "status"),
    [("ValidationException", 400), ("ThrottlingException", 429), ("ModelTimeoutException", 408)],
)
def test_client_error_propagates_unchanged_and_span_is_error(
    client: Any,
    fake: FakeBedrock,
    one_span: Callable[[], ReadableSpan],
    error_type: str,
    status: int,
) -> None:
    fake.enqueue(ErrorReply(error_type, status, "nope: " + error_type))
    with pytest.raises(ClientError) as info:
        client.converse(modelId=CLAUDE, messages=[user("hi")])
    assert type(info.value) is getattr(client.exceptions, error_type)
    assert info.value.response["Error"] == {"Code": error_type, "Message": "nope: " + error_type}
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status

    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == error_type
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    assert (events[0].attributes or {})["exception.message"] == str(info.value)


def test_fake_rejects_malformed_converse_like_bedrock(
    client: Any, one_span: Callable[[], ReadableSpan]
) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="start with a user message"):
        client.converse(
            modelId=CLAUDE, messages=[{"role": "assistant", "content": [{"text": "x"}]}]
        )
    assert one_span().status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    ("mode", "on_span", "on_event"),
    [
        ("NO_CONTENT", False, False),
        ("false", False, False),
        ("SPAN_ONLY", True, False),
        ("true", True, False),
        ("EVENT_ONLY", False, True),
        ("SPAN_AND_EVENT", True, True),
    ],
)
def test_content_capture_modes(
    client: Any,
    one_span: Callable[[], ReadableSpan],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    on_span: bool,
    on_event: bool,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    client.converse(modelId=CLAUDE, system=[{"text": "sys"}], messages=[user("secret prompt")])
    span = one_span()
    a = attrs(span)
    content_keys = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"}
    assert (content_keys <= a.keys()) is on_span
    if not on_span:
        assert not content_keys & a.keys()
    details = [e for e in span.events if e.name == "gen_ai.client.inference.operation.details"]
    assert bool(details) is on_event
    if on_event:
        assert "secret prompt" in str((details[0].attributes or {})["gen_ai.input.messages"])
    # Non-content attributes are there whatever the mode.
    assert a["gen_ai.usage.output_tokens"] > 0
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)


def test_content_over_cap_is_truncated_valid_json_and_marked(
    client: Any, one_span: Callable[[], ReadableSpan], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", "1024")
    client.converse(modelId=CLAUDE, messages=[user("word " * 2000)])
    a = attrs(one_span())
    assert len(a["gen_ai.input.messages"].encode()) <= 1024
    json.loads(a["gen_ai.input.messages"])
    assert any(str(m).startswith("gen_ai.input.messages:") for m in a["spanlake.truncated"])


def test_client_created_before_instrument_is_traced(
    fake: FakeBedrock, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    early = fake.client()
    early.converse(modelId=CLAUDE, messages=[user("before")])
    assert span_exporter.get_finished_spans() == ()
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        early.converse(modelId=CLAUDE, messages=[user("after")])
        late = boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=fake.endpoint_url,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="secret",
        )
        late.converse(modelId=CLAUDE, messages=[user("late")])
    finally:
        instrumentor.uninstrument()
    assert len(span_exporter.get_finished_spans()) == 2


def test_instrument_twice_and_uninstrument(
    client: Any, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    instrumentor.instrument(tracer_provider=tracer_provider)  # idempotent: still one span
    try:
        client.converse(modelId=CLAUDE, messages=[user("once")])
        assert len(span_exporter.get_finished_spans()) == 1
    finally:
        instrumentor.uninstrument()
    instrumentor.uninstrument()  # idempotent too
    client.converse(modelId=CLAUDE, messages=[user("untraced")])
    assert len(span_exporter.get_finished_spans()) == 1

    import botocore.client
    import wrapt

    assert not isinstance(botocore.client.BaseClient.__dict__["_make_api_call"], wrapt.ObjectProxy)


def test_other_services_and_operations_pass_through(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=fake.endpoint_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ResponseParserError):
        sts.get_caller_identity()  # the fake does not speak STS: the error is STS's own
    if hasattr(client, "count_tokens"):  # newer botocore: an untraced bedrock-runtime operation
        with pytest.raises(client.exceptions.ValidationException):
            client.count_tokens(modelId=CLAUDE, input={"converse": {"messages": [user("x")]}})
        assert fake.requests[-1].operation == "count-tokens"  # the call really went out
    assert instrumented.get_finished_spans() == ()


def test_span_is_parent_of_nothing_and_child_of_current(
    client: Any, instrumented: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("agent") as parent:
        client.converse(modelId=CLAUDE, messages=[user("nested")])
    spans = {s.name: s for s in instrumented.get_finished_spans()}
    llm = spans[f"chat {CLAUDE}"]
    assert llm.parent is not None
    assert llm.parent.span_id == parent.get_span_context().span_id
    assert llm.context.trace_id == parent.get_span_context().trace_id


def test_telemetry_bug_never_reaches_the_app(
    client: Any, one_span: Callable[[], ReadableSpan], monkeypatch: pytest.MonkeyPatch
) -> None:
    from spanlake.instrumentation.bedrock import _converse

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(_converse, "response", broken)
    response = client.converse(modelId=CLAUDE, messages=[user("still works")])
    assert response["output"]["message"]["content"][0]["text"] == "Echo: still works"
    span = one_span()  # the span still ended, with what could be recorded
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.skipif(
    not botocore_knows("ContentBlock", "reasoningContent"),
    reason="this botocore predates reasoning content blocks",
)
def test_reasoning_block_is_a_reasoning_part(
    client: Any, fake: FakeBedrock, one_span: Callable[[], ReadableSpan]
) -> None:
    reasoning = {"reasoningContent": {"reasoningText": {"text": "Let me think.", "signature": "s"}}}
    fake.enqueue(converse_reply([reasoning, {"text": "42"}]))
    client.converse(modelId=CLAUDE, messages=[user("meaning of life?")])
    parts = json.loads(attrs(one_span())["gen_ai.output.messages"])[0]["parts"]
    assert parts == [
        {"type": "reasoning", "content": "Let me think."},
        {"type": "text", "content": "42"},
    ]


def test_suppressed_instrumentation_records_nothing(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    """Issue 11: ``suppress_instrumentation()`` is honoured by the Bedrock wrapper too."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    fake.enqueue(converse_reply([{"text": "quiet"}]))
    with suppress_instrumentation():
        response = client.converse(modelId=CLAUDE, messages=[user("hi")])
    assert response["output"]["message"]["content"][0]["text"] == "quiet"
    assert instrumented.get_finished_spans() == ()
