"""Shared fixtures.

The OTel API allows one global TracerProvider per process, so the session installs one
real ``TracerProvider`` with a ``SimpleSpanProcessor(InMemorySpanExporter())`` and each test
gets the exporter cleared (``span_exporter``). Instrumentor tests may instead build their own
provider and pass it as ``tracer_provider=``; every fixture that instruments also
uninstruments.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_MEMORY = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_MEMORY))
trace_api.set_tracer_provider(_PROVIDER)


@pytest.fixture
def tracer_provider() -> TracerProvider:
    """The process-wide real TracerProvider (spans go to ``span_exporter``)."""
    return _PROVIDER


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """In-memory exporter of the global provider, empty at the start of each test."""
    _MEMORY.clear()
    yield _MEMORY
    _MEMORY.clear()


@pytest.fixture
def sqlite_uri(tmp_path: Path) -> str:
    """A fresh SQLite store URI (absolute: four slashes)."""
    return f"sqlite:///{tmp_path / 'spanlake.db'}"
