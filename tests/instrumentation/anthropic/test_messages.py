"""messages.create / parse / raw responses: attributes, content, tools, cache, errors."""

from __future__ import annotations

import base64
import inspect
import json
import urllib.error
import urllib.request
from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam
from fakes.anthropic_server import (
    ErrorReply,
    FakeAnthropic,
    Reply,
    ToolUse,
    Usage,
    overloaded,
    rate_limit,
    server_error,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from spanlake.instrumentation.anthropic import AnthropicInstrumentor
from spanlake.semconv import gen_ai as ga
from spanlake.semconv.spanlake_attrs import SPAN_TYPE

API_KEY = "sk-ant-test-SECRET-key"
#: anthropic >= 2 traces itself; older SDKs do not.
NATIVE_SPANS = hasattr(anthropic._base_client, "start_api_call_span")
OVERLOADED = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)
MODEL = "claude-sonnet-5"
HI: list[MessageParam] = [{"role": "user", "content": "Hello, Claude"}]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def content(span: ReadableSpan, key: str) -> Any:
    return json.loads(str(attrs(span)[key]))


def test_create_records_request_response_and_usage(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text="Hi there", usage=Usage(input_tokens=9, output_tokens=3)))
    msg = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=HI,
        system="You are terse.",
        stop_sequences=["\n\nHuman:"],
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 5},
    )
    assert msg.content[0].text == "Hi there"  # type: ignore[union-attr]
    span = rec.one()
    a = attrs(span)
    assert span.name == f"chat {MODEL}" and span.kind is SpanKind.CLIENT
    assert span.status.status_code is not StatusCode.ERROR
    assert a[ga.OPERATION_NAME] == "chat" and a[ga.PROVIDER_NAME] == "anthropic"
    assert a[SPAN_TYPE] == "CHAT_MODEL"
    assert a[ga.REQUEST_MODEL] == MODEL and a[ga.REQUEST_MAX_TOKENS] == 256
    assert a[ga.SERVER_ADDRESS] == "127.0.0.1" and a[ga.SERVER_PORT] == fake.port
    assert a[ga.REQUEST_STREAM] is False
    assert a[ga.REQUEST_STOP_SEQUENCES] == ("\n\nHuman:",)
    assert (a[ga.REQUEST_TEMPERATURE], a[ga.REQUEST_TOP_P], a[ga.REQUEST_TOP_K]) == (0.3, 0.9, 5.0)
    assert a[ga.RESPONSE_ID] == msg.id and a[ga.RESPONSE_MODEL] == MODEL
    assert a[ga.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[ga.USAGE_INPUT_TOKENS] == 9 and a[ga.USAGE_OUTPUT_TOKENS] == 3
    assert a["anthropic.request.id"] == fake.last_request_id
    assert content(span, ga.SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "You are terse."}]
    assert content(span, ga.INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hello, Claude"}]}
    ]
    assert content(span, ga.OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Hi there"}],
            "finish_reason": "end_turn",
        }
    ]
    assert ga.SYSTEM not in a


