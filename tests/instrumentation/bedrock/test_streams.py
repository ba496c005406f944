"""The stream-lifecycle matrix for ``converse_stream`` and ``invoke_model_with_response_stream``:
one test per (API, way the consumer ends the stream); plus pass-through, real time, tool
calls, in-stream errors and every model family's streaming format."""

from __future__ import annotations

import contextlib
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import EventStreamError
from fakes.bedrock_server import (
    FakeBedrock,
    StreamEvent,
    StreamReply,
    chunk_event,
    converse_stream_events,
    invoke_stream_events,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sdk_features import botocore_knows

CLAUDE = "anthropic.claude-3-5-sonnet-20241022-v2:0"
CLAUDE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "stream me"}],
}
TEXT = "one two three four five"


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def output_text(span: ReadableSpan) -> str:
    messages = json.loads(attrs(span)["gen_ai.output.messages"])
    return "".join(p.get("content", "") for p in messages[0]["parts"] if p["type"] == "text")


class Api:
    """One streaming API: how to call it and where its EventStream lives."""

    def __init__(self, name: str, key: str) -> None:
        self.name, self.key = name, key

    def reply(self, text: str = TEXT, delay_s: float = 0.0) -> StreamReply:
        if self.name == "converse_stream":
            events = converse_stream_events(
                text, usage={"inputTokens": 9, "outputTokens": 5, "totalTokens": 14}
            )
        else:
            events = invoke_stream_events("anthropic", CLAUDE_BODY, text)
        return StreamReply(events, delay_s=delay_s)

    def call(self, client: Any) -> Any:
        if self.name == "converse_stream":
            return client.converse_stream(
                modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "stream me"}]}]
            )
        return client.invoke_model_with_response_stream(
            modelId=CLAUDE, body=json.dumps(CLAUDE_BODY)
        )

    def text_of(self, event: dict[str, Any]) -> str:
        if self.name == "converse_stream":
            return str(event.get("contentBlockDelta", {}).get("delta", {}).get("text", ""))
        payload = json.loads(event["chunk"]["bytes"])
        return str(payload.get("delta", {}).get("text", ""))


APIS = [Api("converse_stream", "stream"), Api("invoke_model_with_response_stream", "body")]


@pytest.fixture(params=APIS, ids=lambda api: api.name)
def api(request: pytest.FixtureRequest) -> Api:
    return request.param  # type: ignore[no-any-return]


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


