"""Transient store faults: retryable answers (503 / UNAVAILABLE + retry delay), real
clients retry, and every span ends up stored exactly once."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExportResult
from receiver._support import check_stored, make_sdk_spans, otlp_exporter
from receiver.conftest import StartReceiver

from spanlake.exporter.errors import TransientStoreError
from spanlake.exporter.records import SpanRecord
from spanlake.exporter.store import open_store
from spanlake.exporter.store.base import Store


class FlakyWrites:
    """Wraps a real store: the first write carrying each sender's spans, and every third
    write after that, raise TransientStoreError (committing nothing)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self.calls = 0
        self.failures = 0
        self.uri = store.uri

    def write_spans(self, spans: Sequence[SpanRecord]) -> int:
        with self._lock:
            self.calls += 1
            senders = {str(s.attributes.get("sender")) for s in spans}
            fail = not senders <= self._seen or self.calls % 3 == 0
            self._seen |= senders
            if fail:
                self.failures += 1
        if fail:
            raise TransientStoreError("injected: database is locked")
        return self._store.write_spans(spans)

    def close(self) -> None:
        self._store.close()


def test_transient_store_faults_lose_nothing(
    start_receiver: StartReceiver, sqlite_uri: str
) -> None:
    flaky = FlakyWrites(open_store(sqlite_uri))
    r = start_receiver(flaky, retry_after_s=1)
    senders = {"g": make_sdk_spans("g", 80), "h": make_sdk_spans("h", 80)}
    results: list[Any] = []

    def send(protocol: str, port: int, spans: list[Any]) -> None:
        exporter = otlp_exporter(protocol, port, timeout=30)
        for i in range(0, len(spans), 40):
            results.append(exporter.export(spans[i : i + 40]))
        exporter.shutdown()

    threads = [
        threading.Thread(target=send, args=("grpc", r.grpc_port, senders["g"])),
        threading.Thread(target=send, args=("http", r.http_port, senders["h"])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [SpanExportResult.SUCCESS] * 4
    assert flaky.failures >= 2
    assert r.metrics.store_errors == flaky.failures
    codes = {code for (_, code) in r.metrics.requests}
    assert {"503", "UNAVAILABLE"} <= codes
    r.stop()
    with open_store(sqlite_uri) as store:
        records = [s for batch in store.iter_spans() for s in batch]
    check_stored(records, senders)
