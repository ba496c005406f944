"""The stream-lifecycle matrix for chat.completions and responses, sync and async.

One test per cell: however the app consumes (or abandons) the stream, the span ends exactly
once, with what was aggregated so far, and the chunks reach the app unchanged and in time.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import openai
import pytest
from fakes.openai_server import ChatReply, FakeOpenAI, ResponsesReply, ToolCall, Usage
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sdk_features import openai_chat_has

APIS = ["chat", "responses"]
TEXT = "The quick brown fox jumps over the lazy dog."
USER: list[Any] = [{"role": "user", "content": "Tell me a pangram."}]


class Boom(Exception):
    """The app's own error, raised inside its loop over the stream."""


def script(fake: FakeOpenAI, api: str, **kwargs: Any) -> ChatReply | ResponsesReply:
    reply: ChatReply | ResponsesReply
    if api == "chat":
        reply = ChatReply(**{"text": TEXT, **kwargs})
    else:
        reply = ResponsesReply(**{"text": TEXT, **kwargs})
    fake.script(reply)
    return reply


def open_stream(client: openai.OpenAI, api: str, **kwargs: Any) -> Any:
    if api == "chat":
        return client.chat.completions.create(model="gpt-4o", messages=USER, stream=True, **kwargs)
    return client.responses.create(
        model="gpt-4.1", input="Tell me a pangram.", stream=True, **kwargs
    )


async def aopen_stream(client: openai.AsyncOpenAI, api: str, **kwargs: Any) -> Any:
    if api == "chat":
        return await client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, **kwargs
        )
    return await client.responses.create(
        model="gpt-4.1", input="Tell me a pangram.", stream=True, **kwargs
    )


def has_text(api: str, chunk: Any) -> bool:
    if api == "chat":
        return bool(chunk.choices and chunk.choices[0].delta.content)
    return bool(chunk.type == "response.output_text.delta")


def chunk_text(api: str, chunk: Any) -> str:
    if api == "chat":
        return (chunk.choices[0].delta.content or "") if chunk.choices else ""
    return str(chunk.delta) if chunk.type == "response.output_text.delta" else ""


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def output_text(span: ReadableSpan) -> str:
    messages = json.loads(attrs(span)["gen_ai.output.messages"])
    return "".join(p["content"] for m in messages for p in m["parts"] if p["type"] == "text")


def ended_once(exporter: InMemorySpanExporter, how: str) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    span = spans[0]
    assert attrs(span)["spanlake.stream.end"] == how
    return span


# --- sync matrix ------------------------------------------------------------------------------
@pytest.mark.parametrize("api", APIS)
def test_exhausted(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api, usage=Usage(50, 9, cached_tokens=32, reasoning_tokens=4))
    kwargs = {"stream_options": {"include_usage": True}} if api == "chat" else {}
    received = "".join(chunk_text(api, c) for c in open_stream(client, api, **kwargs))
    assert received == TEXT
    span = ended_once(instrumented, "exhausted")
    a = attrs(span)
    assert span.status.status_code is StatusCode.UNSET
    assert output_text(span) == TEXT
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.response.model"] in {"gpt-4o-2025-01-01", "gpt-4.1-2025-01-01"}
    assert a["gen_ai.usage.input_tokens"] == 50
    assert a["gen_ai.usage.cache_read.input_tokens"] == 32
    assert a["gen_ai.usage.output_tokens"] == 9
    assert a["gen_ai.usage.reasoning.output_tokens"] == 4
    assert span.end_time is not None and span.start_time is not None
    assert 0 < a["gen_ai.response.time_to_first_chunk"] < (span.end_time - span.start_time) / 1e9
    chunk_events = [e for e in span.events if e.name == "spanlake.stream.chunk"]
    assert len(chunk_events) == a["spanlake.stream.chunks"] > 0


