"""The shared GenAI core: content settings, span lifecycle, usage rules, stream proxies."""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import logging
import sys
import time
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest
import wrapt
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, SpanKind, StatusCode

from spanlake.instrumentation._genai import (
    CHUNK_EVENT,
    STREAM_CHUNKS,
    STREAM_END,
    AsyncStreamProxy,
    Invocation,
    Request,
    Response,
    SyncStreamProxy,
    Usage,
    blob_part,
    content_config,
    message,
    output_message,
    safe_invoke,
    text_part,
    warn_if_peers_active,
)
from spanlake.instrumentation._genai._peers import reset_warnings
from spanlake.semconv import gen_ai as ga
from spanlake.semconv.spanlake_attrs import SPAN_TYPE, TRUNCATED

CAPTURE = ga.ENV_CAPTURE_MESSAGE_CONTENT


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (CAPTURE, "SPANLAKE_CONTENT_MAX_BYTES", "SPANLAKE_CAPTURE_BINARY_CONTENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv(ga.ENV_SEMCONV_STABILITY_OPT_IN, raising=False)


def _request(**kw: Any) -> Request:
    base: dict[str, Any] = {"operation": "chat", "provider": "anthropic", "model": "claude-x"}
    base.update(kw)
    return Request(**base)


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


# --- content settings -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "on_span", "on_event"),
    [
        (None, True, False),
        ("NO_CONTENT", False, False),
        ("SPAN_ONLY", True, False),
        ("EVENT_ONLY", False, True),
        ("SPAN_AND_EVENT", True, True),
        ("span_and_event", True, True),
        ("true", True, False),
        ("False", False, False),
    ],
)
def test_capture_modes(
    monkeypatch: pytest.MonkeyPatch, raw: str | None, on_span: bool, on_event: bool
) -> None:
    if raw is not None:
        monkeypatch.setenv(CAPTURE, raw)
    cfg = content_config()
    assert (cfg.on_span, cfg.on_event) == (on_span, on_event)
    assert cfg.enabled == (on_span or on_event)


def test_invalid_capture_mode_warns_and_defaults(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CAPTURE, "bogus-mode")
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", "lots")
    with caplog.at_level(logging.WARNING, logger="spanlake.instrumentation"):
        cfg = content_config()
    assert cfg.on_span and not cfg.on_event
    assert cfg.max_bytes == 128 * 1024
    assert "bogus-mode" in caplog.text and "lots" in caplog.text


def test_max_bytes_and_binary_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", "4096")
    monkeypatch.setenv("SPANLAKE_CAPTURE_BINARY_CONTENT", "true")
    cfg = content_config()
    assert cfg.max_bytes == 4096 and cfg.binary


def test_settings_follow_the_environment_between_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from spanlake.instrumentation._genai._config import latest_names
    from spanlake.instrumentation._genai._stream import _max_chunk_events

    assert content_config().on_span and _max_chunk_events() == 128 and not latest_names()
    monkeypatch.setenv(CAPTURE, "NO_CONTENT")
    monkeypatch.setenv("SPANLAKE_MAX_CHUNK_EVENTS", "7")
    monkeypatch.setenv(ga.ENV_SEMCONV_STABILITY_OPT_IN, "gen_ai_latest_experimental")
    assert not content_config().enabled and _max_chunk_events() == 7 and latest_names()
    monkeypatch.setenv(CAPTURE, "EVENT_ONLY")
    monkeypatch.setenv("SPANLAKE_MAX_CHUNK_EVENTS", "nonsense")
    assert content_config().on_event and _max_chunk_events() == 128
    monkeypatch.delenv(CAPTURE)
    monkeypatch.delenv(ga.ENV_SEMCONV_STABILITY_OPT_IN)
    assert content_config().on_span and not latest_names()


# --- request / response attributes ----------------------------------------------------


