"""responses.create (non-streaming; the stream matrix is in test_openai_streams.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
from fakes.openai_server import FakeOpenAI, ResponsesReply, ToolCall, Usage, rate_limited
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

WEATHER_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_request_response_and_usage_attributes(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(
        ResponsesReply(text="Done.", usage=Usage(200, 30, cached_tokens=128, reasoning_tokens=12))
    )
    result = client.responses.create(
        model="gpt-4.1",
        input="Summarise the news.",
        instructions="You are terse.",
        temperature=0.4,
        top_p=0.8,
        max_output_tokens=64,
        text={"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
    )
    span = one_span()
    a = attrs(span)
    assert span.name == "chat gpt-4.1"
    assert span.kind is SpanKind.CLIENT
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["spanlake.span.type"] == "CHAT_MODEL"
    assert a["gen_ai.request.temperature"] == 0.4
    assert a["gen_ai.request.top_p"] == 0.8
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.output.type"] == "json"
    assert a["gen_ai.response.id"] == result.id
    assert a["gen_ai.response.model"] == "gpt-4.1-2025-01-01"
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 200  # cached tokens already inside
    assert a["gen_ai.usage.cache_read.input_tokens"] == 128
    assert a["gen_ai.usage.output_tokens"] == 30
    assert a["gen_ai.usage.reasoning.output_tokens"] == 12
    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are terse."}
    ]
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Summarise the news."}]}
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Done."}],
            "finish_reason": "stop",
        }
    ]


def test_input_items_tools_and_function_calls_as_parts(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(
        ResponsesReply(
            text=None, tool_calls=[ToolCall("get_weather", '{"city": "Oslo"}', id="call_o")]
        )
    )
    client.responses.create(
        model="gpt-4.1",
        input=[
            {"role": "developer", "content": "Use tools."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather in Paris and Oslo?"},
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/map.png",
                        "detail": "auto",
                    },
                ],
            },
            {
                "type": "function_call",
                "call_id": "call_p",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_p", "output": "rain"},
        ],
        tools=[WEATHER_TOOL, {"type": "web_search"}],
    )
    a = attrs(one_span())
    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Use tools."}
    ]
    assert json.loads(a["gen_ai.input.messages"]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Weather in Paris and Oslo?"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/map.png"},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_p",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_p", "response": "rain"}],
        },
    ]
    assert json.loads(a["gen_ai.tool.definitions"]) == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"type": "web_search"},
    ]
    assert a["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_o",
                    "name": "get_weather",
                    "arguments": {"city": "Oslo"},
                }
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_incomplete_response_finish_reason(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ResponsesReply(text="Partial", status="incomplete"))
    client.responses.create(model="gpt-4.1", input="Write a novel.", max_output_tokens=16)
    span = one_span()
    assert attrs(span)["gen_ai.response.finish_reasons"] == ("length",)
    assert span.status.status_code is StatusCode.UNSET


def test_failed_response_marks_the_span_without_raising(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ResponsesReply(text=None, status="failed"))
    result = client.responses.create(model="gpt-4.1", input="hi")
    assert result.status == "failed"  # the SDK does not raise: neither do we
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "server_error"
    assert attrs(span)["gen_ai.response.finish_reasons"] == ("error",)


def test_streamed_failure_event(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ResponsesReply(text="x", status="failed"))
    events = [e.type for e in client.responses.create(model="gpt-4.1", input="hi", stream=True)]
    assert events[-1] == "response.failed"
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "server_error"


def test_missing_input_is_rejected_and_recorded(
    client: openai.OpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    # Current SDKs send the request and the API answers 400; older ones refuse it
    # client-side with a TypeError. The span records whichever the app got.
    with pytest.raises((openai.BadRequestError, TypeError)) as raised:
        client.responses.create(model="gpt-4.1")
    if isinstance(raised.value, openai.BadRequestError):
        assert "Missing required parameter: 'input'" in str(raised.value)
    span = one_span()
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == type(raised.value).__name__


async def test_async_responses(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ResponsesReply(text="async", usage=Usage(9, 1)))
    result = await aclient.responses.create(model="gpt-4.1", input="hi")
    assert result.output_text == "async"
    a = attrs(one_span())
    assert a["gen_ai.usage.input_tokens"] == 9
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "async"}
    ]


async def test_async_responses_error(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(rate_limited())
    with pytest.raises(openai.RateLimitError):
        await aclient.responses.create(model="gpt-4.1", input="hi")
    assert attrs(one_span())["error.type"] == "RateLimitError"
