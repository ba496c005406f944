"""Issue 10, item 11: ``spanlake serve --auth-metrics`` puts ``/health`` and ``/metrics``
behind the OTLP bearer token; without it (the default) they stay open for probes and
scrapers while exports still need the token. Real ``spanlake serve`` processes, real HTTP
requests, and the real OTLP exporter with and without the token."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from receiver._support import MemoryStore, free_port, make_sdk_spans, otlp_exporter
from receiver.conftest import StartReceiver

TOKEN = "scrape-and-export-token"


def get(port: int, path: str, token: str | None = None) -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()


def serve(tmp_path: Path, *extra: str) -> Iterator[int]:
    token_file = tmp_path / "token.txt"
    token_file.write_text(TOKEN + "\n")
    http_port = free_port()
    log = tmp_path / "receiver.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spanlake.exporter.receiver",
         "--store", f"sqlite:///{tmp_path / 'traces.db'}", "--no-grpc",
         "--http-port", str(http_port), "--auth-token-file", str(token_file), *extra],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "OTLP/HTTP" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield http_port
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()


@pytest.fixture
def open_metrics(tmp_path: Path) -> Iterator[int]:
    yield from serve(tmp_path)


@pytest.fixture
def guarded_metrics(tmp_path: Path) -> Iterator[int]:
    yield from serve(tmp_path, "--auth-metrics")


def test_by_default_health_and_metrics_need_no_token(open_metrics: int) -> None:
    port = open_metrics
    status, _, body = get(port, "/health")
    assert (status, body) == (200, '{"status":"ok"}')
    status, _, body = get(port, "/metrics")
    assert status == 200 and "spanlake_receiver_spans_stored_total 0" in body
    # exports still need the token
    anonymous = otlp_exporter("http", port, timeout=5)
    assert anonymous.export(make_sdk_spans("a", 4)) == SpanExportResult.FAILURE
    anonymous.shutdown()


def test_auth_metrics_puts_health_and_metrics_behind_the_token(guarded_metrics: int) -> None:
    port = guarded_metrics
    for path in ("/health", "/metrics"):
        status, headers, body = get(port, path)
        assert status == 401 and headers["www-authenticate"] == "Bearer", path
        assert "spanlake_receiver" not in body
        assert get(port, path, token="wrong")[0] == 401
    exporter = otlp_exporter("http", port, timeout=5, headers={"Authorization": f"Bearer {TOKEN}"})
    assert exporter.export(make_sdk_spans("t", 4)) == SpanExportResult.SUCCESS
    exporter.shutdown()
    assert get(port, "/health", token=TOKEN)[:1] == (200,)
    status, _, body = get(port, "/metrics", token=TOKEN)
    assert status == 200 and "spanlake_receiver_spans_stored_total 4" in body


def test_auth_metrics_without_a_token_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "spanlake.exporter.receiver", "--auth-metrics",
         "--store", f"sqlite:///{tmp_path / 'traces.db'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--auth-metrics needs --auth-token-file" in proc.stderr


def test_auth_metrics_also_guards_the_grpc_health_check(start_receiver: StartReceiver) -> None:
    r = start_receiver(MemoryStore(), auth_token=TOKEN, auth_metrics=True)
    with grpc.insecure_channel(f"127.0.0.1:{r.grpc_port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        with pytest.raises(grpc.RpcError) as refused:
            check(b"", timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        serving = check(b"", timeout=10, metadata=(("authorization", f"Bearer {TOKEN}"),))
        assert serving == b"\x08\x01"  # SERVING
