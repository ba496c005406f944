"""The instrumentor's packaging and coexistence: entry point, dependencies, peer wrappers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

import pytest
import wrapt
from botocore.client import BaseClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.instrumentation._genai import _peers
from spanlake.instrumentation.bedrock import BedrockInstrumentor

CLAUDE = "anthropic.claude-3-5-sonnet-20241022-v2:0"
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]


def test_entry_point_loads_the_instrumentor() -> None:
    (ep,) = [
        e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "spanlake_bedrock"
    ]
    assert ep.load() is BedrockInstrumentor
    deps = BedrockInstrumentor().instrumentation_dependencies()
    assert any(d.startswith("botocore") for d in deps)


def _peer_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    instance._peer_calls = getattr(instance, "_peer_calls", 0) + 1
    return wrapped(*args, **kwargs)


@pytest.fixture
def original() -> Iterator[Any]:
    """Restore botocore's own ``_make_api_call`` whatever the test left behind."""
    saved = BaseClient.__dict__["_make_api_call"]
    _peers.reset_warnings()
    yield saved
    BaseClient._make_api_call = saved
    _peers.reset_warnings()


def test_warns_when_a_peer_already_wraps_the_call_and_both_still_work(
    original: Any,
    client: Any,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrapt.wrap_function_wrapper("botocore.client", "BaseClient._make_api_call", _peer_wrapper)
    instrumentor = BedrockInstrumentor()
    with caplog.at_level(logging.WARNING, logger="spanlake.instrumentation"):
        instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert any("another instrumentation of botocore" in r.getMessage() for r in caplog.records)
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert len(span_exporter.get_finished_spans()) == 1
    assert client._peer_calls == 1
    # Our wrapper is gone, the peer's stays.
    current = BaseClient.__dict__["_make_api_call"]
    assert getattr(current, "_self_wrapper", None) is _peer_wrapper
    assert current.__wrapped__ is original


def test_uninstrument_under_a_peer_wrapper_stops_tracing(
    original: Any, client: Any, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    instrumentor = BedrockInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    wrapt.wrap_function_wrapper("botocore.client", "BaseClient._make_api_call", _peer_wrapper)
    instrumentor.uninstrument()  # cannot unwrap from under the peer: becomes a pass-through
    client.converse(modelId=CLAUDE, messages=MESSAGES)
    assert span_exporter.get_finished_spans() == ()
    instrumentor.instrument(tracer_provider=tracer_provider)  # and can come back
    try:
        client.converse(modelId=CLAUDE, messages=MESSAGES)
    finally:
        instrumentor.uninstrument()
    assert len(span_exporter.get_finished_spans()) == 1


def test_with_on_an_event_stream_fails_as_without_instrumentation(
    client: Any, instrumented: InMemorySpanExporter
) -> None:
    """botocore's EventStream is no context manager; the proxy must not pretend otherwise."""
    response = client.converse_stream(modelId=CLAUDE, messages=MESSAGES)
    with pytest.raises(
        TypeError, match="'EventStream' object does not support the context manager protocol"
    ):
        with response["stream"]:
            pass
    assert len(list(response["stream"])) > 0  # still usable afterwards
    assert len(instrumented.get_finished_spans()) == 1
