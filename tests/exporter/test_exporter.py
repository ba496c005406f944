"""SpanlakeSpanExporter: the OTel exporter contract, containment, and nesting into a store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult

from spanlake.exporter import SpanlakeSpanExporter
from spanlake.exporter.errors import ConfigError, StoreError, TransientStoreError
from spanlake.exporter.records import SpanRecord
from spanlake.exporter.store import open_store
from spanlake.exporter.store.sqlite import SQLiteStore


def provider_with(
    exporter: SpanlakeSpanExporter, *, batch: bool = False, service: str = "svc"
) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


def test_spans_land_in_the_store_with_structure(sqlite_uri: str) -> None:
    exporter = SpanlakeSpanExporter(sqlite_uri, experiment="agents")
    provider = provider_with(exporter, batch=True)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("agent") as root:
        with tracer.start_as_current_span(
            "chat m",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.input_tokens": 7,
                "gen_ai.usage.output_tokens": 3,
            },
        ):
            pass
        with tracer.start_as_current_span("tool", attributes={"spanlake.span.type": "TOOL"}):
            pass
    provider.shutdown()  # flushes the batch processor, then shuts the exporter down
    store = open_store(sqlite_uri)
    trace = store.get_trace(f"{root.get_span_context().trace_id:032x}")
    assert trace.info.experiment == "agents"
    assert trace.info.name == "agent" and trace.info.span_count == 3
    assert trace.info.token_usage.total_tokens == 10
    assert trace.info.service_name == "svc"
    by_name = {s.name: s for s in trace.spans}
    assert by_name["chat m"].parent_span_id == by_name["agent"].span_id
    assert by_name["tool"].span_type == "TOOL"
    assert exporter.stats["exported"] == 3
    store.close()


class _FailingStore(SQLiteStore):
    def __init__(self, path: str, error: Exception, failures: int) -> None:
        super().__init__(path)
        self.error, self.failures, self.calls = error, failures, 0

    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return super().write_spans(spans)


def test_store_errors_are_contained_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _FailingStore(str(tmp_path / "s.db"), StoreError("disk full"), failures=10**6)
    exporter = SpanlakeSpanExporter(store)
    tracer = provider_with(exporter).get_tracer("t")
    with caplog.at_level(logging.WARNING):
        with tracer.start_as_current_span("work"):
            pass  # the app never sees the store failure
    assert exporter.stats["failed_batches"] == 1
    assert "disk full" in caplog.text


def test_transient_store_errors_are_retried(tmp_path: Path) -> None:
    store = _FailingStore(str(tmp_path / "s.db"), TransientStoreError("locked"), failures=2)
    exporter = SpanlakeSpanExporter(store)
    with provider_with(exporter).get_tracer("t").start_as_current_span("work") as span:
        pass
    assert store.calls == 3
    assert store.get_trace(f"{span.get_span_context().trace_id:032x}").info.span_count == 1


def test_export_after_shutdown_fails_and_shutdown_is_idempotent(sqlite_uri: str) -> None:
    exporter = SpanlakeSpanExporter(sqlite_uri)
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export([]) is SpanExportResult.FAILURE
    assert exporter.force_flush() is True


def test_bad_store_uri(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match="Unknown store scheme"):
        SpanlakeSpanExporter("postgres:///x")
    monkeypatch.setenv("SPANLAKE_STORE", "not-a-uri")
    with caplog.at_level(logging.ERROR):
        exporter = SpanlakeSpanExporter()  # zero-code construction: no raise, one clear line
    assert exporter.store is None
    assert "spanlake exporter disabled" in caplog.text and "not-a-uri" in caplog.text
    assert exporter.export([]) is SpanExportResult.FAILURE


def test_env_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANLAKE_STORE", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("SPANLAKE_EXPERIMENT", "from-env")
    exporter = SpanlakeSpanExporter()
    with provider_with(exporter).get_tracer("t").start_as_current_span("x"):
        pass
    assert [e.name for e in open_store(f"sqlite:///{tmp_path}/env.db").list_experiments()] == [
        "from-env"
    ]


def test_redaction_hook_rewrites_or_drops(sqlite_uri: str) -> None:
    def redact(record: SpanRecord) -> SpanRecord | None:
        if record.name == "secret":
            return None
        record.inputs = '"[PII removed]"'
        return record

    exporter = SpanlakeSpanExporter(sqlite_uri, redact=redact)
    tracer = provider_with(exporter).get_tracer("t")
    with tracer.start_as_current_span(
        "root", attributes={"spanlake.span.inputs": '"my SSN"'}
    ) as root:
        with tracer.start_as_current_span("secret"):
            pass
    trace = open_store(sqlite_uri).get_trace(f"{root.get_span_context().trace_id:032x}")
    assert [s.name for s in trace.spans] == ["root"]
    assert trace.spans[0].inputs == '"[PII removed]"'


def test_two_exporters_out_of_order_into_one_file(sqlite_uri: str) -> None:
    """A trace split across two processes' exporters (W3C context), children first."""
    from opentelemetry import trace as trace_api
    from opentelemetry.propagate import extract, inject

    service_a = provider_with(SpanlakeSpanExporter(sqlite_uri, "exp"), batch=True, service="a")
    service_b = provider_with(SpanlakeSpanExporter(sqlite_uri, "exp"), batch=True, service="b")
    carrier: dict[str, str] = {}
    root_cm = service_a.get_tracer("a").start_as_current_span("frontend")
    root = root_cm.__enter__()
    inject(carrier)
    with service_b.get_tracer("b").start_as_current_span(
        "backend", context=extract(carrier), kind=trace_api.SpanKind.SERVER
    ):
        pass
    service_b.shutdown()  # children arrive first
    store = open_store(sqlite_uri)
    trace_id = f"{root.get_span_context().trace_id:032x}"
    assert store.get_trace(trace_id).info.state.value == "IN_PROGRESS"
    root_cm.__exit__(None, None, None)
    service_a.shutdown()
    info = store.get_trace(trace_id).info
    assert info.state.value == "OK" and info.name == "frontend" and info.span_count == 2
    assert info.service_name == "a"
    spans = {s.name: s for s in store.get_trace(trace_id).spans}
    assert spans["backend"].parent_span_id == spans["frontend"].span_id
    assert spans["backend"].resource["service.name"] == "b"


def test_concurrent_threads_export_safely(sqlite_uri: str) -> None:
    exporter = SpanlakeSpanExporter(sqlite_uri)
    provider = provider_with(exporter, batch=True)
    tracer = provider.get_tracer("t")

    def work(i: int) -> None:
        for j in range(25):
            with tracer.start_as_current_span(f"root-{i}-{j}"):
                with tracer.start_as_current_span("child"):
                    pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    provider.shutdown()
    page = open_store(sqlite_uri).search_traces(max_results=1000)
    assert len(page.traces) == 200
    assert {t.span_count for t in page.traces} == {2}
