"""Fixtures: a loopback fake OpenAI API, real SDK clients pointed at it, and the instrumentor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import openai
import pytest
from fakes.openai_server import FakeOpenAI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.instrumentation.openai import OpenAIInstrumentor


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def instrumented(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> Iterator[InMemorySpanExporter]:
    """Instrument for the test (uninstrument after); yields the exporter holding the spans."""
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        yield span_exporter
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-test-secret", max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake.base_url, api_key="sk-test-secret", max_retries=0
    ) as c:
        yield c


@pytest.fixture
def one_span(instrumented: InMemorySpanExporter) -> Callable[[], ReadableSpan]:
    """Returns the one finished span (fails if the call produced none or several)."""

    def get() -> ReadableSpan:
        spans = instrumented.get_finished_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    return get
