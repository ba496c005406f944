"""Load: K concurrent real OTLP exporters (gRPC and HTTP) -> exactly N spans stored in
SQLite, checked by content; once more with a tiny in-flight limit so that clients are
told to back off (429 / UNAVAILABLE + RetryInfo) and must retry."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from receiver._support import check_stored, make_sdk_spans, otlp_exporter
from receiver.conftest import StartReceiver

from spanlake.exporter.store import open_store

SENDERS = [("grpc", "g0"), ("grpc", "g1"), ("http", "h0"), ("http", "h1")]


def _send(protocol: str, port: int, spans: list[Any], batch: int, results: list[Any]) -> None:
    kwargs: dict[str, Any] = {"timeout": 20}
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http import Compression

        kwargs["compression"] = Compression.Gzip
    exporter = otlp_exporter(protocol, port, **kwargs)
    try:
        for i in range(0, len(spans), batch):
            results.append(exporter.export(spans[i : i + batch]))
    finally:
        exporter.shutdown()


def _run_load(
    start_receiver: StartReceiver, uri: str, per_sender: int, batch: int, **config: Any
) -> Any:
    store = open_store(uri)
    r = start_receiver(store, **config)
    senders = {name: make_sdk_spans(name, per_sender) for _, name in SENDERS}
    results: list[Any] = []
    threads = [
        threading.Thread(
            target=_send,
            args=(
                proto,
                r.grpc_port if proto == "grpc" else r.http_port,
                senders[name],
                batch,
                results,
            ),
        )
        for proto, name in SENDERS
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results and all(res == SpanExportResult.SUCCESS for res in results)
    r.stop()  # drains and closes the store
    with open_store(uri) as reopened:
        records = [s for batch_ in reopened.iter_spans() for s in batch_]
    check_stored(records, senders)
    return r


def test_concurrent_exporters_store_exactly_what_they_sent(
    start_receiver: StartReceiver, sqlite_uri: str
) -> None:
    r = _run_load(start_receiver, sqlite_uri, per_sender=600, batch=100)
    assert r.metrics.spans_stored == 2400
    assert r.metrics.spans_rejected == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_overloaded_receiver_makes_clients_retry_without_loss(
    start_receiver: StartReceiver, sqlite_uri: str
) -> None:
    r = _run_load(start_receiver, sqlite_uri, per_sender=60, batch=20, max_inflight_requests=1)
    assert r.metrics.spans_stored == 240
    refused = sum(
        count for (_, code), count in r.metrics.requests.items() if code in ("429", "UNAVAILABLE")
    )
    assert refused > 0, "the in-flight limit was never reached; the test proves nothing"
