"""Crash: ``kill -9`` the receiver process mid-load and restart it on the same ports and
store; real exporters retry, nothing acknowledged is lost, nothing is duplicated. Also:
SIGTERM shuts ``spanlake serve`` down cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export import SpanExportResult
from receiver._support import check_stored, free_port, make_sdk_spans, otlp_exporter

from spanlake.exporter.store import open_store


def _start(
    uri: str,
    grpc_port: int,
    http_port: int,
    log: Path,
    console_script: bool = False,
    extra: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).parent / "spanlake"
    if console_script and script.exists():
        command = [str(script), "serve"]  # the installed `spanlake serve`
    else:
        command = [sys.executable, "-m", "spanlake.exporter.receiver"]
    proc = subprocess.Popen(
        [
            *command,
            "--store", uri, "--grpc-port", str(grpc_port), "--http-port", str(http_port),
            "--log-level", "WARNING", *(extra or []),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("receiver did not become healthy: " + log.read_text())


def test_kill_9_mid_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'crash.db'}"
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "receiver.log"
    proc = _start(uri, grpc_port, http_port, log)
    senders = {"g": make_sdk_spans("g", 400), "h": make_sdk_spans("h", 400)}
    acked: list[Any] = []
    lock = threading.Lock()
    first_acks = threading.Event()

    def send(protocol: str, port: int, spans: list[Any]) -> None:
        exporter = otlp_exporter(protocol, port, timeout=40)
        try:
            for i in range(0, len(spans), 25):
                batch = spans[i : i + 25]
                result = exporter.export(batch)
                with lock:
                    acked.append((result, batch))
                    if len(acked) >= 4:
                        first_acks.set()
                time.sleep(0.02)
        finally:
            exporter.shutdown()

    threads = [
        threading.Thread(target=send, args=("grpc", grpc_port, senders["g"])),
        threading.Thread(target=send, args=("http", http_port, senders["h"])),
    ]
    for t in threads:
        t.start()
    try:
        assert first_acks.wait(30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with lock:
            acked_before_crash = len(acked)
        proc = _start(uri, grpc_port, http_port, log)
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert acked_before_crash < 32, "the crash came after the load; the test proves nothing"
    assert all(result == SpanExportResult.SUCCESS for result, _ in acked), log.read_text()
    with open_store(uri) as store:
        records = [s for batch in store.iter_spans() for s in batch]
    check_stored(records, senders)


def test_sigterm_exits_cleanly_and_data_is_kept(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'term.db'}"
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "receiver.log"
    proc = _start(uri, grpc_port, http_port, log, console_script=True)
    try:
        spans = make_sdk_spans("t", 10)
        exporter = otlp_exporter("http", http_port, timeout=10)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
        exporter.shutdown()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "OTLP/gRPC http://127.0.0.1:" in log.read_text()
    with open_store(uri) as store:
        assert sum(len(b) for b in store.iter_spans()) == 10