def test_request_attributes_name_kind_and_type(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    req = _request(
        server_address="127.0.0.1",
        server_port=8080,
        stream=False,
        temperature=0.5,
        top_p=1,
        top_k=40,
        max_tokens=100,
        stop_sequences=["END"],
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        attributes={"x-api-key": "sk-secret", "Authorization": "Bearer t", "custom.ok": "yes"},
    )
    inv = Invocation.start(tracer_provider.get_tracer("t"), req)
    assert inv is not None
    inv.finish(Response(id="msg_1", model="claude-x-2024", finish_reasons=["end_turn"]))
    span = _only(span_exporter)
    attrs = dict(span.attributes or {})
    assert span.name == "chat claude-x" and span.kind is SpanKind.CLIENT
    assert attrs[SPAN_TYPE] == "CHAT_MODEL"
    assert attrs[ga.OPERATION_NAME] == "chat" and attrs[ga.PROVIDER_NAME] == "anthropic"
    assert attrs[ga.REQUEST_MODEL] == "claude-x"
    assert attrs[ga.SERVER_ADDRESS] == "127.0.0.1" and attrs[ga.SERVER_PORT] == 8080
    assert attrs[ga.REQUEST_STREAM] is False
    assert attrs[ga.REQUEST_TEMPERATURE] == 0.5 and attrs[ga.REQUEST_TOP_P] == 1.0
    assert attrs[ga.REQUEST_TOP_K] == 40.0 and attrs[ga.REQUEST_MAX_TOKENS] == 100
    assert attrs[ga.REQUEST_STOP_SEQUENCES] == ("END",) and attrs[ga.REQUEST_SEED] == 7
    assert attrs[ga.REQUEST_FREQUENCY_PENALTY] == 0.1
    assert attrs[ga.REQUEST_PRESENCE_PENALTY] == 0.2
    assert attrs["custom.ok"] == "yes"
    assert not any("secret" in str(v) or "Bearer" in str(v) for v in attrs.values())
    assert attrs[ga.RESPONSE_ID] == "msg_1" and attrs[ga.RESPONSE_MODEL] == "claude-x-2024"
    assert attrs[ga.RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert ga.SYSTEM not in attrs
    assert span.status.status_code is not StatusCode.ERROR


def test_span_type_follows_operation(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    inv = Invocation.start(
        tracer_provider.get_tracer("t"), _request(operation="embeddings", model="e")
    )
    assert inv is not None
    inv.end()
    assert _only(span_exporter).attributes[SPAN_TYPE] == "EMBEDDING"  # type: ignore[index]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            Usage(
                10,
                5,
                cache_read_input_tokens=100,
                cache_creation_input_tokens=20,
                input_includes_cache=False,
            ),
            {
                ga.USAGE_INPUT_TOKENS: 130,
                ga.USAGE_OUTPUT_TOKENS: 5,
                ga.USAGE_CACHE_READ_INPUT_TOKENS: 100,
                ga.USAGE_CACHE_CREATION_INPUT_TOKENS: 20,
            },
        ),
        (
            Usage(130, 5, cache_read_input_tokens=100, reasoning_output_tokens=3),
            {
                ga.USAGE_INPUT_TOKENS: 130,
                ga.USAGE_OUTPUT_TOKENS: 5,
                ga.USAGE_CACHE_READ_INPUT_TOKENS: 100,
                ga.USAGE_REASONING_OUTPUT_TOKENS: 3,
            },
        ),
        (Usage(output_tokens=2, input_includes_cache=False), {ga.USAGE_OUTPUT_TOKENS: 2}),
    ],
)
def test_usage_input_tokens_include_cache(usage: Usage, expected: dict[str, int]) -> None:
    assert usage.attributes() == expected


def test_usage_latest_experimental_adds_cache_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ga.ENV_SEMCONV_STABILITY_OPT_IN, "http, gen_ai_latest_experimental")
    attrs = Usage(1, 1, cache_creation_input_tokens=4, input_includes_cache=False).attributes()
    assert attrs[ga.USAGE_CACHE_WRITE_INPUT_TOKENS] == 4
    assert attrs[ga.USAGE_INPUT_TOKENS] == 5


