"""Fixtures: one loopback fake Bedrock per module, a real boto3 client on it, the instrumentor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes.bedrock_server import FakeBedrock
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.instrumentation.bedrock import BedrockInstrumentor


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeBedrock) -> FakeBedrock:
    """The module's fake, with no leftover scripted replies or recorded requests."""
    fake_server.requests.clear()
    while fake_server.next_reply() is not None:
        pass
    return fake_server


@pytest.fixture(scope="module")
def client(fake_server: FakeBedrock) -> Any:
    """A real boto3 ``bedrock-runtime`` client, created BEFORE any test instruments."""
    return fake_server.client()


@pytest.fixture
def instrumented(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> Iterator[InMemorySpanExporter]:
    """Instrument for the test (uninstrument after); yields the exporter holding the spans."""
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        yield span_exporter
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def one_span(instrumented: InMemorySpanExporter) -> Callable[[], ReadableSpan]:
    """Returns the one finished span (fails if the call produced none or several)."""

    def get() -> ReadableSpan:
        spans = instrumented.get_finished_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    return get