def test_exactly_one_span_per_call_and_traceparent_is_ours(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    # Default SDK settings: the SDK's own tracing is on (no ANTHROPIC_OPEN_TELEMETRY).
    client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    span = rec.one()
    if not NATIVE_SPANS:
        return
    assert span.instrumentation_scope.name == "spanlake.instrumentation.anthropic"
    ctx = span.get_span_context()
    version, trace_id, span_id, _flags = fake.received[-1].headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


@pytest.mark.skipif(not NATIVE_SPANS, reason="this SDK version has no native spans")
def test_native_sdk_span_comes_back_after_uninstrument(
    fake: FakeAnthropic, instrumented: AnthropicInstrumentor, rec: Any
) -> None:
    instrumented.uninstrument()
    with anthropic.Anthropic(base_url=fake.base_url, api_key=API_KEY) as c:
        c.messages.create(model=MODEL, max_tokens=10, messages=HI)
    (span,) = rec.all()
    assert span.instrumentation_scope.name != "spanlake.instrumentation.anthropic"
    instrumented.instrument()  # so the fixture's uninstrument has something to undo


async def test_async_create(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text="async hi"))
    msg = await aclient.messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert msg.content[0].text == "async hi"  # type: ignore[union-attr]
    span = rec.one()
    assert attrs(span)[ga.RESPONSE_ID] == msg.id
    assert content(span, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "async hi"


@pytest.mark.parametrize(
    ("mode", "on_span", "on_event"),
    [
        (None, True, False),
        ("NO_CONTENT", False, False),
        ("SPAN_ONLY", True, False),
        ("EVENT_ONLY", False, True),
        ("SPAN_AND_EVENT", True, True),
        ("true", True, False),
        ("false", False, False),
    ],
)
def test_content_capture_modes(
    monkeypatch: pytest.MonkeyPatch,
    client: anthropic.Anthropic,
    rec: Any,
    mode: str | None,
    on_span: bool,
    on_event: bool,
) -> None:
    if mode is not None:
        monkeypatch.setenv(ga.ENV_CAPTURE_MESSAGE_CONTENT, mode)
    client.messages.create(model=MODEL, max_tokens=10, messages=HI, system="sys")
    span = rec.one()
    a = attrs(span)
    keys = (ga.INPUT_MESSAGES, ga.OUTPUT_MESSAGES, ga.SYSTEM_INSTRUCTIONS)
    assert all((k in a) == on_span for k in keys)
    details = [e for e in span.events if e.name == ga.EVENT_CLIENT_INFERENCE_OPERATION_DETAILS]
    assert len(details) == (1 if on_event else 0)
    if on_event:
        assert set(keys) <= set(details[0].attributes or {})
    # Usage and response metadata never depend on the content switch.
    assert a[ga.USAGE_OUTPUT_TOKENS] == 7 and ga.RESPONSE_ID in a


def test_api_key_and_auth_headers_never_recorded(
    client: anthropic.Anthropic, rec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ga.ENV_CAPTURE_MESSAGE_CONTENT, "SPAN_AND_EVENT")
    client.messages.create(
        model=MODEL,
        max_tokens=10,
        messages=HI,
        extra_headers={"Authorization": "Bearer tok-SECRET"},
    )
    span = rec.one()
    blob = repr(attrs(span)) + repr([dict(e.attributes or {}) for e in span.events])
    assert "SECRET" not in blob


def test_content_size_cap_keeps_json_valid_and_marks_truncation(
    client: anthropic.Anthropic, rec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", "1024")
    big: list[MessageParam] = [{"role": "user", "content": "word " * 5000}]
    client.messages.create(model=MODEL, max_tokens=10, messages=big)
    span = rec.one()
    raw = str(attrs(span)[ga.INPUT_MESSAGES])
    assert len(raw.encode()) <= 1024
    assert content(span, ga.INPUT_MESSAGES)[0]["role"] == "user"
    (marker,) = attrs(span)["spanlake.truncated"]
    assert marker.startswith(ga.INPUT_MESSAGES + ":") and int(marker.rsplit(":", 1)[1]) > 25_000


def _image_message() -> list[dict[str, Any]]:
    png = base64.b64encode(b"\x89PNG" + b"\x00" * 600).decode()
    return [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": png},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]


@pytest.mark.parametrize("binary", [False, True])
def test_image_blocks_without_bytes_unless_asked(
    client: anthropic.Anthropic,
    rec: Any,
    monkeypatch: pytest.MonkeyPatch,
    binary: bool,
) -> None:
    if binary:
        monkeypatch.setenv("SPANLAKE_CAPTURE_BINARY_CONTENT", "true")
    msgs = _image_message()
    client.messages.create(model=MODEL, max_tokens=10, messages=msgs)  # type: ignore[arg-type]
    blob, uri, text = content(rec.one(), ga.INPUT_MESSAGES)[0]["parts"]
    assert blob["type"] == "blob" and blob["modality"] == "image"
    assert blob["mime_type"] == "image/png"
    if binary:
        assert blob["content"] == msgs[0]["content"][0]["source"]["data"]
    else:
        assert "content" not in blob and blob["size_bytes"] > 500
    assert uri == {"type": "uri", "modality": "image", "uri": "https://example.com/cat.jpg"}
    assert text == {"type": "text", "content": "What is this?"}


TOOLS = [
    {
        "name": "get_weather",
        "description": "Returns the weather condition of a given city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def test_tool_use_round_trip(client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any) -> None:
    fake.script(
        Reply(text=None, tool_uses=[ToolUse("get_weather", {"city": "Tokyo"}, id="toolu_9")]),
        Reply(text="It is sunny in Tokyo."),
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Tokyo?"}]
    first = client.messages.create(model=MODEL, max_tokens=100, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    # As the seed's agent does: append the SDK's own content blocks back.
    messages.append({"role": "assistant", "content": first.content})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "sunny"}],
        }
    )
    client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    call_span, answer_span = rec.all()
    assert attrs(call_span)[ga.RESPONSE_FINISH_REASONS] == ("tool_use",)
    assert content(call_span, ga.TOOL_DEFINITIONS) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Returns the weather condition of a given city.",
            "parameters": TOOLS[0]["input_schema"],
        }
    ]
    assert content(call_span, ga.OUTPUT_MESSAGES)[0] == {
        "role": "assistant",
        "parts": [
            {
                "type": "tool_call",
                "id": "toolu_9",
                "name": "get_weather",
                "arguments": {"city": "Tokyo"},
            }
        ],
        "finish_reason": "tool_use",
    }
    history = content(answer_span, ga.INPUT_MESSAGES)
    assert history[1]["parts"][0]["type"] == "tool_call"
    assert history[2]["parts"] == [
        {"type": "tool_call_response", "id": "toolu_9", "response": "sunny"}
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_cache_tokens_are_added_to_input_tokens(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any, stream: bool
) -> None:
    usage = Usage(
        input_tokens=10,
        output_tokens=4,
        cache_read_input_tokens=1000,
        cache_creation_input_tokens=200,
    )
    fake.script(Reply(usage=usage))
    if stream:
        for _ in client.messages.create(model=MODEL, max_tokens=10, messages=HI, stream=True):
            pass
    else:
        client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    a = attrs(rec.one())
    assert a[ga.USAGE_INPUT_TOKENS] == 1210
    assert a[ga.USAGE_CACHE_READ_INPUT_TOKENS] == 1000
    assert a[ga.USAGE_CACHE_CREATION_INPUT_TOKENS] == 200
    assert a[ga.USAGE_OUTPUT_TOKENS] == 4


def test_message_with_stop_reason_and_no_content(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text=None, stop_reason="max_tokens"))
    msg = client.messages.create(model=MODEL, max_tokens=1, messages=HI)
    assert msg.content == []
    span = rec.one()
    assert attrs(span)[ga.RESPONSE_FINISH_REASONS] == ("max_tokens",)
    assert content(span, ga.OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [], "finish_reason": "max_tokens"}
    ]


