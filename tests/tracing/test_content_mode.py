"""The manual API honours the content settings the provider instrumentations do:
``NO_CONTENT`` (and the legacy ``false``) records no inputs or outputs, and
``SPANLAKE_CONTENT_MAX_BYTES`` caps each recorded value as a whole."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.semconv import spanlake_attrs
from spanlake.tracing import SpanlakeClient, start_span, trace

CONTENT_KEYS = (spanlake_attrs.SPAN_INPUTS, spanlake_attrs.SPAN_OUTPUTS, spanlake_attrs.TRUNCATED)


@trace
def answer(question: str, context: dict[str, str]) -> dict[str, str]:
    return {"answer": f"about {question}"}


@trace
def stream(n: int) -> Iterator[str]:
    yield from (f"chunk {i}" for i in range(n))


def _run_everything() -> None:
    answer("cats", {"doc": "private notes"})
    assert list(stream(3)) == ["chunk 0", "chunk 1", "chunk 2"]
    with start_span("block") as span:
        span.set_inputs({"q": "private question"})
        span.set_outputs("private answer")
    client = SpanlakeClient()
    root = client.start_trace("client-root", inputs={"q": "private"})
    child = client.start_span("client-child", root.trace_id, root.span_id, inputs=[1, 2])
    client.end_span(child.trace_id, child.span_id, outputs={"private": True})
    client.end_trace(root.trace_id, outputs="done")


@pytest.mark.parametrize("mode", ["NO_CONTENT", "false"])
def test_no_content_records_no_inputs_or_outputs(
    span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    _run_everything()
    spans = span_exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == [
        "answer",
        "block",
        "client-child",
        "client-root",
        "stream",
    ]
    for span in spans:
        recorded = set(span.attributes or {}) & set(CONTENT_KEYS)
        assert not recorded, (span.name, recorded)
        assert "private" not in json.dumps(dict(span.attributes or {}))


def test_default_mode_records_them(
    span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    _run_everything()
    for span in span_exporter.get_finished_spans():
        assert spanlake_attrs.SPAN_INPUTS in (span.attributes or {}), span.name
        assert spanlake_attrs.SPAN_OUTPUTS in (span.attributes or {}), span.name


@pytest.mark.parametrize("cap", [64 * 1024, 300_000])
def test_inputs_and_outputs_fill_the_configured_cap(
    span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", str(cap))
    prompt = "".join(f"line {i}: all quiet\n" for i in range(21_000))  # ~405 KB
    answer(prompt, {"doc": prompt})
    (span,) = span_exporter.get_finished_spans()
    stored = str((span.attributes or {})[spanlake_attrs.SPAN_INPUTS])
    assert 0.9 * cap <= len(stored.encode()) <= cap
    assert json.loads(stored)["question"].startswith("line 0: all quiet\n")
