"""Fixtures: the loopback fake API, real SDK clients pointed at it, our instrumentor on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import pytest
from fakes.anthropic_server import FakeAnthropic
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.instrumentation.anthropic import AnthropicInstrumentor
from spanlake.semconv import gen_ai as ga

API_KEY = "sk-ant-test-SECRET-key"
SCOPE = "spanlake.instrumentation.anthropic"


@pytest.fixture(autouse=True)
def _default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from the SDK's and our defaults, whatever the shell exported."""
    for var in (
        ga.ENV_CAPTURE_MESSAGE_CONTENT,
        "SPANLAKE_CONTENT_MAX_BYTES",
        "SPANLAKE_CAPTURE_BINARY_CONTENT",
        "ANTHROPIC_OPEN_TELEMETRY",
        "ANTHROPIC_OPEN_TELEMETRY_PROPAGATION",
        "ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        server.pause_timeout = 3.0
        yield server


@pytest.fixture
def instrumented(tracer_provider: TracerProvider) -> Iterator[AnthropicInstrumentor]:
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=tracer_provider)
    yield inst
    inst.uninstrument()


@pytest.fixture
def client(
    fake: FakeAnthropic, instrumented: AnthropicInstrumentor
) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key=API_KEY, max_retries=0) as c:
        yield c


@pytest.fixture
async def aclient(
    fake: FakeAnthropic, instrumented: AnthropicInstrumentor
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key=API_KEY, max_retries=0
    ) as c:
        yield c


class Recorded:
    """What the test's calls emitted (a thin reader over the in-memory exporter)."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def ours(self) -> list[ReadableSpan]:
        """Spans of our instrumentor only (the SDK's native spans left out)."""
        return [
            s
            for s in self.all()
            if s.instrumentation_scope and s.instrumentation_scope.name == SCOPE
        ]

    def one(self) -> ReadableSpan:
        """The single span of the call; fails if the SDK's native span leaked in too."""
        finished = self.all()
        assert len(finished) == 1, [(s.name, s.instrumentation_scope) for s in finished]
        return finished[0]

    @staticmethod
    def attrs(span: ReadableSpan) -> dict[str, Any]:
        return dict(span.attributes or {})

    @staticmethod
    def content(span: ReadableSpan, key: str) -> Any:
        return json.loads(str((span.attributes or {})[key]))


@pytest.fixture
def rec(span_exporter: InMemorySpanExporter) -> Recorded:
    return Recorded(span_exporter)