# --- the matrix ------------------------------------------------------------------------------
def test_exhausted(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    fake.enqueue(api.reply())
    response = api.call(client)
    assert instrumented.get_finished_spans() == ()  # open until the app consumes the stream
    texts = [api.text_of(e) for e in response[api.key]]
    assert "".join(texts) == TEXT

    span = only_span(instrumented)
    a = attrs(span)
    assert a["spanlake.stream.end"] == "exhausted"
    assert a["gen_ai.request.stream"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert output_text(span) == TEXT
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    assert a["gen_ai.usage.output_tokens"] == 5
    assert a["gen_ai.usage.input_tokens"] > 0
    assert a["gen_ai.response.time_to_first_chunk"] > 0
    chunk_events = [e for e in span.events if e.name == "spanlake.stream.chunk"]
    assert len(chunk_events) == a["spanlake.stream.chunks"] == len(texts)
    # SPAN_ONLY (the default): the text is in the output message, not on the chunk events.
    assert all("content" not in (e.attributes or {}) for e in chunk_events)


def test_break_then_drop(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    fake.enqueue(api.reply())
    response = api.call(client)
    seen = ""
    for event in response[api.key]:
        seen += api.text_of(event)
        if seen:
            break
    assert instrumented.get_finished_spans() == ()
    del response, event
    gc.collect()
    span = only_span(instrumented)
    assert attrs(span)["spanlake.stream.end"] == "dropped"
    assert output_text(span) == seen  # what the app saw, not the rest
    assert span.status.status_code is StatusCode.UNSET


def test_break_then_continue_iterating(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    """Like botocore's own EventStream, a second loop continues where the first stopped."""
    fake.enqueue(api.reply())
    stream = api.call(client)[api.key]
    first = [api.text_of(e) for e in _take(stream, 3)]
    rest = [api.text_of(e) for e in stream]
    assert "".join(first + rest) == TEXT
    assert attrs(only_span(instrumented))["spanlake.stream.end"] == "exhausted"


def _take(stream: Any, n: int) -> list[Any]:
    out = []
    for event in stream:
        out.append(event)
        if len(out) == n:
            break
    return out


def test_close(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    fake.enqueue(api.reply())
    stream = api.call(client)[api.key]
    _take(stream, 2)
    stream.close()
    stream.close()  # a second close changes nothing
    span = only_span(instrumented)
    assert attrs(span)["spanlake.stream.end"] == "closed"
    assert attrs(span)["spanlake.stream.chunks"] == 2


def test_with_block_exit(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    """botocore's EventStream is no context manager; ``contextlib.closing`` is how apps scope it."""
    fake.enqueue(api.reply())
    with contextlib.closing(api.call(client)[api.key]) as stream:
        _take(stream, 1)
    span = only_span(instrumented)
    assert attrs(span)["spanlake.stream.end"] == "closed"


class AppError(Exception):
    pass


def test_exception_in_the_loop_with_closing(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    """The app's own error, raised while consuming a stream scoped by ``closing``, is
    recorded on the span and reaches the app unchanged."""
    fake.enqueue(api.reply())
    with pytest.raises(AppError, match="app bug") as info:
        with contextlib.closing(api.call(client)[api.key]) as stream:
            for _event in stream:
                raise AppError("app bug")
    span = only_span(instrumented)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "AppError"
    assert attrs(span)["spanlake.stream.end"] == "error"
    assert attrs(span)["spanlake.stream.chunks"] == 1
    (event,) = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.message"] == str(info.value)


def test_exception_in_a_bare_loop_ends_when_dropped(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    """A bare ``for`` loop tells the stream nothing about the app's error: the span ends,
    once, with what was consumed, when the stream is let go."""
    fake.enqueue(api.reply())

    def consume() -> None:
        response = api.call(client)
        for _event in response[api.key]:
            raise AppError("app bug")

    with pytest.raises(AppError, match="app bug"):
        consume()
    gc.collect()
    span = only_span(instrumented)
    assert attrs(span)["spanlake.stream.end"] == "dropped"
    assert attrs(span)["spanlake.stream.chunks"] == 1


def test_dropped_unconsumed(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    fake.enqueue(api.reply())
    response = api.call(client)
    assert instrumented.get_finished_spans() == ()
    del response
    gc.collect()
    span = only_span(instrumented)
    assert attrs(span)["spanlake.stream.end"] == "dropped"
    assert attrs(span)["spanlake.stream.chunks"] == 0
    assert "gen_ai.output.messages" not in attrs(span)


def test_in_stream_error_event(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    error = StreamEvent(
        "modelStreamErrorException",
        {"message": "model crashed", "originalStatusCode": 500},
        exception=True,
    )
    events = [*api.reply().events[:3], error]
    fake.enqueue(StreamReply(events))
    stream = api.call(client)[api.key]
    with pytest.raises(EventStreamError) as info:
        for _event in stream:
            pass
    assert info.value.response["Error"]["Code"] == "modelStreamErrorException"
    span = only_span(instrumented)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["spanlake.stream.end"] == "error"
    assert attrs(span)["error.type"] == "modelStreamErrorException"
    assert [e.name for e in span.events].count("exception") == 1


def test_stop_reason_without_content(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    fake.enqueue(StreamReply(converse_stream_events("", stop_reason="max_tokens")))
    response = client.converse_stream(
        modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "x"}]}]
    )
    events = list(response["stream"])
    assert [next(iter(e)) for e in events] == ["messageStart", "messageStop", "metadata"]
    a = attrs(only_span(instrumented))
    assert a["gen_ai.response.finish_reasons"] == ("max_tokens",)
    assert json.loads(a["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [], "finish_reason": "max_tokens"}
    ]


# --- pass-through and real time ----------------------------------------------------------------
def test_events_reach_the_app_unchanged(
    api: Api,
    client: Any,
    fake: FakeBedrock,
    tracer_provider: Any,
    span_exporter: InMemorySpanExporter,
) -> None:
    from spanlake.instrumentation.bedrock import BedrockInstrumentor

    reply = api.reply()
    fake.enqueue(reply)
    plain = list(api.call(client)[api.key])
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        fake.enqueue(reply)
        response = api.call(client)
        traced = list(response[api.key])
    finally:
        instrumentor.uninstrument()
    assert traced == plain
    assert isinstance(response[api.key], type(api.call(client)[api.key]))


def test_chunks_arrive_in_real_time(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    delay = 0.15
    fake.enqueue(api.reply(delay_s=delay))
    start = time.monotonic()
    stream = api.call(client)[api.key]
    arrivals = [time.monotonic() - start for _ in stream]
    # The first event is in the app's hands long before the last one is even sent.
    assert arrivals[0] < arrivals[-1] - 3 * delay
    assert attrs(only_span(instrumented))["gen_ai.response.time_to_first_chunk"] < arrivals[-1]


# --- tool calls --------------------------------------------------------------------------------
def test_converse_stream_tool_call_is_aggregated(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    call = {
        "toolUseId": "tooluse_9",
        "name": "get_weather",
        "input": {"city": "Paris", "unit": "C"},
    }
    fake.enqueue(
        StreamReply(converse_stream_events("Checking.", stop_reason="tool_use", tool_use=call))
    )
    response = client.converse_stream(
        modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "weather?"}]}]
    )
    list(response["stream"])
    a = attrs(only_span(instrumented))
    assert a["gen_ai.response.finish_reasons"] == ("tool_use",)
    parts = json.loads(a["gen_ai.output.messages"])[0]["parts"]
    assert parts == [
        {"type": "text", "content": "Checking."},
        {
            "type": "tool_call",
            "id": "tooluse_9",
            "name": "get_weather",
            "arguments": {"city": "Paris", "unit": "C"},
        },
    ]


def test_anthropic_invoke_stream_tool_call_and_cache_usage(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    payloads: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_bdrk_1",
                "model": "claude-3-5-sonnet-20241022",
                "usage": {
                    "input_tokens": 3,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 20,
                },
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": "ca'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": 'ts"}'},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 17},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3, "outputTokenCount": 17},
        },
    ]
    fake.enqueue(StreamReply([chunk_event(p) for p in payloads]))
    response = client.invoke_model_with_response_stream(
        modelId=CLAUDE, body=json.dumps(CLAUDE_BODY)
    )
    list(response["body"])
    a = attrs(only_span(instrumented))
    assert a["gen_ai.response.id"] == "msg_bdrk_1"
    assert a["gen_ai.response.model"] == "claude-3-5-sonnet-20241022"
    assert a["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert a["gen_ai.usage.input_tokens"] == 3 + 100 + 20
    assert a["gen_ai.usage.cache_read.input_tokens"] == 100
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 20
    assert a["gen_ai.usage.output_tokens"] == 17
    parts = json.loads(a["gen_ai.output.messages"])[0]["parts"]
    assert parts == [
        {"type": "tool_call", "id": "toolu_1", "name": "lookup", "arguments": {"q": "cats"}}
    ]


# --- every family's streaming format -----------------------------------------------------------
FAMILIES = [
    ("anthropic", "us.anthropic.claude-3-5-haiku-20241022-v1:0", CLAUDE_BODY, "chat", "end_turn"),
    (
        "titan-text",
        "amazon.titan-text-express-v1",
        {"inputText": "stream me"},
        "text_completion",
        "FINISH",
    ),
    (
        "nova",
        "us.amazon.nova-lite-v1:0",
        {
            "schemaVersion": "messages-v1",
            "messages": [{"role": "user", "content": [{"text": "stream me"}]}],
        },
        "chat",
        "end_turn",
    ),
    (
        "llama",
        "meta.llama3-1-70b-instruct-v1:0",
        {"prompt": "stream me", "max_gen_len": 64},
        "text_completion",
        "stop",
    ),
    ("cohere", "cohere.command-text-v14", {"prompt": "stream me"}, "text_completion", "COMPLETE"),
    ("cohere-r", "cohere.command-r-plus-v1:0", {"message": "stream me"}, "chat", "COMPLETE"),
    (
        "mistral",
        "mistral.mistral-7b-instruct-v0:2",
        {"prompt": "<s>[INST] stream me [/INST]"},
        "text_completion",
        "stop",
    ),
    (
        "mistral",
        "mistral.mistral-large-2407-v1:0",
        {"messages": [{"role": "user", "content": "stream me"}]},
        "chat",
        "stop",
    ),
]


@pytest.mark.parametrize(
    ("family", "model", "body", "operation", "reason"), FAMILIES, ids=[f[1] for f in FAMILIES]
)
def test_family_stream_formats(
    client: Any,
    fake: FakeBedrock,
    instrumented: InMemorySpanExporter,
    family: str,
    model: str,
    body: dict[str, Any],
    operation: str,
    reason: str,
) -> None:
    response = client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    span = only_span(instrumented)
    a = attrs(span)
    assert span.name == f"{operation} {model}"
    assert a["gen_ai.operation.name"] == operation
    assert a["gen_ai.provider.name"] == "aws.bedrock"
    assert output_text(span) == "Echo: stream me"
    assert a["gen_ai.response.finish_reasons"] == (reason,)
    assert a["gen_ai.usage.input_tokens"] == metrics["inputTokenCount"]
    assert a["gen_ai.usage.output_tokens"] == metrics["outputTokenCount"]
    assert a["spanlake.stream.end"] == "exhausted"


def test_span_ends_exactly_once_whatever_the_consumer_does(
    api: Api, client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    fake.enqueue(api.reply())
    response = api.call(client)
    stream = response[api.key]
    list(stream)
    stream.close()
    list(stream)
    del response, stream
    gc.collect()
    assert attrs(only_span(instrumented))["spanlake.stream.end"] == "exhausted"


def test_time_to_first_chunk_skips_nothing(
    client: Any, fake: FakeBedrock, one_span: Callable[[], ReadableSpan]
) -> None:
    response = client.converse_stream(
        modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "abc"}]}]
    )
    list(response["stream"])
    a = attrs(one_span())
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < 5


@pytest.mark.parametrize("mode", ["NO_CONTENT", "EVENT_ONLY"])
def test_stream_without_span_content(
    api: Api,
    client: Any,
    fake: FakeBedrock,
    instrumented: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    fake.enqueue(api.reply())
    assert "".join(api.text_of(e) for e in api.call(client)[api.key]) == TEXT
    span = only_span(instrumented)
    a = attrs(span)
    assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & a.keys()
    chunks = [e for e in span.events if e.name == "spanlake.stream.chunk"]
    # EVENT_ONLY puts each chunk's text delta on its event; NO_CONTENT records none.
    chunk_text = "".join(str((e.attributes or {}).get("content", "")) for e in chunks)
    assert chunks and chunk_text == (TEXT if mode == "EVENT_ONLY" else "")
    assert a["gen_ai.usage.output_tokens"] == 5  # usage and finish reasons whatever the mode
    assert a["gen_ai.response.finish_reasons"] == ("end_turn",)
    details = [e for e in span.events if e.name == "gen_ai.client.inference.operation.details"]
    if mode == "EVENT_ONLY":
        (event,) = details
        output = json.loads(str((event.attributes or {})["gen_ai.output.messages"]))
        assert output[0]["parts"] == [{"type": "text", "content": TEXT}]
    else:
        assert details == []


@pytest.mark.skipif(
    not botocore_knows("ContentBlockDelta", "reasoningContent"),
    reason="this botocore predates reasoning content deltas",
)
def test_reasoning_then_text_stream(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    def delta(index: int, body: dict[str, Any]) -> StreamEvent:
        return StreamEvent("contentBlockDelta", {"delta": body, "contentBlockIndex": index})

    events = [
        StreamEvent("messageStart", {"role": "assistant"}),
        delta(0, {"reasoningContent": {"text": "Think "}}),
        delta(0, {"reasoningContent": {"text": "hard."}}),
        delta(0, {"reasoningContent": {"signature": "sig=="}}),
        StreamEvent("contentBlockStop", {"contentBlockIndex": 0}),
        delta(1, {"text": "Answer."}),
        StreamEvent("contentBlockStop", {"contentBlockIndex": 1}),
        StreamEvent("messageStop", {"stopReason": "end_turn"}),
        StreamEvent(
            "metadata",
            {
                "usage": {"inputTokens": 5, "outputTokens": 9, "totalTokens": 14},
                "metrics": {"latencyMs": 1},
            },
        ),
    ]
    fake.enqueue(StreamReply(events))
    response = client.converse_stream(
        modelId="us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        messages=[{"role": "user", "content": [{"text": "why?"}]}],
        additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 1024}},
    )
    received = list(response["stream"])
    assert received[3]["contentBlockDelta"]["delta"]["reasoningContent"] == {"signature": "sig=="}
    parts = json.loads(attrs(only_span(instrumented))["gen_ai.output.messages"])[0]["parts"]
    assert parts == [
        {"type": "reasoning", "content": "Think hard."},
        {"type": "text", "content": "Answer."},
    ]


def test_cohere_r_stream_tool_calls(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    payloads: list[dict[str, Any]] = [
        {"is_finished": False, "event_type": "stream-start", "generation_id": "gen-7"},
        {
            "is_finished": False,
            "event_type": "tool-calls-generation",
            "tool_calls": [{"name": "query_db", "parameters": {"table": "users"}}],
        },
        {
            "is_finished": True,
            "event_type": "stream-end",
            "finish_reason": "COMPLETE",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12, "outputTokenCount": 6},
        },
    ]
    fake.enqueue(StreamReply([chunk_event(p) for p in payloads]))
    response = client.invoke_model_with_response_stream(
        modelId="cohere.command-r-plus-v1:0", body=json.dumps({"message": "count users"})
    )
    list(response["body"])
    a = attrs(only_span(instrumented))
    assert a["gen_ai.response.id"] == "gen-7"
    assert a["gen_ai.response.finish_reasons"] == ("COMPLETE",)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (12, 6)
    parts = json.loads(a["gen_ai.output.messages"])[0]["parts"]
    assert parts == [
        {"type": "tool_call", "id": None, "name": "query_db", "arguments": {"table": "users"}}
    ]


def test_nova_stream_with_a_block_per_delta_is_one_text_part(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    """The real Nova stream (conformance recording) sends every delta as its own content
    block: the answer is still recorded as one joined text part, not one part per chunk."""
    pieces = ["It", " sounds", " like", " rain."]
    events = [chunk_event({"messageStart": {"role": "assistant"}})]
    for i, piece in enumerate(pieces):
        events.append(
            chunk_event({"contentBlockDelta": {"delta": {"text": piece}, "contentBlockIndex": i}})
        )
        events.append(chunk_event({"contentBlockStop": {"contentBlockIndex": i}}))
    events.append(chunk_event({"messageStop": {"stopReason": "end_turn"}}))
    fake.enqueue(StreamReply(events))
    body = {"messages": [{"role": "user", "content": [{"text": "weather?"}]}]}
    response = client.invoke_model_with_response_stream(
        modelId="us.amazon.nova-lite-v1:0", body=json.dumps(body)
    )
    for _ in response["body"]:
        pass
    output = json.loads(attrs(only_span(instrumented))["gen_ai.output.messages"])
    assert output[0]["parts"] == [{"type": "text", "content": "It sounds like rain."}]
