"""with_raw_response and with_streaming_response route through create() and are traced."""

from __future__ import annotations

import gc
import json
from typing import Any

import openai
from fakes.openai_server import ChatReply, FakeOpenAI, Usage
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

USER: list[Any] = [{"role": "user", "content": "hi"}]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def one(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_with_raw_response(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    fake.script(ChatReply(text="raw hi", usage=Usage(11, 2)))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.choices[0].message.content == "raw hi"
    assert raw.parse() is completion
    a = attrs(one(instrumented))
    assert a["gen_ai.response.id"] == completion.id
    assert a["gen_ai.usage.input_tokens"] == 11
    assert json.loads(a["gen_ai.output.messages"])[0]["parts"][0]["content"] == "raw hi"


def test_with_raw_response_stream(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    fake.script(ChatReply(text="streamed raw"))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=USER, stream=True
    )
    stream = raw.parse()
    assert isinstance(stream, openai.Stream)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "streamed raw"
    span = one(instrumented)
    assert attrs(span)["spanlake.stream.end"] == "exhausted"
    assert json.loads(attrs(span)["gen_ai.output.messages"])[0]["parts"][0]["content"] == text


def test_with_streaming_response_parse(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=USER
    ) as response:
        assert instrumented.get_finished_spans() == ()  # body not read yet
        completion = response.parse()
    assert attrs(one(instrumented))["gen_ai.response.id"] == completion.id


def test_with_streaming_response_stream(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    fake.script(ChatReply(text="chunks"))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=USER, stream=True
    ) as response:
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "chunks"
    assert attrs(one(instrumented))["spanlake.stream.end"] == "exhausted"


def test_with_streaming_response_closed_without_parse(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=USER, stream=True
    ) as response:
        lines = list(response.iter_lines())
    assert any(line.startswith("data: ") for line in lines)
    span = one(instrumented)  # ended at close, with the request side
    assert attrs(span)["gen_ai.request.model"] == "gpt-4o"
    gc.collect()
    assert len(instrumented.get_finished_spans()) == 1  # and never again


async def test_async_with_raw_response(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    completion = raw.parse()
    assert attrs(one(instrumented))["gen_ai.response.id"] == completion.id


async def test_async_with_streaming_response_stream(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    fake.script(ChatReply(text="async chunks"))
    async with aclient.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=USER, stream=True
    ) as response:
        stream = await response.parse()
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "async chunks"
    assert attrs(one(instrumented))["spanlake.stream.end"] == "exhausted"


async def test_async_with_streaming_response_parse(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    async with aclient.responses.with_streaming_response.create(
        model="gpt-4.1", input="hi"
    ) as response:
        result = await response.parse()
    assert attrs(one(instrumented))["gen_ai.response.id"] == result.id
