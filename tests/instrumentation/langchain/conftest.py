"""Fixtures: LangChain + the provider instrumentations, and a span-tree helper."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_tree import Tree

pytest.importorskip("langchain_core")
pytest.importorskip("langgraph")

from spanlake.instrumentation.anthropic import AnthropicInstrumentor
from spanlake.instrumentation.bedrock import BedrockInstrumentor
from spanlake.instrumentation.langchain import LangChainInstrumentor
from spanlake.instrumentation.openai import OpenAIInstrumentor


@pytest.fixture
def instrumented(
    tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> Iterator[InMemorySpanExporter]:
    """LangChain and the three SDKs instrumented for the test (uninstrumented after)."""
    instrumentors: list[Any] = [
        LangChainInstrumentor(),
        OpenAIInstrumentor(),
        AnthropicInstrumentor(),
        BedrockInstrumentor(),
    ]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        yield span_exporter
    finally:
        for instrumentor in instrumentors:
            instrumentor.uninstrument()


@pytest.fixture
def tree(instrumented: InMemorySpanExporter) -> Any:
    """Call to get the :class:`Tree` of the spans finished so far."""
    return lambda: Tree(instrumented.get_finished_spans())