@pytest.mark.parametrize(
    ("reply", "exc_type", "error_type"),
    [
        (rate_limit(retry_after=7), anthropic.RateLimitError, "RateLimitError"),
        (overloaded(), OVERLOADED, OVERLOADED.__name__),
        (server_error(), anthropic.InternalServerError, "InternalServerError"),
    ],
)
def test_api_errors(
    client: anthropic.Anthropic,
    fake: FakeAnthropic,
    rec: Any,
    reply: ErrorReply,
    exc_type: type[Exception],
    error_type: str,
) -> None:
    fake.script(reply)
    with pytest.raises(exc_type) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.status_code == reply.status
    if reply.status == 429:
        assert caught.value.response.headers["retry-after"] == "7"
    span = rec.one()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[ga.ERROR_TYPE] == error_type
    (event,) = [e for e in span.events if e.name == "exception"]
    assert str((event.attributes or {})["exception.type"]).endswith(error_type)


def test_invalid_request_400_from_the_fake(client: anthropic.Anthropic, rec: Any) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=0, messages=HI)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "max_tokens" in caught.value.message
    assert attrs(rec.one())[ga.ERROR_TYPE] == "BadRequestError"


def test_missing_max_tokens_is_rejected_by_the_api(fake: FakeAnthropic) -> None:
    request = urllib.request.Request(
        fake.base_url + "/v1/messages",
        data=json.dumps({"model": MODEL, "messages": HI}).encode(),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


def test_retries_stay_in_one_span(
    fake: FakeAnthropic, instrumented: AnthropicInstrumentor, rec: Any
) -> None:
    fake.script(
        ErrorReply(529, "overloaded_error", "Overloaded", {"retry-after-ms": "5"}), Reply(text="ok")
    )
    with anthropic.Anthropic(base_url=fake.base_url, api_key=API_KEY, max_retries=2) as c:
        c.messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert len(fake.received) == 2
    span = rec.one()
    assert span.status.status_code is not StatusCode.ERROR
    assert content(span, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "ok"


async def test_async_error(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(rate_limit())
    with pytest.raises(anthropic.RateLimitError):
        await aclient.messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert attrs(rec.one())[ga.ERROR_TYPE] == "RateLimitError"


def test_with_raw_response(client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any) -> None:
    fake.script(Reply(text="raw"))
    raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=HI)
    assert raw.headers["request-id"].startswith("req_")
    msg = raw.parse()
    span = rec.one()
    assert attrs(span)[ga.RESPONSE_ID] == msg.id
    assert content(span, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "raw"


def test_with_streaming_response_json(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text="streamed-json"))
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=10, messages=HI
    ) as r:
        assert rec.all() == []  # body not read yet: the call is still open
        msg = r.parse()
    span = rec.one()
    assert attrs(span)[ga.RESPONSE_ID] == msg.id
    assert content(span, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "streamed-json"


def test_with_streaming_response_sse(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text="sse body"))
    with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=10, messages=HI, stream=True
    ) as r:
        events = list(r.parse())
    assert events[0].type == "message_start"
    span = rec.one()
    assert attrs(span)["spanlake.stream.end"] == "exhausted"
    assert content(span, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "sse body"


async def test_async_with_streaming_response(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text="async raw"))
    async with aclient.messages.with_streaming_response.create(
        model=MODEL, max_tokens=10, messages=HI
    ) as r:
        msg = await r.parse()
    assert attrs(rec.one())[ga.RESPONSE_ID] == msg.id


