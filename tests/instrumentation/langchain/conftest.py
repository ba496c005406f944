"""Fixtures: LangChain + the provider instrumentations, and a span-tree helper."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_tree import Tree

from spanlake.instrumentation.anthropic import AnthropicInstrumentor
from spanlake.instrumentation.bedrock import BedrockInstrumentor
from spanlake.instrumentation.langchain import LangChainInstrumentor
from spanlake.instrumentation.openai import OpenAIInstrumentor

# The framework packages live in the ``test-frameworks`` extra, which the floor-versions job
# cannot install beside its old SDKs: there these tests are left out of collection (a
# conftest cannot skip). CI's main job sets SPANLAKE_REQUIRE_FRAMEWORKS, so they never
# vanish there.
if (
    importlib.util.find_spec("langchain_core") is None
    or importlib.util.find_spec("langgraph") is None
):
    if os.environ.get("SPANLAKE_REQUIRE_FRAMEWORKS"):
        raise RuntimeError(
            "SPANLAKE_REQUIRE_FRAMEWORKS is set but langchain-core/langgraph are missing"
        )
    collect_ignore_glob = ["test_*.py"]


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
