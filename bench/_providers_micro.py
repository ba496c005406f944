"""Micro-costs behind the stream overhead: ways of recording chunk arrival on one span.

The last two cases are what spanlake does now (``_genai._events.add_chunk_events``): note
``time_ns()`` per chunk, add the events in one go at the end with those timestamps.

One span with 38 chunks (32 text deltas, 6 structural), real SDK TracerProvider with a
BatchSpanProcessor into a no-op exporter; calling thread's CPU time, best of 7 x 300.
Run with the bench venv: ``/work/bench-venv-h8/bin/python bench/_providers_micro.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from spanlake.instrumentation._genai._events import add_chunk_events

TEXTS = [f"chunk text number {i} " * 2 for i in range(32)]
CHUNKS: list[str | None] = [None, None, None, *TEXTS, None, None, None]


class _Noop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def main() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Noop()))
    tracer = provider.get_tracer("bench.micro")

    def no_events() -> None:
        tracer.start_span("chat", attributes={"a": 1}).end()

    def text_or_bare() -> None:
        span = tracer.start_span("chat", attributes={"a": 1})
        for text in CHUNKS:
            if text:
                span.add_event("gen_ai.chunk", {"content": text})
            else:
                span.add_event("gen_ai.chunk")
        span.end()

    def index_and_text() -> None:
        span = tracer.start_span("chat", attributes={"a": 1})
        for i, text in enumerate(CHUNKS):
            span.add_event("gen_ai.chunk", {"index": i, "content": text or ""})
        span.end()

    def bare() -> None:
        span = tracer.start_span("chat", attributes={"a": 1})
        for _ in CHUNKS:
            span.add_event("gen_ai.chunk")
        span.end()

    def bare_16() -> None:
        span = tracer.start_span("chat", attributes={"a": 1})
        for _ in CHUNKS[:16]:
            span.add_event("gen_ai.chunk")
        span.end()

    def offsets_attribute() -> None:
        span = tracer.start_span("chat", attributes={"a": 1})
        start = time.monotonic_ns()
        offsets = [(time.monotonic_ns() - start) // 1000 for _ in CHUNKS]
        span.set_attribute("spanlake.stream.chunk_offsets_us", offsets)
        span.end()

    def noted(with_text: bool) -> Callable[[], None]:
        def run() -> None:
            span = tracer.start_span("chat", attributes={"a": 1})
            times: list[int] = []
            texts: list[str | None] | None = [] if with_text else None
            for text in CHUNKS:
                times.append(time.time_ns())
                if texts is not None:
                    texts.append(text)
            add_chunk_events(span, "gen_ai.chunk", times, texts)
            span.end()

        return run

    cases: dict[str, Callable[[], None]] = {
        "span, no events": no_events,
        "38 events: {index, content}": index_and_text,
        "38 events: text delta or bare (old ours)": text_or_bare,
        "38 bare events": bare,
        "16 bare events (a cap)": bare_16,
        "one int-list attribute of offsets": offsets_attribute,
        "38 noted, bare events at end (ours)": noted(False),
        "38 noted, text events at end (ours, EVENT)": noted(True),
    }
    base = None
    for name, fn in cases.items():
        best = min(_run(fn) for _ in range(7))
        base = best if base is None else base
        print(f"{name:40s} {best:8.1f} µs/span  (+{best - base:6.1f} over no events)")


def _run(fn: Callable[[], None], n: int = 300) -> float:
    for _ in range(20):
        fn()
    t0 = time.thread_time_ns()
    for _ in range(n):
        fn()
    return (time.thread_time_ns() - t0) / n / 1000


if __name__ == "__main__":
    main()
