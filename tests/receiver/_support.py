"""Helpers for the receiver tests: in-memory and fault-injecting stores, span builders,
free ports, and real OTel OTLP exporters pointed at a receiver."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from typing import Any

from spanlake.exporter.errors import TransientStoreError
from spanlake.exporter.records import (
    Assessment,
    Experiment,
    SpanRecord,
    Trace,
    TracePage,
)
from spanlake.exporter.store.base import DEFAULT_MAX_RESULTS, Store


class MemoryStore(Store):
    """Only what the receiver needs: idempotent, thread-safe ``write_spans``."""

    uri = "memory://"

    def __init__(self) -> None:
        self.spans: dict[tuple[str, str], SpanRecord] = {}
        self.writes = 0
        self.closed = False
        self._lock = threading.Lock()

    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        with self._lock:
            self.writes += 1
            new = 0
            for s in spans:
                key = (s.trace_id, s.span_id)
                if key not in self.spans:
                    self.spans[key] = s
                    new += 1
            return new

    def by_name(self) -> dict[str, SpanRecord]:
        with self._lock:
            return {s.name: s for s in self.spans.values()}

    def close(self) -> None:
        self.closed = True

    def get_or_create_experiment(self, name: str) -> Experiment:
        raise NotImplementedError

    def list_experiments(self) -> list[Experiment]:
        raise NotImplementedError

    def search_traces(
        self,
        experiment_names: Sequence[str] | None = None,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = DEFAULT_MAX_RESULTS,
        page_token: str | None = None,
    ) -> TracePage:
        raise NotImplementedError

    def get_trace(self, trace_id: str) -> Trace:
        raise NotImplementedError

    def log_assessment(self, assessment: Assessment) -> Assessment:
        raise NotImplementedError

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        raise NotImplementedError

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        raise NotImplementedError


class FlakyStore(MemoryStore):
    """Fails every write while ``failing`` is set (or the first ``fail_first`` writes)
    with a transient error, committing nothing of that call."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.failing = False
        self.failures = 0

    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        if self.failing or self.failures < self.fail_first:
            self.failures += 1
            raise TransientStoreError("database is locked (injected)")
        return super().write_spans(spans)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def otlp_exporter(protocol: str, port: int, **kwargs: Any) -> Any:
    """A real OTel OTLP span exporter (``grpc`` or ``http``) for a local receiver."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"127.0.0.1:{port}", insecure=True, **kwargs)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    return HTTPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces", **kwargs)