@pytest.mark.parametrize("api", APIS)
def test_break_then_drop(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    stream = open_stream(client, api)
    received = ""
    for chunk in stream:
        received += chunk_text(api, chunk)
        if has_text(api, chunk):
            break
    assert instrumented.get_finished_spans() == ()  # the app still holds the stream
    del stream, chunk
    gc.collect()
    span = ended_once(instrumented, "dropped")
    assert output_text(span) == received  # what had arrived, not invented


@pytest.mark.parametrize("api", APIS)
def test_close_early(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    stream = open_stream(client, api)
    first = next(iter(stream))
    assert first is not None
    stream.close()
    span = ended_once(instrumented, "closed")
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)["spanlake.stream.chunks"] == 1


@pytest.mark.parametrize("api", APIS)
def test_with_exit_early(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    with open_stream(client, api) as stream:
        for chunk in stream:
            if has_text(api, chunk):
                break
    span = ended_once(instrumented, "context_exit")
    assert output_text(span) == chunk_text(api, chunk)


@pytest.mark.parametrize("api", APIS)
def test_with_block_exhausted_ends_once(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    with open_stream(client, api) as stream:
        for _ in stream:
            pass
        stream.close()  # closing again after exhaustion changes nothing
    span = ended_once(instrumented, "exhausted")
    assert output_text(span) == TEXT


@pytest.mark.parametrize("api", APIS)
def test_exception_in_loop_inside_with(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    with pytest.raises(Boom, match="app failed"):
        with open_stream(client, api) as stream:
            for chunk in stream:
                if has_text(api, chunk):
                    raise Boom("app failed")
    span = ended_once(instrumented, "error")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "Boom"
    assert output_text(span) == chunk_text(api, chunk)


@pytest.mark.parametrize("api", APIS)
def test_exception_in_bare_loop_ends_when_dropped(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    """Without ``with`` the stream cannot see the app's exception; it still ends exactly once."""
    script(fake, api)

    def consume() -> None:
        for chunk in open_stream(client, api):
            if has_text(api, chunk):
                raise Boom("app failed")

    with pytest.raises(Boom):
        consume()
    gc.collect()
    ended_once(instrumented, "dropped")


@pytest.mark.parametrize("api", APIS)
def test_dropped_unconsumed(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    stream = open_stream(client, api)
    del stream
    gc.collect()
    span = ended_once(instrumented, "dropped")
    assert attrs(span)["spanlake.stream.chunks"] == 0
    assert "gen_ai.response.time_to_first_chunk" not in attrs(span)


def test_chat_in_stream_api_error(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "chat", fail_after=3)
    received = []
    with pytest.raises(openai.APIError, match="The model stopped"):
        for chunk in open_stream(client, "chat"):
            received.append(chunk)
    assert len(received) == 3
    span = ended_once(instrumented, "error")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "APIError"
    assert attrs(span)["spanlake.stream.chunks"] == 3


def test_responses_in_stream_error_event(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    """The Responses API reports a failure as an ``error`` event the SDK yields, not raises."""
    script(fake, "responses", fail_after=5)
    events = [e.type for e in open_stream(client, "responses")]
    if events[-1] is None:
        pytest.skip("this openai version yields the error event untyped")
    assert events[-1] == "error"
    span = ended_once(instrumented, "exhausted")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["error.type"] == "server_error"


@pytest.mark.parametrize("api", APIS)
def test_connection_dropped_mid_stream(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api, drop_after=4)
    # openai wraps the transport's error in APIConnectionError; releases before 1.7x let
    # httpx's RemoteProtocolError through. Either way the span names what the app saw.
    with pytest.raises(Exception) as raised:
        for _ in open_stream(client, api):
            pass
    assert isinstance(raised.value, openai.APIConnectionError) or (
        type(raised.value).__name__ == "RemoteProtocolError"
    )
    span = ended_once(instrumented, "error")
    assert attrs(span)["error.type"] == type(raised.value).__name__
    assert attrs(span)["spanlake.stream.chunks"] == 4


@pytest.mark.parametrize("api", APIS)
def test_chunks_reach_the_app_in_real_time(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    reply = script(fake, api, pause_after=3)
    stream = open_stream(client, api)
    iterator = iter(stream)
    for _ in range(3):
        next(iterator)
    # The server is still holding the rest: nothing was buffered ahead of the app.
    assert not reply.finished.is_set()
    assert instrumented.get_finished_spans() == ()
    reply.resume.set()
    rest = list(iterator)
    assert rest
    ended_once(instrumented, "exhausted")


@pytest.mark.parametrize("api", APIS)
def test_chunks_are_unchanged(
    api: str,
    client: openai.OpenAI,
    fake: FakeOpenAI,
    tracer_provider: Any,
    span_exporter: InMemorySpanExporter,
) -> None:
    from spanlake.instrumentation.openai import OpenAIInstrumentor

    def run() -> list[tuple[type, dict[str, Any]]]:
        fake.reset_ids()
        script(fake, api, tool_calls=[ToolCall("lookup", '{"q": "fox"}')])
        return [(type(c), c.model_dump()) for c in open_stream(client, api)]

    plain = run()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        traced = run()
    finally:
        instrumentor.uninstrument()
    assert traced == plain
    assert len(span_exporter.get_finished_spans()) == 1


def test_chat_stream_without_include_usage_has_no_usage(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "chat")
    for _ in open_stream(client, "chat"):
        pass
    a = attrs(ended_once(instrumented, "exhausted"))
    assert not any(k.startswith("gen_ai.usage.") for k in a)  # the API sent none: none invented
    assert a["gen_ai.response.finish_reasons"] == ("stop",)


def test_chat_stream_include_usage_false(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "chat")
    for _ in open_stream(client, "chat", stream_options={"include_usage": False}):
        pass
    a = attrs(ended_once(instrumented, "exhausted"))
    assert "gen_ai.usage.input_tokens" not in a


@pytest.mark.parametrize("api", APIS)
def test_streamed_tool_calls_are_aggregated(
    api: str, client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(
        fake,
        api,
        text=None,
        tool_calls=[
            ToolCall("get_weather", '{"city": "Paris", "unit": "C"}', id="call_p"),
            ToolCall("get_time", '{"tz": "Europe/Paris"}', id="call_t"),
        ],
    )
    for _ in open_stream(client, api):
        pass
    span = ended_once(instrumented, "exhausted")
    (out,) = json.loads(attrs(span)["gen_ai.output.messages"])
    assert out["finish_reason"] == "tool_calls"
    assert out["parts"] == [
        {
            "type": "tool_call",
            "id": "call_p",
            "name": "get_weather",
            "arguments": {"city": "Paris", "unit": "C"},
        },
        {
            "type": "tool_call",
            "id": "call_t",
            "name": "get_time",
            "arguments": {"tz": "Europe/Paris"},
        },
    ]


def test_chat_stream_stop_without_content(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "chat", text="")
    chunks = list(open_stream(client, "chat"))
    assert chunks[-1].choices[0].finish_reason == "stop"
    span = ended_once(instrumented, "exhausted")
    (out,) = json.loads(attrs(span)["gen_ai.output.messages"])
    assert out == {"role": "assistant", "parts": [], "finish_reason": "stop"}


def test_chat_stream_no_content_mode_records_no_text(
    client: openai.OpenAI,
    fake: FakeOpenAI,
    instrumented: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
    script(fake, "chat")
    for _ in open_stream(client, "chat", stream_options={"include_usage": True}):
        pass
    span = ended_once(instrumented, "exhausted")
    a = attrs(span)
    assert "gen_ai.output.messages" not in a and "gen_ai.input.messages" not in a
    assert a["gen_ai.usage.output_tokens"] > 0
    assert all("content" not in dict(e.attributes or {}) for e in span.events)


# --- SDK stream helpers (they call create(stream=True) underneath) -------------------------
@pytest.mark.skipif(
    not openai_chat_has("stream"), reason="chat.completions.stream is beta-only here"
)
def test_chat_completions_stream_helper(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "chat")
    with client.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == TEXT
    span = ended_once(instrumented, "exhausted")
    assert output_text(span) == TEXT


def test_responses_stream_helper(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "responses")
    with client.responses.stream(model="gpt-4.1", input="Tell me a pangram.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == TEXT
    span = ended_once(instrumented, "exhausted")
    assert attrs(span)["gen_ai.response.id"] == final.id


# --- async matrix -------------------------------------------------------------------------------
@pytest.mark.parametrize("api", APIS)
async def test_async_exhausted(
    api: str, aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api, usage=Usage(40, 8))
    kwargs = {"stream_options": {"include_usage": True}} if api == "chat" else {}
    stream = await aopen_stream(aclient, api, **kwargs)
    assert isinstance(stream, openai.AsyncStream)
    received = "".join([chunk_text(api, c) async for c in stream])
    assert received == TEXT
    span = ended_once(instrumented, "exhausted")
    assert output_text(span) == TEXT
    assert attrs(span)["gen_ai.usage.input_tokens"] == 40
    assert attrs(span)["gen_ai.response.time_to_first_chunk"] > 0


@pytest.mark.parametrize("api", APIS)
async def test_async_break_then_drop(
    api: str, aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    stream = await aopen_stream(aclient, api)
    async for chunk in stream:
        if has_text(api, chunk):
            break
    assert instrumented.get_finished_spans() == ()
    await stream.close()  # the app releases the connection; the span sees the close
    span = ended_once(instrumented, "closed")
    assert output_text(span) == chunk_text(api, chunk)


@pytest.mark.parametrize("api", APIS)
async def test_async_dropped_unconsumed(
    api: str, aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    stream = await aopen_stream(aclient, api)
    await stream.response.aclose()  # release the socket; the proxy never saw a chunk
    del stream
    gc.collect()
    ended_once(instrumented, "dropped")


@pytest.mark.parametrize("api", APIS)
async def test_async_with_exit_early(
    api: str, aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    async with await aopen_stream(aclient, api) as stream:
        async for chunk in stream:
            if has_text(api, chunk):
                break
    ended_once(instrumented, "context_exit")


@pytest.mark.parametrize("api", APIS)
async def test_async_exception_in_loop_inside_with(
    api: str, aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, api)
    with pytest.raises(Boom):
        async with await aopen_stream(aclient, api) as stream:
            async for chunk in stream:
                if has_text(api, chunk):
                    raise Boom("app failed")
    span = ended_once(instrumented, "error")
    assert attrs(span)["error.type"] == "Boom"


async def test_async_chat_in_stream_api_error(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "chat", fail_after=2)
    with pytest.raises(openai.APIError):
        async for _ in await aopen_stream(aclient, "chat"):
            pass
    span = ended_once(instrumented, "error")
    assert span.status.status_code is StatusCode.ERROR


async def test_async_chunks_reach_the_app_in_real_time(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    reply = script(fake, "chat", pause_after=2)
    stream = await aopen_stream(aclient, "chat")
    iterator = stream.__aiter__()
    await iterator.__anext__()
    await iterator.__anext__()
    assert not reply.finished.is_set()
    reply.resume.set()
    async for _ in iterator:
        pass
    ended_once(instrumented, "exhausted")


async def test_async_responses_stream_helper(
    aclient: openai.AsyncOpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    script(fake, "responses")
    async with aclient.responses.stream(model="gpt-4.1", input="Tell me a pangram.") as stream:
        final = await stream.get_final_response()
    assert final.output_text == TEXT
    assert output_text(ended_once(instrumented, "exhausted")) == TEXT


@pytest.mark.skipif(
    not openai_chat_has("stream"), reason="chat.completions.stream is beta-only here"
)
def test_stream_helper_left_early_ends_once_when_dropped(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: InMemorySpanExporter
) -> None:
    """The helper closes the HTTP response itself; our span ends once the stream is let go."""
    script(fake, "chat")
    with client.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
        for event in stream:
            if event.type == "content.delta" and event.delta:
                break
    del stream, event
    gc.collect()
    span = ended_once(instrumented, "dropped")
    assert output_text(span)  # the text that had arrived
