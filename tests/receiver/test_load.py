"""Load: K concurrent real OTLP exporters (gRPC and HTTP) -> exactly N spans stored in
SQLite, checked by content; once more with a tiny in-flight limit so that clients are
told to back off (429 / UNAVAILABLE + RetryInfo) and must retry."""

from __future__ import annotations

import threading
import time
from pathlib import Path
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


class _SlowWrites:
    """A real store whose writes take at least 50 ms, so concurrent senders overlap."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.uri = store.uri

    def write_spans(self, spans: Any) -> int:
        time.sleep(0.05)
        return int(self._store.write_spans(spans))

    def close(self) -> None:
        self._store.close()


def _run_load(
    start_receiver: StartReceiver,
    uri: str,
    per_sender: int,
    batch: int,
    slow: bool = False,
    **config: Any,
) -> Any:
    store = open_store(uri)
    r = start_receiver(_SlowWrites(store) if slow else store, **config)
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


@pytest.mark.parametrize("scheme", ["sqlite", "parquet", "delta"])
def test_concurrent_exporters_store_exactly_what_they_sent(
    start_receiver: StartReceiver, tmp_path: Path, scheme: str
) -> None:
    uri = f"{scheme}:///{tmp_path / 'store'}"
    per_sender = 600 if scheme == "sqlite" else 200  # the receiver is store-agnostic
    r = _run_load(start_receiver, uri, per_sender=per_sender, batch=100)
    assert r.metrics.spans_stored == 4 * per_sender
    assert r.metrics.spans_rejected == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_overloaded_receiver_makes_clients_retry_without_loss(
    start_receiver: StartReceiver, sqlite_uri: str
) -> None:
    r = _run_load(
        start_receiver, sqlite_uri, per_sender=60, batch=20, slow=True, max_inflight_requests=1
    )
    assert r.metrics.spans_stored == 240
    refused = sum(
        count for (_, code), count in r.metrics.requests.items() if code in ("429", "UNAVAILABLE")
    )
    assert refused > 0, "the in-flight limit was never reached; the test proves nothing"


def test_flood_stays_within_the_in_flight_budget(start_receiver: StartReceiver) -> None:
    """Many concurrent 1 MiB requests: the gate never admits more than its byte budget,
    each request is either stored (200) or told to retry (429), never anything else."""
    from receiver._support import MemoryStore, post, simple_request

    mib = 1024 * 1024
    store = MemoryStore()
    r = start_receiver(store, max_request_bytes=2 * mib, max_inflight_bytes=3 * mib)
    bodies = []
    for i in range(16):
        req = simple_request(1, seed=100 + i, name=f"flood{i}")
        req.resource_spans[0].scope_spans[0].spans[0].attributes.add(
            key="blob"
        ).value.string_value = "x" * mib
        bodies.append(req.SerializeToString())
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], r.metrics.inflight_bytes)
            time.sleep(0.0002)

    statuses: list[int] = []
    sampler = threading.Thread(target=sample)
    sampler.start()
    workers = [
        threading.Thread(target=lambda b=b: statuses.append(post(r.http_port, b)[0]))
        for b in bodies
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    stop.set()
    sampler.join()
    assert sorted(set(statuses)) <= [200, 429] and len(statuses) == 16
    assert 0 < peak[0] <= 3 * mib
    assert len(store.spans) == statuses.count(200)
    assert r.metrics.inflight_bytes == 0 and r.metrics.inflight_requests == 0


def test_connection_limit_answers_503(start_receiver: StartReceiver) -> None:
    import socket

    from receiver._support import MemoryStore

    r = start_receiver(MemoryStore(), max_connections=2)
    held = [socket.create_connection(("127.0.0.1", r.http_port)) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", r.http_port), timeout=10) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(100).startswith(b"HTTP/1.1 503")
    finally:
        for s in held:
            s.close()