# --- errors -------------------------------------------------------------------------------


class _AppError(Exception):
    pass


def test_run_failure_reraises_same_exception_and_marks_span(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    inv = Invocation.start(tracer_provider.get_tracer("t"), _request())
    assert inv is not None
    boom = _AppError("rate limited")

    def call() -> None:
        raise boom

    with pytest.raises(_AppError) as caught:
        inv.run(call)
    assert caught.value is boom
    inv.finish(Response(id="late"))  # after failure: no-op, no second end
    span = _only(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[ga.ERROR_TYPE] == "_AppError"  # type: ignore[index]
    assert ga.RESPONSE_ID not in (span.attributes or {})
    assert [e.name for e in span.events] == ["exception"]


def test_span_is_current_during_run(tracer_provider: TracerProvider) -> None:
    from opentelemetry import trace

    inv = Invocation.start(tracer_provider.get_tracer("t"), _request())
    assert inv is not None
    seen = inv.run(trace.get_current_span)
    assert seen is inv.span
    assert trace.get_current_span() is not inv.span
    inv.end()


async def test_run_async(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    inv = Invocation.start(tracer_provider.get_tracer("t"), _request())
    assert inv is not None

    async def call(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert await inv.run_async(call, 21) == 42
    inv.finish()
    inv.finish()
    inv.end()
    assert _only(span_exporter).end_time is not None


# --- content ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY", "SPAN_AND_EVENT"])
def test_content_goes_where_the_mode_says(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    mode: str,
) -> None:
    monkeypatch.setenv(CAPTURE, mode)
    inv = Invocation.start(tracer_provider.get_tracer("t"), _request())
    assert inv is not None
    msgs = [message("user", [text_part("hi")])]
    inv.record_input(messages=msgs, system=[text_part("be brief")])
    out = [output_message("assistant", [text_part("hello")], "end_turn")]
    inv.finish(Response(output_messages=out))
    span = _only(span_exporter)
    attrs = dict(span.attributes or {})
    details = [e for e in span.events if e.name == ga.EVENT_CLIENT_INFERENCE_OPERATION_DETAILS]
    if mode in ("SPAN_ONLY", "SPAN_AND_EVENT"):
        assert json.loads(str(attrs[ga.INPUT_MESSAGES])) == msgs
        assert json.loads(str(attrs[ga.OUTPUT_MESSAGES])) == out
        assert json.loads(str(attrs[ga.SYSTEM_INSTRUCTIONS])) == [text_part("be brief")]
    else:
        assert ga.INPUT_MESSAGES not in attrs and ga.OUTPUT_MESSAGES not in attrs
    if mode in ("EVENT_ONLY", "SPAN_AND_EVENT"):
        assert len(details) == 1
        ev = dict(details[0].attributes or {})
        assert json.loads(str(ev[ga.INPUT_MESSAGES])) == msgs
        assert json.loads(str(ev[ga.OUTPUT_MESSAGES])) == out
    else:
        assert details == []


def test_oversized_content_is_capped_valid_json_and_marked(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", "2048")
    inv = Invocation.start(tracer_provider.get_tracer("t"), _request())
    assert inv is not None
    inv.record_input(messages=[message("user", [text_part("x" * 50_000)])])
    inv.end()
    attrs = dict(_only(span_exporter).attributes or {})
    text = str(attrs[ga.INPUT_MESSAGES])
    assert len(text.encode()) <= 2048
    parsed = json.loads(text)
    assert parsed[0]["role"] == "user" and parsed[0]["parts"][0]["type"] == "text"
    (marker,) = attrs[TRUNCATED]  # type: ignore[misc]
    key, size = str(marker).rsplit(":", 1)
    assert key == ga.INPUT_MESSAGES and int(size) > 50_000


def test_blob_part_keeps_bytes_only_when_asked() -> None:
    without = blob_part("image", "image/png", "QUJDRA==", include_bytes=False)
    assert "content" not in without and without["size_bytes"] == 6
    with_bytes = blob_part("image", "image/png", b"ABCD", include_bytes=True)
    assert with_bytes["content"] == "QUJDRA=="


# --- streams ------------------------------------------------------------------------------


class FakeStream:
    """Shaped like an SDK stream: iterator, close(), context manager, extra attributes."""

    def __init__(self, chunks: list[Any], fail_at: int | None = None) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.produced: list[int] = []
        self.closed = False
        self.response = "raw-http-response"

    def __iter__(self) -> Iterator[Any]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise ConnectionError("stream cut")
            self.produced.append(i)
            yield chunk

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TextAccumulator:
    def __init__(self) -> None:
        self.text = ""

    def add(self, chunk: Any) -> str | None:
        self.text += chunk["t"]
        return str(chunk["t"])

    def response(self) -> Response:
        return Response(
            finish_reasons=["stop"],
            usage=Usage(3, len(self.text)),
            output_messages=[output_message("assistant", [text_part(self.text)], "stop")],
        )


def _stream(
    tp: TracerProvider, chunks: int = 3, fail_at: int | None = None
) -> tuple[SyncStreamProxy, FakeStream]:
    inv = Invocation.start(tp.get_tracer("t"), _request(stream=True))
    assert inv is not None
    raw = FakeStream([{"t": f"c{i}"} for i in range(chunks)], fail_at)
    return SyncStreamProxy(raw, inv, TextAccumulator()), raw


def _ended(exporter: InMemorySpanExporter, how: str) -> dict[str, Any]:
    span = _only(exporter)
    attrs = dict(span.attributes or {})
    assert attrs[STREAM_END] == how
    return attrs


def test_stream_exhausted(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, raw = _stream(tracer_provider)
    got = list(proxy)
    assert got == raw.chunks and all(a is b for a, b in zip(got, raw.chunks, strict=True))
    attrs = _ended(span_exporter, "exhausted")
    assert attrs[STREAM_CHUNKS] == 3
    assert json.loads(attrs[ga.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "c0c1c2"
    assert attrs[ga.USAGE_OUTPUT_TOKENS] == 6
    assert attrs[ga.RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
    span = _only(span_exporter)
    events = [e for e in span.events if e.name == CHUNK_EVENT]
    # SPAN_ONLY (the default): one bare event per chunk; the text is in the output message.
    assert len(events) == 3 and all(not e.attributes for e in events)
    times = [e.timestamp for e in events]
    assert times == sorted(times)
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time <= times[0] and times[-1] <= span.end_time


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "SPAN_AND_EVENT"])
def test_stream_chunk_text_on_events_when_content_goes_on_events(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    mode: str,
) -> None:
    monkeypatch.setenv(CAPTURE, mode)
    proxy, _ = _stream(tracer_provider)
    list(proxy)
    span = _only(span_exporter)
    events = [e for e in span.events if e.name == CHUNK_EVENT]
    assert [(e.attributes or {}).get("content") for e in events] == ["c0", "c1", "c2"]
    assert (ga.OUTPUT_MESSAGES in (span.attributes or {})) is (mode == "SPAN_AND_EVENT")
    with pytest.raises(TypeError):  # read-only, like the SDK's own event attributes
        events[0].attributes["content"] = "changed"  # type: ignore[index]
    copied = copy.deepcopy(list(span.events))  # processors/exporters may copy spans
    assert dict(copied[1].attributes or {}) == {"content": "c1"}


def test_stream_chunk_events_keep_arrival_times(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _stream(tracer_provider, chunks=3)
    seen = []
    for _chunk in proxy:
        time.sleep(0.02)
        seen.append(time.time_ns())
    events = [e for e in _only(span_exporter).events if e.name == CHUNK_EVENT]
    # Stamped as each chunk arrived (before the app's 20 ms of work on it), not at the end.
    assert [e.timestamp < t for e, t in zip(events, seen, strict=True)] == [True] * 3
    assert events[1].timestamp >= seen[0] and events[2].timestamp >= seen[1]


def test_stream_chunk_events_before_error_event(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _stream(tracer_provider, chunks=3, fail_at=2)
    with pytest.raises(ConnectionError):
        list(proxy)
    names = [e.name for e in _only(span_exporter).events]
    assert names == [CHUNK_EVENT, CHUNK_EVENT, "exception"]


def test_chunk_events_on_a_dropped_stream(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _stream(tracer_provider, chunks=5)
    next(proxy)
    next(proxy)
    del proxy
    gc.collect()
    span = _only(span_exporter)
    assert len([e for e in span.events if e.name == CHUNK_EVENT]) == 2


def _limited_stream(limits: SpanLimits, chunks: int) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    proxy, _ = _stream(provider, chunks=chunks)
    list(proxy)
    return _only(exporter)


def test_chunk_events_respect_the_event_count_limit() -> None:
    span = _limited_stream(SpanLimits(max_events=4), chunks=6)
    # As with add_event: the newest ``max_events`` kept, the others counted as dropped.
    assert [e.name for e in span.events] == [CHUNK_EVENT] * 4 and span.dropped_events == 2


def test_chunk_event_text_respects_the_attribute_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CAPTURE, "EVENT_ONLY")
    span = _limited_stream(SpanLimits(max_attribute_length=1), chunks=2)
    chunks = [e for e in span.events if e.name == CHUNK_EVENT]
    assert [dict(e.attributes or {}) for e in chunks] == [{"content": "c"}, {"content": "c"}]
    span = _limited_stream(SpanLimits(max_event_attributes=0), chunks=2)
    chunks = [e for e in span.events if e.name == CHUNK_EVENT]
    assert [(dict(e.attributes or {}), e.dropped_attributes) for e in chunks] == [({}, 1)] * 2


class _CustomEventSpan(sdk_trace.Span):
    """An SDK span subclass with its own ``add_event``: chunk events must go through it."""

    seen: ClassVar[list[tuple[str, int | None]]] = []

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        self.seen.append((name, timestamp))
        super().add_event(name, attributes, timestamp)


def test_chunk_events_through_a_customised_add_event() -> None:
    from spanlake.instrumentation._genai._events import add_chunk_events

    tracer = TracerProvider().get_tracer("t")
    span = tracer.start_span("s")
    span.__class__ = _CustomEventSpan
    add_chunk_events(span, CHUNK_EVENT, [10, 20], ["a", None])
    span.end()
    assert _CustomEventSpan.seen == [(CHUNK_EVENT, 10), (CHUNK_EVENT, 20)]
    assert [(e.timestamp, dict(e.attributes or {})) for e in span.events] == [  # type: ignore[attr-defined]
        (10, {"content": "a"}),
        (20, {}),
    ]


def test_chunk_events_on_a_non_sdk_span_never_raise() -> None:
    from spanlake.instrumentation._genai._events import add_chunk_events

    class Odd:
        def is_recording(self) -> bool:
            return True

        def add_event(self, *a: Any, **kw: Any) -> None:
            raise RuntimeError("odd span")

    add_chunk_events(Odd(), CHUNK_EVENT, [1, 2], None)  # type: ignore[arg-type]
    add_chunk_events(NonRecordingSpan(INVALID_SPAN_CONTEXT), CHUNK_EVENT, [1], ["x"])


def test_stream_chunks_arrive_in_real_time(tracer_provider: TracerProvider) -> None:
    proxy, raw = _stream(tracer_provider, chunks=4)
    for i, _chunk in enumerate(proxy):
        # The producer is never ahead of the consumer: nothing is buffered.
        assert raw.produced == list(range(i + 1))


def test_stream_break_then_drop(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _raw = _stream(tracer_provider, chunks=5)
    for _chunk in proxy:
        break
    assert span_exporter.get_finished_spans() == ()
    del proxy
    gc.collect()
    attrs = _ended(span_exporter, "dropped")
    assert attrs[STREAM_CHUNKS] == 1
    assert json.loads(attrs[ga.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "c0"


def test_stream_unconsumed_gc(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _stream(tracer_provider)
    del proxy
    gc.collect()
    assert _ended(span_exporter, "dropped")[STREAM_CHUNKS] == 0


def test_stream_close(tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter) -> None:
    proxy, raw = _stream(tracer_provider)
    next(proxy)
    proxy.close()
    assert raw.closed
    _ended(span_exporter, "closed")
    list(proxy)  # further use does not end the span again
    assert len(span_exporter.get_finished_spans()) == 1


def test_stream_with_exit(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, raw = _stream(tracer_provider)
    with proxy as entered:
        assert entered is proxy
        next(entered)
    assert raw.closed
    _ended(span_exporter, "context_exit")


def test_stream_error_in_consumer_loop(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _stream(tracer_provider)
    with pytest.raises(_AppError), proxy:
        for _ in proxy:
            raise _AppError("consumer failed")
    span = _only(span_exporter)
    assert span.attributes[STREAM_END] == "error"  # type: ignore[index]
    assert span.attributes[ga.ERROR_TYPE] == "_AppError"  # type: ignore[index]
    assert span.status.status_code is StatusCode.ERROR


def test_stream_error_from_provider(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _stream(tracer_provider, chunks=3, fail_at=1)
    seen = []
    with pytest.raises(ConnectionError):
        for chunk in proxy:
            seen.append(chunk)
    assert len(seen) == 1
    span = _only(span_exporter)
    assert span.attributes[ga.ERROR_TYPE] == "ConnectionError"  # type: ignore[index]
    assert span.attributes[STREAM_CHUNKS] == 1  # type: ignore[index]


def test_stream_passes_other_attributes_through(tracer_provider: TracerProvider) -> None:
    proxy, _ = _stream(tracer_provider)
    assert proxy.response == "raw-http-response"
    assert isinstance(proxy, FakeStream)
    proxy.close()


def test_chunk_events_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    monkeypatch.setenv("SPANLAKE_MAX_CHUNK_EVENTS", "2")
    proxy, _ = _stream(tracer_provider, chunks=10)
    list(proxy)
    span = _only(span_exporter)
    assert len([e for e in span.events if e.name == CHUNK_EVENT]) == 2
    assert span.attributes[STREAM_CHUNKS] == 10  # type: ignore[index]


class BrokenAccumulator:
    def add(self, chunk: Any) -> str | None:
        raise RuntimeError("telemetry bug")

    def response(self) -> Response:
        raise RuntimeError("telemetry bug")


def test_telemetry_bugs_never_reach_the_app(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    inv = Invocation.start(tracer_provider.get_tracer("t"), _request())
    assert inv is not None
    raw = FakeStream([1, 2, 3])
    assert list(SyncStreamProxy(raw, inv, BrokenAccumulator())) == [1, 2, 3]
    assert safe_invoke(lambda: 1 / 0) is None
    inv.record_input(messages=[{"role": "user", "parts": [object()]}])  # odd content: tolerated
    assert _ended(span_exporter, "exhausted")[STREAM_CHUNKS] == 3  # ended despite the bugs
    # Chunk arrival is still recorded when the accumulator fails.
    assert len([e for e in _only(span_exporter).events if e.name == CHUNK_EVENT]) == 3


class FakeAsyncStream:
    def __init__(self, chunks: list[Any]) -> None:
        self.chunks = chunks
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[Any]:
        for chunk in self.chunks:
            await asyncio.sleep(0)
            yield chunk

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> FakeAsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _astream(tp: TracerProvider) -> tuple[AsyncStreamProxy, FakeAsyncStream]:
    inv = Invocation.start(tp.get_tracer("t"), _request(stream=True))
    assert inv is not None
    raw = FakeAsyncStream([{"t": "a"}, {"t": "b"}])
    return AsyncStreamProxy(raw, inv, TextAccumulator()), raw


async def test_async_stream_exhausted(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, raw = _astream(tracer_provider)
    assert [c async for c in proxy] == raw.chunks
    assert _ended(span_exporter, "exhausted")[ga.USAGE_OUTPUT_TOKENS] == 2


async def test_async_stream_close_and_with(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, raw = _astream(tracer_provider)
    await proxy.__anext__()
    await proxy.close()
    assert raw.closed
    _ended(span_exporter, "closed")
    span_exporter.clear()
    proxy2, raw2 = _astream(tracer_provider)
    async with proxy2 as entered:
        assert entered is proxy2
    assert raw2.closed
    _ended(span_exporter, "context_exit")


async def test_async_stream_error_inside_with(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _astream(tracer_provider)
    with pytest.raises(_AppError):
        async with proxy:
            async for _ in proxy:
                raise _AppError("x")
    assert _ended(span_exporter, "error")[ga.ERROR_TYPE] == "_AppError"


async def test_async_stream_dropped(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    proxy, _ = _astream(tracer_provider)
    del proxy
    gc.collect()
    _ended(span_exporter, "dropped")


# --- peers --------------------------------------------------------------------------------


def test_peer_warning_for_wrapt_wrapper_and_flagged_instrumentor(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reset_warnings()
    target = types.ModuleType("fake_sdk_mod")

    class Client:
        def create(self) -> int:
            return 1

    target.Client = Client  # type: ignore[attr-defined]
    Client.create.__module__ = "fake_sdk_mod"
    peer_mod = types.ModuleType("fake_peer_mod")

    class PeerInstrumentor:
        _instance = types.SimpleNamespace(is_instrumented_by_opentelemetry=True)

    peer_mod.PeerInstrumentor = PeerInstrumentor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_sdk_mod", target)
    monkeypatch.setitem(sys.modules, "fake_peer_mod", peer_mod)
    kwargs: dict[str, Any] = {
        "peer_instrumentors": ["fake_peer_mod:PeerInstrumentor", "absent_mod:X"],
        "targets": [("fake_sdk_mod", "Client.create")],
    }
    assert warn_if_peers_active("fake", **kwargs) == ["fake_peer_mod:PeerInstrumentor"]
    wrapt.wrap_function_wrapper(target, "Client.create", lambda w, i, a, k: w(*a, **k))
    with caplog.at_level(logging.WARNING, logger="spanlake.instrumentation"):
        found = warn_if_peers_active("fake", **kwargs)
        again = warn_if_peers_active("fake", **kwargs)
    assert found is not None and len(found) == 2 and again == found
    # One warning per peer, however often instrument() runs.
    assert caplog.text.count("(fake_peer_mod:PeerInstrumentor)") == 1
    assert caplog.text.count("(wrapt wrapper on fake_sdk_mod.Client.create)") == 1


def test_peer_warning_for_foreign_monkeypatch(monkeypatch: pytest.MonkeyPatch) -> None:
    reset_warnings()
    target = types.ModuleType("fake_sdk2")

    class Client:
        def create(self) -> int:
            return 1

    target.Client = Client  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_sdk2", target)
    spec = [("fake_sdk2", "Client.create")]
    Client.create.__module__ = "fake_sdk2"
    assert warn_if_peers_active("fake2", targets=spec) == []

    def patched(self: Any) -> int:  # what a monkeypatching peer installs
        return 2

    patched.__module__ = "mlflow.anthropic.autolog"
    monkeypatch.setattr(Client, "create", patched)
    assert warn_if_peers_active("fake2", targets=spec) == [
        "fake_sdk2.Client.create patched by mlflow.anthropic.autolog"
    ]


def test_stream_state_moves_to_a_new_proxy() -> None:
    """An SDK helper that re-wraps the response: the span follows, the old proxy is inert."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    first, _raw = _stream(provider)
    state = first._self_state
    second = SyncStreamProxy(
        FakeStream([{"t": "x"}]), state.invocation, state.accumulator, state=state
    )
    del first
    gc.collect()
    assert exporter.get_finished_spans() == ()  # the discarded proxy no longer owns the span
    assert list(second) == [{"t": "x"}]
    assert _ended(exporter, "exhausted")[STREAM_CHUNKS] == 1