def test_bedrock_client_is_aws_bedrock(
    fake: FakeAnthropic,
    instrumented: AnthropicInstrumentor,
    rec: Any,
) -> None:
    pytest.importorskip("botocore")  # AnthropicBedrock signs requests with botocore
    fake.script(Reply(text="from bedrock"), Reply(text="streamed from bedrock"))
    model = "anthropic.claude-3-5-sonnet-20241022-v2:0"
    with anthropic.AnthropicBedrock(
        base_url=fake.base_url,
        aws_access_key="AKIDEXAMPLE",
        aws_secret_key="wJalrXUtnFEMI/K7MDENG",
        aws_region="us-east-1",
        max_retries=0,
    ) as c:
        msg = c.messages.create(model=model, max_tokens=10, messages=HI)
        streamed = [
            e.type for e in c.messages.create(model=model, max_tokens=10, messages=HI, stream=True)
        ]
    assert msg.content[0].text == "from bedrock"  # type: ignore[union-attr]
    assert streamed[0] == "message_start" and streamed[-1] == "message_stop"
    assert fake.received[0].path.startswith("/model/")
    plain, stream = rec.all()
    for span in (plain, stream):
        assert attrs(span)[ga.PROVIDER_NAME] == "aws.bedrock"
        assert attrs(span)[ga.REQUEST_MODEL] == model
        assert span.name == f"chat {model}"
    assert content(stream, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "streamed from bedrock"
    assert "wJalrXUtnFEMI" not in repr(attrs(plain))


def test_clients_created_before_instrument_are_traced(
    fake: FakeAnthropic, tracer_provider: Any, rec: Any
) -> None:
    with anthropic.Anthropic(base_url=fake.base_url, api_key=API_KEY) as c:
        inst = AnthropicInstrumentor()
        inst.instrument(tracer_provider=tracer_provider)
        try:
            c.messages.create(model=MODEL, max_tokens=10, messages=HI)
        finally:
            inst.uninstrument()
        c.messages.create(model=MODEL, max_tokens=10, messages=HI)  # not traced by us any more
    (span,) = rec.ours()
    assert attrs(span)[ga.PROVIDER_NAME] == "anthropic"


def test_parse_helper(client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any) -> None:
    if not hasattr(client.messages, "parse"):
        pytest.skip("messages.parse arrived after this SDK version")
    fake.script(Reply(text='{"city": "Paris"}'))
    parsed = client.messages.parse(model=MODEL, max_tokens=10, messages=HI)
    assert attrs(rec.one())[ga.RESPONSE_ID] == parsed.id


def test_beta_messages_are_traced_too(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    if not hasattr(client.beta.messages, "stream"):
        pytest.skip("beta.messages.stream arrived after this SDK version")
    fake.script(Reply(text="beta"), Reply(text="beta stream"))
    beta_hi: Any = HI
    msg = client.beta.messages.create(model=MODEL, max_tokens=10, messages=beta_hi)
    with client.beta.messages.stream(model=MODEL, max_tokens=10, messages=beta_hi) as stream:
        assert stream.get_final_text() == "beta stream"
    plain, streamed = rec.all()
    assert attrs(plain)[ga.RESPONSE_ID] == msg.id
    assert content(streamed, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "beta stream"


async def test_async_bedrock_stream(
    fake: FakeAnthropic, instrumented: AnthropicInstrumentor, rec: Any
) -> None:
    pytest.importorskip("botocore")
    fake.script(Reply(text="async bedrock"))
    async with anthropic.AsyncAnthropicBedrock(
        base_url=fake.base_url,
        aws_access_key="AKIDEXAMPLE",
        aws_secret_key="wJalrXUtnFEMI/K7MDENG",
        aws_region="us-east-1",
        max_retries=0,
    ) as c:
        async with c.messages.stream(
            model="anthropic.claude-3-5-sonnet-20241022-v2:0", max_tokens=10, messages=HI
        ) as stream:
            assert await stream.get_final_text() == "async bedrock"
    span = rec.one()
    assert attrs(span)[ga.PROVIDER_NAME] == "aws.bedrock"
    assert attrs(span)["spanlake.stream.end"] == "exhausted"


@pytest.mark.skipif(not NATIVE_SPANS, reason="this SDK version sends no trace headers")
@pytest.mark.parametrize("call", ["create", "stream=True", "helper", "raw"])
def test_traceparent_is_ours_on_every_entry_point(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any, call: str
) -> None:
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 10, "messages": HI}
    if call == "create":
        client.messages.create(**kwargs)
    elif call == "stream=True":
        list(client.messages.create(**kwargs, stream=True))
    elif call == "helper":
        with client.messages.stream(**kwargs) as stream:
            stream.until_done()
    else:
        client.messages.with_raw_response.create(**kwargs).parse()
    ctx = rec.one().get_span_context()
    _version, trace_id, span_id, _flags = fake.received[-1].headers["traceparent"].split("-")
    assert (trace_id, span_id) == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


@pytest.mark.skipif(not NATIVE_SPANS, reason="this SDK version sends no trace headers")
@pytest.mark.parametrize(
    "option", [{"propagation": False}, False], ids=["propagation-off", "sdk-tracing-off"]
)
def test_no_trace_headers_when_the_sdk_would_send_none(
    fake: FakeAnthropic, instrumented: AnthropicInstrumentor, rec: Any, option: Any
) -> None:
    with anthropic.Anthropic(base_url=fake.base_url, api_key=API_KEY, open_telemetry=option) as c:
        c.messages.create(model=MODEL, max_tokens=10, messages=HI)
        with c.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
            stream.until_done()
    assert [r for r in fake.received if "traceparent" in r.headers] == []
    assert len(rec.ours()) == 2 and len(rec.all()) == 2


async def test_async_with_raw_response_and_parse(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text="raw async"), Reply(text="parsed async"))
    raw = await aclient.messages.with_raw_response.create(model=MODEL, max_tokens=10, messages=HI)
    msg: Any = raw.parse()
    if inspect.isawaitable(msg):  # older SDKs: a legacy raw response parses synchronously
        msg = await msg
    calls = [msg.id]
    if hasattr(aclient.messages, "parse"):
        calls.append((await aclient.messages.parse(model=MODEL, max_tokens=10, messages=HI)).id)
    assert [attrs(s)[ga.RESPONSE_ID] for s in rec.all()] == calls


async def test_async_streaming_response_sse(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.script(Reply(text="async sse"))
    async with aclient.messages.with_streaming_response.create(
        model=MODEL, max_tokens=10, messages=HI, stream=True
    ) as r:
        events = [e async for e in await r.parse()]
    assert events[-1].type == "message_stop"
    span = rec.one()
    assert attrs(span)["spanlake.stream.end"] == "exhausted"
    assert content(span, ga.OUTPUT_MESSAGES)[0]["parts"][0]["content"] == "async sse"


def test_vertex_client_is_gcp_vertex_ai(
    fake: FakeAnthropic, instrumented: AnthropicInstrumentor, rec: Any
) -> None:
    vertex = getattr(anthropic, "AnthropicVertex", None)
    if vertex is None:
        pytest.skip("no AnthropicVertex in this SDK version")
    fake.script(Reply(text="from vertex"), Reply(text="streamed from vertex"))
    model = "claude-sonnet-5@20260101"
    try:
        client = vertex(
            base_url=fake.base_url + "/v1",
            region="us-east5",
            project_id="proj",
            access_token="ya29.SECRET-token",
            max_retries=0,
        )
    except Exception as exc:  # older SDKs insist on google-auth being importable
        pytest.skip(f"AnthropicVertex unavailable here: {exc}")
    with client as c:
        msg = c.messages.create(model=model, max_tokens=10, messages=HI)
        with c.messages.stream(model=model, max_tokens=10, messages=HI) as stream:
            assert stream.get_final_text() == "streamed from vertex"
    assert msg.content[0].text == "from vertex"
    assert fake.received[0].path.endswith(f"/models/{model}:rawPredict")
    plain, streamed = rec.all()
    for span in (plain, streamed):
        assert attrs(span)[ga.PROVIDER_NAME] == "gcp.vertex_ai"
        assert attrs(span)[ga.REQUEST_MODEL] == model
    assert "SECRET" not in repr(attrs(plain)) + repr(attrs(streamed))


def test_suppressed_instrumentation_records_nothing(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    """Issue 11: ``suppress_instrumentation()`` is honoured by the Anthropic wrappers too
    (the call still works, no span of ours)."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    fake.script(Reply(text="quiet"), Reply(text="loud"))
    with suppress_instrumentation():
        msg = client.messages.create(model=MODEL, max_tokens=16, messages=HI)
    assert msg.content[0].text == "quiet"  # type: ignore[union-attr]
    assert rec.ours() == []
    client.messages.create(model=MODEL, max_tokens=16, messages=HI)
    assert len(rec.ours()) == 1
