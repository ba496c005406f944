"""Issue 10, items 2 and 3: a full disk under ``spanlake serve`` loses nothing acknowledged.

Real small tmpfs mounts (CI runs as root), real OTLP exporters (gRPC and HTTP) sending to a
real ``spanlake serve`` process. Each test counts spans sent, acknowledged (the exporter
returned SUCCESS) and stored (read back from the store, by content): 0 acknowledged lost,
0 duplicates.

- the store's disk fills with ``--wal-dir``: requests are still acknowledged (they are in
  the log), the writer keeps the segments and retries; after the mount grows and the
  receiver restarts, everything is stored once (before the fix, "permanent" looking
  failures quarantined requests and deleted their segments);
- the log's own disk fills: the request is refused with 503 / ``UNAVAILABLE`` (the
  exporters retry) and nothing of it is left in the log, so frames acknowledged after it
  survive a ``kill -9`` (before the fix a torn frame stayed in the segment, and replay
  stopped there, dropping every acknowledged frame behind it);
- without ``--wal-dir``: 503 + ``Retry-After`` / ``UNAVAILABLE`` + RetryInfo, the exporters
  retry, and once space is freed every span is stored once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from opentelemetry.sdk.trace.export import SpanExportResult
from receiver._support import (
    check_stored,
    free_port,
    grpc_export,
    otlp_exporter,
    post,
    simple_request,
)
from receiver.conftest import StartReceiver
from receiver.test_crash import _start

from spanlake.exporter.store import open_store

Mount = Callable[[str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``tmpfs(size)``: a new tmpfs of that size (e.g. "1m"), unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            reason = f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})"
            if os.environ.get("CI") == "true" and os.geteuid() == 0:
                pytest.fail(f"CI as root must run the full-disk tests: {reason}")
            pytest.skip(reason)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow(path: Path) -> None:
    """Free space: remount the tmpfs much larger (its files stay)."""
    subprocess.run(["mount", "-o", "remount,size=256m", str(path)], check=True)


def big_spans(sender: str, count: int, size: int) -> list[Any]:
    """``count`` finished SDK spans with ``size`` incompressible bytes each (traces of 4),
    carrying what ``check_stored`` compares."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"svc-{sender}"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("spanlake.tests.full_disk")
    for seq in range(count):
        if seq % 4 == 0:
            root = tracer.start_span(f"{sender}/{seq}")
            span = root
        else:
            from opentelemetry import trace

            span = tracer.start_span(f"{sender}/{seq}", context=trace.set_span_in_context(root))
        span.set_attribute("sender", sender)
        span.set_attribute("seq", seq)
        span.set_attribute("gen_ai.request.model", f"model-{seq % 7}")
        span.set_attribute("payload", os.urandom(size // 2).hex())
        span.end()
    provider.shutdown()
    return list(memory.get_finished_spans())


def metric(port: int, name: str) -> int:
    """One counter from the receiver's ``/metrics`` (summed over labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    values = re.findall(rf"^spanlake_receiver_{name}(?:{{[^}}]*}})? (\d+)$", text, re.M)
    return sum(int(v) for v in values)


def refusals(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.findall(r'code="(?:503|UNAVAILABLE)"} (\d+)', text)
    return sum(int(v) for v in found)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Senders:
    """A real gRPC and a real HTTP OTLP exporter, each sending its spans in batches from
    its own thread; records what was acknowledged."""

    def __init__(self, grpc_port: int, http_port: int, spans: int, size: int, batch: int):
        self.spans = {"g": big_spans("g", spans, size), "h": big_spans("h", spans, size)}
        self.results: list[tuple[SpanExportResult, list[Any]]] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=("grpc", grpc_port, self.spans["g"], batch)),
            threading.Thread(target=self._send, args=("http", http_port, self.spans["h"], batch)),
        ]

    def _send(self, protocol: str, port: int, spans: list[Any], batch: int) -> None:
        exporter = otlp_exporter(protocol, port, timeout=90)
        try:
            for i in range(0, len(spans), batch):
                result = exporter.export(spans[i : i + batch])
                with self._lock:
                    self.results.append((result, spans[i : i + batch]))
        finally:
            exporter.shutdown()

    def start(self) -> Senders:
        for t in self._threads:
            t.start()
        return self

    def join(self) -> None:
        for t in self._threads:
            t.join(150)
        assert not any(t.is_alive() for t in self._threads)

    def acknowledged(self) -> int:
        return sum(len(b) for r, b in self.results if r == SpanExportResult.SUCCESS)


def stored(uri: str) -> list[Any]:
    with open_store(uri) as store:
        return [s for batch in store.iter_spans() for s in batch]


def store_uri(scheme: str, disk: Path) -> str:
    return (
        f"sqlite:///{disk / 'traces.db'}" if scheme == "sqlite" else f"{scheme}:///{disk / 'lake'}"
    )


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()


@pytest.mark.parametrize("scheme", ["sqlite", "parquet", "delta"])
def test_wal_keeps_acknowledged_spans_while_the_store_disk_is_full(
    tmpfs: Mount, tmp_path: Path, scheme: str
) -> None:
    disk = tmpfs("1m")
    uri = store_uri(scheme, disk)
    wal = tmp_path / "wal"
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "receiver.log"
    extra = ["--wal-dir", str(wal), "--wal-linger-ms", "0"]
    proc = _start(uri, grpc_port, http_port, log, extra=extra)
    try:
        senders = Senders(grpc_port, http_port, spans=120, size=20_000, batch=10).start()
        senders.join()
        sent = 240
        # every request was acknowledged from the log, although the store could not keep
        # them all: 4.8 MB of spans on a 1 MiB disk
        assert senders.acknowledged() == sent, log.read_text()
        wait_for(lambda: metric(http_port, "store_errors_total") > 0, 30, "a full-disk error")
        assert metric(http_port, "spans_stored_total") < sent
        assert metric(http_port, "requests_quarantined_total") == 0
        stop(proc, log)  # shut down with the store still full: the log keeps the rest
        assert list(wal.glob("*/seg-*.wal")), "the unstored requests left the log"
        assert not list(wal.glob("*/quarantine-*")), "a transient fault was quarantined"

        grow(disk)  # free space, then restart on the same log: replay stores the rest
        proc = _start(uri, grpc_port, http_port, log, extra=extra)
        wait_for(lambda: not list(wal.glob("*/seg-*.wal")), 60, "the replay")
        stop(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    check_stored(stored(uri), senders.spans)  # 0 acknowledged lost, 0 duplicates


def test_wal_recovers_once_the_store_disk_grows_without_a_restart(
    tmpfs: Mount, tmp_path: Path
) -> None:
    disk = tmpfs("1m")
    uri = store_uri("sqlite", disk)
    wal = tmp_path / "wal"
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "receiver.log"
    proc = _start(uri, grpc_port, http_port, log, extra=["--wal-dir", str(wal)])
    try:
        senders = Senders(grpc_port, http_port, spans=120, size=20_000, batch=10).start()
        senders.join()
        assert senders.acknowledged() == 240, log.read_text()
        wait_for(lambda: metric(http_port, "store_errors_total") > 0, 30, "a full-disk error")
        grow(disk)  # the writer's backoff retries now succeed
        wait_for(lambda: not list(wal.glob("*/seg-*.wal")), 60, "the store to catch up")
        assert metric(http_port, "requests_quarantined_total") == 0
        stop(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    check_stored(stored(uri), senders.spans)


def test_full_wal_disk_refuses_the_request_and_keeps_no_torn_frame(
    tmpfs: Mount, tmp_path: Path
) -> None:
    """The log itself is on a full disk: requests are refused with 503 / UNAVAILABLE (the
    exporters retry them), nothing acknowledged is torn, and after the disk grows and a
    ``kill -9`` (a minute's linger: nothing reached the store) replay stores everything."""
    wal = tmpfs("1m")
    uri = f"sqlite:///{tmp_path / 'traces.db'}"
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "receiver.log"
    extra = ["--wal-dir", str(wal), "--wal-linger-ms", "60000"]
    proc = _start(uri, grpc_port, http_port, log, extra=extra)
    try:
        senders = Senders(grpc_port, http_port, spans=120, size=20_000, batch=10).start()
        wait_for(lambda: refusals(http_port) >= 2, 60, "the full log disk to refuse requests")
        grow(wal)
        senders.join()
        assert senders.acknowledged() == 240, log.read_text()  # the retries got through
        assert metric(http_port, "spans_stored_total") == 0  # only in the log
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = _start(uri, grpc_port, http_port, log, extra=["--wal-dir", str(wal)])
        wait_for(lambda: not list(wal.glob("*/seg-*.wal")), 60, "the replay")
        stop(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    check_stored(stored(uri), senders.spans)
    assert "torn" not in log.read_text()


@pytest.mark.parametrize("scheme", ["sqlite", "parquet", "delta"])
def test_full_store_disk_without_wal_answers_retry_later_and_stores_everything_once(
    tmpfs: Mount, tmp_path: Path, scheme: str
) -> None:
    """Item 3 through ``spanlake serve``: the full disk answers 503 + Retry-After /
    UNAVAILABLE + RetryInfo (never 500 / INTERNAL, which exporters drop), the real
    exporters retry, and after space is freed every span is stored exactly once. A request
    whose spans were partly committed when the disk filled is safe to resend: the store
    dedupes on (trace id, span id), which the no-duplicates check below relies on."""
    disk = tmpfs("1m")
    uri = store_uri(scheme, disk)
    grpc_port, http_port = free_port(), free_port()
    log = tmp_path / "receiver.log"
    proc = _start(uri, grpc_port, http_port, log)
    try:
        senders = Senders(grpc_port, http_port, spans=120, size=20_000, batch=10).start()
        wait_for(lambda: refusals(http_port) >= 2, 60, "the full disk to refuse requests")
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'code="500"' not in text and 'code="INTERNAL"' not in text
        grow(disk)
        senders.join()
        assert senders.acknowledged() == 240, log.read_text()
        stop(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    check_stored(stored(uri), senders.spans)


@pytest.mark.parametrize("scheme", ["sqlite", "parquet"])
def test_full_store_disk_answers_503_retry_after_and_unavailable_retry_info(
    tmpfs: Mount, start_receiver: StartReceiver, scheme: str
) -> None:
    """What the exporters above see, on the wire: HTTP 503 with ``Retry-After``, gRPC
    ``UNAVAILABLE`` with a ``RetryInfo`` trailer. The refused request may have been partly
    committed when the disk filled (on Parquet its span file can land before its trace
    rows fail); resending it after space is freed, and once more, is safe because the
    store dedupes on (trace id, span id): every span is there once."""
    disk = tmpfs("1m")
    uri = store_uri(scheme, disk)
    r = start_receiver(open_store(uri), retry_after_s=2)
    refused_http = refused_grpc = None
    accepted: list[int] = []
    for seed in range(1, 200):
        body = _big_request(seed).SerializeToString()
        if refused_http is None:
            status, headers, _ = post(r.http_port, body)
            if status != 200:
                assert (status, headers.get("retry-after")) == (503, "2")
                refused_http = seed
            else:
                accepted.append(seed)
            continue
        try:
            grpc_export(r.grpc_port, body)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            trailers = dict(err.trailing_metadata() or ())
            info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
            assert info.retry_delay.seconds == 2
            refused_grpc = seed
            break
        accepted.append(seed)
    assert refused_http is not None and refused_grpc is not None, "the disk never filled"
    grow(disk)
    for _ in range(2):  # the client's retry, then a needless resend
        assert post(r.http_port, _big_request(refused_http).SerializeToString())[0] == 200
        grpc_export(r.grpc_port, _big_request(refused_grpc).SerializeToString())
    r.stop()
    rows = stored(uri)
    assert len(rows) == len({(s.trace_id, s.span_id) for s in rows})  # no duplicates
    expected = {f"r{n}-{i}" for n in [*accepted, refused_http, refused_grpc] for i in range(5)}
    assert {s.name for s in rows} == expected  # nothing accepted or resent is missing


def _big_request(seed: int) -> Any:
    """A 5-span request of ~100 KB of incompressible content (the same for a seed)."""
    import random

    from opentelemetry.proto.common.v1.common_pb2 import AnyValue

    rng = random.Random(seed)
    request = simple_request(5, seed=seed, name=f"r{seed}")
    for span in request.resource_spans[0].scope_spans[0].spans:
        payload = rng.randbytes(10_000).hex()
        span.attributes.add(key="payload", value=AnyValue(string_value=payload))
    return request
