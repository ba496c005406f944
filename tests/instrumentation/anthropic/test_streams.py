"""The stream-lifecycle matrix: one test per way a consumer can end a stream.

Each cell checks that the span ends exactly once (one span, ``spanlake.stream.end`` says
how) with the aggregated output and usage recorded so far.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import anthropic
import pytest
from anthropic.lib.streaming import MessageStreamManager
from anthropic.types import MessageParam
from fakes.anthropic_server import FakeAnthropic, Reply, ToolUse, Usage
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from spanlake.instrumentation.anthropic import AnthropicInstrumentor
from spanlake.semconv import gen_ai as ga

MODEL = "claude-sonnet-5"
HI: list[MessageParam] = [{"role": "user", "content": "Hello, Claude"}]
TEXT = "The quick brown fox jumps over the lazy dog."
END = "spanlake.stream.end"


class ConsumerError(Exception):
    pass


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def output_text(span: ReadableSpan) -> str:
    (msg,) = json.loads(str(attrs(span)[ga.OUTPUT_MESSAGES]))
    return "".join(p.get("content", "") for p in msg["parts"] if p["type"] == "text")


def ended(rec: Any, how: str) -> ReadableSpan:
    span: ReadableSpan = rec.one()
    assert attrs(span)[END] == how
    assert attrs(span)[ga.REQUEST_STREAM] is True
    return span


@pytest.fixture(autouse=True)
def _script(fake: FakeAnthropic) -> None:
    fake.script(Reply(text=TEXT, chunks=4, usage=Usage(input_tokens=11, output_tokens=9)))


def _create(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model=MODEL, max_tokens=50, messages=HI, stream=True)


# --- messages.create(stream=True), sync ------------------------------------------------------


def test_exhausted(client: anthropic.Anthropic, rec: Any) -> None:
    events = list(_create(client))
    span = ended(rec, "exhausted")
    a = attrs(span)
    assert output_text(span) == TEXT
    assert a[ga.USAGE_INPUT_TOKENS] == 11 and a[ga.USAGE_OUTPUT_TOKENS] == 9
    assert a[ga.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert a[ga.RESPONSE_ID] == events[0].message.id
    assert a[ga.RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert str(a["anthropic.request.id"]).startswith("req_fake")
    chunk_events = [e for e in span.events if e.name == "spanlake.stream.chunk"]
    assert len(chunk_events) == len(events) == a["spanlake.stream.chunks"]
    assert span.status.status_code is not StatusCode.ERROR


def test_break_early_then_drop(client: anthropic.Anthropic, rec: Any) -> None:
    stream = _create(client)
    for event in stream:
        if event.type == "content_block_delta":
            break
    assert rec.all() == []  # still open: the app may resume iterating
    del stream, event
    gc.collect()
    span = ended(rec, "dropped")
    assert output_text(span) == TEXT[: len(output_text(span))] and output_text(span)


def test_close(client: anthropic.Anthropic, rec: Any) -> None:
    stream = _create(client)
    next(iter(stream))
    stream.close()
    ended(rec, "closed")
    stream.close()  # twice: still one span
    assert len(rec.all()) == 1


def test_with_exit(client: anthropic.Anthropic, rec: Any) -> None:
    with _create(client) as stream:
        first = next(iter(stream))
        assert first.type == "message_start"
    span = ended(rec, "context_exit")
    assert attrs(span)[ga.RESPONSE_ID] == first.message.id


def test_break_inside_with(client: anthropic.Anthropic, rec: Any) -> None:
    with _create(client) as stream:
        for _event in stream:
            break
    ended(rec, "context_exit")


def test_raise_inside_loop_in_with(client: anthropic.Anthropic, rec: Any) -> None:
    with pytest.raises(ConsumerError), _create(client) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                raise ConsumerError("app failed mid-stream")
    span = ended(rec, "error")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[ga.ERROR_TYPE] == "ConsumerError"
    assert [e.name for e in span.events if e.name == "exception"] == ["exception"]


def test_raise_inside_loop_without_with(client: anthropic.Anthropic, rec: Any) -> None:
    def consume() -> None:
        for event in _create(client):
            if event.type == "content_block_delta":
                raise ConsumerError("boom")

    with pytest.raises(ConsumerError):
        consume()
    gc.collect()
    # Without a `with` block the stream never sees the app's exception; it ends when dropped.
    ended(rec, "dropped")


def test_garbage_collected_unconsumed(client: anthropic.Anthropic, rec: Any) -> None:
    stream = _create(client)
    assert rec.all() == []
    del stream
    gc.collect()
    span = ended(rec, "dropped")
    assert attrs(span)["spanlake.stream.chunks"] == 0


def test_error_event_from_the_api(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.next_reply()  # drop the autouse script
    fake.script(Reply(text=TEXT, chunks=4, error_after=4))
    seen = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        for event in _create(client):
            seen.append(event)
    assert "Overloaded" in str(caught.value)
    span = ended(rec, "error")
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)["spanlake.stream.chunks"] == len(seen) > 0


def test_chunks_unchanged(
    client: anthropic.Anthropic, fake: FakeAnthropic, instrumented: AnthropicInstrumentor, rec: Any
) -> None:
    fake.next_reply()
    reply = Reply(text=TEXT, tool_uses=[ToolUse("get_weather", {"city": "Paris"})], id="msg_same")
    fake.script(reply, reply)
    traced = list(_create(client))
    instrumented.uninstrument()
    plain = list(_create(client))
    instrumented.instrument()
    assert [type(e) for e in traced] == [type(e) for e in plain]
    assert [e.to_dict() for e in traced] == [e.to_dict() for e in plain]


def test_chunks_arrive_in_real_time(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.next_reply()
    fake.script(Reply(text=TEXT, chunks=4, pause_after=4))  # hold after the first text delta
    got_delta_while_paused = False
    for event in _create(client):
        if event.type == "content_block_delta" and not got_delta_while_paused:
            # The server is still holding the rest: nothing was buffered on the way.
            got_delta_while_paused = fake.paused.wait(2)
            fake.resume()
    assert got_delta_while_paused


def test_stop_reason_without_content(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.next_reply()
    fake.script(Reply(text=None, stop_reason="refusal"))
    events = [e.type for e in _create(client)]
    assert events == ["message_start", "message_delta", "message_stop"]
    span = ended(rec, "exhausted")
    assert attrs(span)[ga.RESPONSE_FINISH_REASONS] == ("refusal",)
    assert json.loads(str(attrs(span)[ga.OUTPUT_MESSAGES])) == [
        {"role": "assistant", "parts": [], "finish_reason": "refusal"}
    ]


def test_streamed_tool_call_is_aggregated(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.next_reply()
    fake.script(
        Reply(
            text="Let me check.",
            tool_uses=[ToolUse("get_weather", {"city": "Sydney"}, id="toolu_s")],
        )
    )
    list(_create(client))
    (msg,) = json.loads(str(attrs(ended(rec, "exhausted"))[ga.OUTPUT_MESSAGES]))
    assert msg["finish_reason"] == "tool_use"
    assert msg["parts"] == [
        {"type": "text", "content": "Let me check."},
        {
            "type": "tool_call",
            "id": "toolu_s",
            "name": "get_weather",
            "arguments": {"city": "Sydney"},
        },
    ]


# --- messages.stream() helper, sync ------------------------------------------------------------


def _helper(client: anthropic.Anthropic) -> Any:
    return client.messages.stream(model=MODEL, max_tokens=50, messages=HI)


def test_helper_iteration(client: anthropic.Anthropic, rec: Any) -> None:
    with _helper(client) as stream:
        kinds = [e.type for e in stream]
    assert "text" in kinds  # the helper's own derived events still reach the app
    assert output_text(ended(rec, "exhausted")) == TEXT


def test_helper_text_stream(client: anthropic.Anthropic, rec: Any) -> None:
    with _helper(client) as stream:
        assert "".join(stream.text_stream) == TEXT
    assert output_text(ended(rec, "exhausted")) == TEXT


def test_helper_until_done(client: anthropic.Anthropic, rec: Any) -> None:
    with _helper(client) as stream:
        stream.until_done()
    assert attrs(ended(rec, "exhausted"))[ga.USAGE_OUTPUT_TOKENS] == 9


def test_helper_get_final_message(client: anthropic.Anthropic, rec: Any) -> None:
    with _helper(client) as stream:
        final = stream.get_final_message()
        assert stream.get_final_text() == TEXT
    span = ended(rec, "exhausted")
    assert attrs(span)[ga.RESPONSE_ID] == final.id


def test_helper_exit_without_consuming(client: anthropic.Anthropic, rec: Any) -> None:
    with _helper(client):
        pass
    ended(rec, "closed")


def test_helper_raise_inside(client: anthropic.Anthropic, rec: Any) -> None:
    with pytest.raises(ConsumerError), _helper(client) as stream:
        for _text in stream.text_stream:
            raise ConsumerError("stop")
    assert attrs(ended(rec, "error"))[ga.ERROR_TYPE] == "ConsumerError"


def test_helper_never_entered_sends_nothing(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    manager = _helper(client)
    assert isinstance(manager, MessageStreamManager)
    del manager
    gc.collect()
    assert rec.all() == [] and fake.received == []


def test_helper_real_time(client: anthropic.Anthropic, fake: FakeAnthropic) -> None:
    fake.next_reply()
    fake.script(Reply(text=TEXT, chunks=4, pause_after=4))
    seen_while_paused = False
    with _helper(client) as stream:
        for _text in stream.text_stream:
            if not seen_while_paused:
                seen_while_paused = fake.paused.wait(2)
                fake.resume()
    assert seen_while_paused


# --- async ----------------------------------------------------------------------------------


async def _acreate(aclient: anthropic.AsyncAnthropic) -> Any:
    return await aclient.messages.create(model=MODEL, max_tokens=50, messages=HI, stream=True)


async def test_async_exhausted(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    events = [e async for e in await _acreate(aclient)]
    span = ended(rec, "exhausted")
    assert output_text(span) == TEXT
    assert attrs(span)["spanlake.stream.chunks"] == len(events)


async def test_async_break_then_close(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    stream = await _acreate(aclient)
    async for _event in stream:
        break
    await stream.close()
    ended(rec, "closed")


async def test_async_with_exit(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    async with await _acreate(aclient) as stream:
        await stream.__anext__()
    ended(rec, "context_exit")


async def test_async_raise_inside_loop(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    with pytest.raises(ConsumerError):
        async with await _acreate(aclient) as stream:
            async for _event in stream:
                raise ConsumerError("x")
    assert attrs(ended(rec, "error"))[ga.ERROR_TYPE] == "ConsumerError"


async def test_async_garbage_collected(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    stream = await _acreate(aclient)
    del stream
    gc.collect()
    ended(rec, "dropped")


async def test_async_real_time(aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic) -> None:
    import asyncio

    fake.next_reply()
    fake.script(Reply(text=TEXT, chunks=4, pause_after=4))
    seen_while_paused = False
    async for event in await _acreate(aclient):
        if event.type == "content_block_delta" and not seen_while_paused:
            seen_while_paused = await asyncio.to_thread(fake.paused.wait, 2)
            fake.resume()
    assert seen_while_paused


def _ahelper(aclient: anthropic.AsyncAnthropic) -> Any:
    return aclient.messages.stream(model=MODEL, max_tokens=50, messages=HI)


async def test_async_helper_text_stream(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    async with _ahelper(aclient) as stream:
        assert "".join([t async for t in stream.text_stream]) == TEXT
    assert output_text(ended(rec, "exhausted")) == TEXT


async def test_async_helper_get_final_message(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    async with _ahelper(aclient) as stream:
        final = await stream.get_final_message()
    assert attrs(ended(rec, "exhausted"))[ga.RESPONSE_ID] == final.id


async def test_async_helper_until_done(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    async with _ahelper(aclient) as stream:
        await stream.until_done()
    ended(rec, "exhausted")


async def test_async_helper_exit_without_consuming(
    aclient: anthropic.AsyncAnthropic, rec: Any
) -> None:
    async with _ahelper(aclient):
        pass
    ended(rec, "closed")


async def test_async_helper_raise_inside(aclient: anthropic.AsyncAnthropic, rec: Any) -> None:
    with pytest.raises(ConsumerError):
        async with _ahelper(aclient) as stream:
            async for _event in stream:
                raise ConsumerError("x")
    assert attrs(ended(rec, "error"))[ga.ERROR_TYPE] == "ConsumerError"


def test_concurrent_streams_on_one_client_keep_their_own_spans(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fake.next_reply()
    fake.responder = lambda body: Reply(text=f"echo {body['messages'][0]['content']}", chunks=3)

    def one(i: int) -> str:
        msgs: list[MessageParam] = [{"role": "user", "content": f"q{i}"}]
        with client.messages.stream(model=MODEL, max_tokens=10, messages=msgs) as stream:
            return stream.get_final_text()

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(one, range(12)))
    assert answers == [f"echo q{i}" for i in range(12)]
    spans = rec.all()
    assert len(spans) == 12 and len({s.context.trace_id for s in spans}) == 12
    for span in spans:
        asked = json.loads(str(attrs(span)[ga.INPUT_MESSAGES]))[0]["parts"][0]["content"]
        assert output_text(span) == f"echo {asked}"


def test_slow_stream_time_to_first_chunk_and_event_times(
    client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.next_reply()
    fake.script(Reply(text=TEXT, chunks=4, chunk_delay=0.05))  # ~0.4 s in all
    list(_create(client))
    span = ended(rec, "exhausted")
    duration = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
    ttfc = attrs(span)[ga.RESPONSE_TIME_TO_FIRST_CHUNK]
    assert duration >= 0.3 and ttfc < duration / 2
    times = [e.timestamp for e in span.events if e.name == "spanlake.stream.chunk"]
    # Chunk events are stamped as chunks arrive, not all at the end.
    assert (times[-1] - times[0]) / 1e9 >= 0.25
