"""agent.yaml with the real Collector: app (real OTLP exporter) -> otelcol-spanlake with
its persistent ``file_storage`` queue -> ``spanlake serve``. The receiver is stopped for
~10 s mid-load (the issue says 30 s; 10 s already spans many retry rounds and keeps CI
short), the Collector is killed with SIGKILL once while the receiver is down, both are
restarted: every span the app exported is stored exactly once."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from collector.otelcol import Collector
from opentelemetry.sdk.trace.export import SpanExportResult
from receiver._support import check_stored, free_port, make_sdk_spans, otlp_exporter
from receiver.test_crash import _start

from spanlake.exporter.store import open_store


def _stored(uri: str) -> list[Any]:
    with open_store(uri) as store:
        return [s for batch in store.iter_spans() for s in batch]


def test_agent_queue_survives_receiver_outage_and_collector_kill_9(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'agent.db'}"
    grpc_port, http_port = free_port(), free_port()
    rlog = tmp_path / "receiver.log"
    receiver = _start(uri, grpc_port, http_port, rlog)
    queue_dir = tmp_path / "queue"
    collector = Collector(
        "agent.yaml",
        tmp_path,
        env={
            "SPANLAKE_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
            "SPANLAKE_QUEUE_DIR": str(queue_dir),
            "SPANLAKE_EXPERIMENT": "agent-test",
        },
    ).start()
    spans = make_sdk_spans("a", 480)
    acked: list[SpanExportResult] = []
    lock = threading.Lock()

    def app() -> None:
        exporter = otlp_exporter("grpc", collector.grpc_port, timeout=30)
        try:
            for i in range(0, len(spans), 20):
                result = exporter.export(spans[i : i + 20])
                with lock:
                    acked.append(result)
                time.sleep(0.25)
        finally:
            exporter.shutdown()

    sender = threading.Thread(target=app)
    sender.start()
    try:
        while len(acked) < 3:
            time.sleep(0.05)
        receiver.send_signal(signal.SIGTERM)  # the receiver goes away mid-load
        assert receiver.wait(30) == 0, rlog.read_text()
        acked_at_outage = len(acked)
        time.sleep(5)
        collector.kill9()  # queued spans are only on disk now
        collector.start()
        time.sleep(5)
        acked_in_outage = len(acked) - acked_at_outage
        receiver = _start(uri, grpc_port, http_port, rlog)
        sender.join(120)
        assert not sender.is_alive()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(_stored(uri)) < len(spans):
            time.sleep(0.5)
    finally:
        collector.stop()
        if receiver.poll() is None:
            receiver.send_signal(signal.SIGTERM)
            receiver.wait(30)
    assert acked_in_outage >= 5, "the Collector took no load while the receiver was down"
    assert all(r == SpanExportResult.SUCCESS for r in acked), collector.log.read_text()
    check_stored(_stored(uri), {"a": spans})
