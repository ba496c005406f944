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


def otlp_json(request: Any) -> dict[str, Any]:
    """An ExportTraceServiceRequest as OTLP/JSON (hex ids, as the OTLP spec says), built
    from protobuf's canonical JSON mapping (which would put base64 ids)."""
    import base64

    from google.protobuf.json_format import MessageToDict

    doc: dict[str, Any] = MessageToDict(request)

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(doc)
    return doc


class BlockingStore(MemoryStore):
    """Holds every write until ``release`` is set (to fill the in-flight gate)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        self.entered.set()
        self.release.wait(30)
        return super().write_spans(spans)


def simple_request(n: int = 3, seed: int = 1, name: str = "span") -> Any:
    """A small ExportTraceServiceRequest with ``n`` valid spans (names ``{name}-{i}``)."""
    import random

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="svc"))
    ss = rs.scope_spans.add()
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    for i in range(n):
        span = ss.spans.add(
            trace_id=trace_id,
            span_id=rng.getrandbits(64).to_bytes(8, "big"),
            name=f"{name}-{i}",
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_000_000_500 + i,
        )
        span.attributes.add(key="gen_ai.request.model", value=AnyValue(string_value="m"))
    return req


def post(
    port: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/traces",
    method: str = "POST",
    tls_context: Any = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (no retries): status, lower-cased headers, body."""
    import http.client

    conn: http.client.HTTPConnection
    if tls_context is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=tls_context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        all_headers = {"Content-Type": "application/x-protobuf"}
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()


def grpc_export(
    port: int,
    body: bytes,
    metadata: tuple[tuple[str, str], ...] = (),
    credentials: Any = None,
    compression: Any = None,
) -> Any:
    """One raw gRPC Export call (no retries); returns the response bytes or raises
    grpc.RpcError."""
    import grpc

    target = f"127.0.0.1:{port}"
    options: list[tuple[str, Any]] = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    if credentials is not None:
        options.append(("grpc.ssl_target_name_override", "localhost"))
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    with channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        return export(body, metadata=metadata, timeout=30, compression=compression)


def make_sdk_spans(sender: str, count: int) -> list[Any]:
    """``count`` finished SDK spans (traces of 4: a root and 3 children), each carrying
    ``sender`` and its sequence number so the stored copy can be checked by content."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"svc-{sender}"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("spanlake.tests.load")
    seq = 0
    while seq < count:
        with tracer.start_as_current_span(f"{sender}/{seq}") as root:
            root.set_attribute("sender", sender)
            root.set_attribute("seq", seq)
            seq += 1
            for _ in range(min(3, count - seq)):
                with tracer.start_as_current_span(f"{sender}/{seq}") as child:
                    child.set_attribute("sender", sender)
                    child.set_attribute("seq", seq)
                    child.set_attribute("gen_ai.request.model", "model-" + str(seq % 7))
                    child.set_attribute("payload", f"{sender}:{seq}:" + "x" * (seq % 50))
                seq += 1
    provider.shutdown()
    return list(memory.get_finished_spans())


def check_stored(records: list[Any], senders: dict[str, list[Any]]) -> None:
    """Exactly the sent spans are stored, once each, with their content."""
    sent = {
        (f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}"): s
        for spans in senders.values()
        for s in spans
    }
    stored = {(r.trace_id, r.span_id): r for r in records}
    assert len(records) == len(stored), "duplicate rows"
    missing = sent.keys() - stored.keys()
    extra = stored.keys() - sent.keys()
    assert not missing and not extra, (len(missing), len(extra))
    for key, span in sent.items():
        row = stored[key]
        assert row.name == span.name
        assert row.attributes["sender"] == span.attributes["sender"]
        assert row.attributes["seq"] == span.attributes["seq"]
        if "payload" in span.attributes:
            assert row.attributes["payload"] == span.attributes["payload"]
            assert row.model == span.attributes["gen_ai.request.model"]
        parent = span.parent.span_id if span.parent else None
        assert row.parent_span_id == (f"{parent:016x}" if parent else None)
        assert row.resource["service.name"] == f"svc-{span.attributes['sender']}"
