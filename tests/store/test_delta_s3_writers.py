"""Several ``spanlake serve`` processes writing one Delta lake on S3-compatible storage.

A loopback S3 (moto's server; it enforces ``If-None-Match: *``, which the test checks
first) holds one ``delta+s3://`` lake; two or four real receiver processes write it at
once, fed by real OTLP exporters (gRPC and HTTP). One trace's spans are split over two
receivers (as a gateway without trace-id load balancing would; the real Collector's gateway
is covered by the Collector tests). Delta's own concurrency control (conditional put on the
``_delta_log`` commit files, retried on conflict) is what keeps every commit: no span may be
lost or doubled, no exporter may see a permanent error, and each trace row must equal the
one computed from all its spans. Compaction and vacuum running during the load must not
change that, and a reader polling meanwhile must never fail or see spans disappear.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from receiver._support import check_stored, free_port, make_sdk_spans, otlp_exporter
from receiver.test_crash import _start

from spanlake.exporter.errors import TransientStoreError
from spanlake.exporter.store import open_store
from spanlake.exporter.store.maintenance import compact, vacuum
from store._s3 import moto_endpoint, s3_environment

pytest.importorskip("deltalake")
pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

BATCH = 20


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    with moto_endpoint() as endpoint:
        yield s3_environment(endpoint)


def _bucket(env: dict[str, str], name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
    client.create_bucket(Bucket=name)
    # The storage must refuse to overwrite an existing commit file, or nothing is tested.
    client.put_object(Bucket=name, Key="probe", Body=b"1", IfNoneMatch="*")
    with pytest.raises(client.exceptions.ClientError, match="PreconditionFailed"):
        client.put_object(Bucket=name, Key="probe", Body=b"2", IfNoneMatch="*")
    client.delete_object(Bucket=name, Key="probe")
    return f"delta+s3://{name}/lake"


def _serve(uri: str, log: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """A receiver process on ``uri``; it inherits the S3 settings ``_bucket`` put in the
    environment."""
    grpc_port, http_port = free_port(), free_port()
    return _start(uri, grpc_port, http_port, log), grpc_port, http_port


def _split(spans: list[Any], receivers: int) -> list[list[Any]]:
    """Trace k's root and first child go to receiver k % n, its other children to the
    next one: every trace reaches two receivers."""
    shares: list[list[Any]] = [[] for _ in range(receivers)]
    traces: dict[int, list[Any]] = {}
    for span in spans:
        traces.setdefault(span.context.trace_id, []).append(span)
    for k, members in enumerate(traces.values()):
        for j, span in enumerate(members):
            shares[(k + (j >= 2)) % receivers].append(span)
    return shares


def _run_load(
    uri: str, env: dict[str, str], receivers: int, spans: list[Any], tmp_path: Path,
    during: threading.Event | None = None,
) -> None:  # fmt: skip
    """Start the receivers, send every share through a real exporter, stop them."""
    procs = [_serve(uri, tmp_path / f"receiver-{i}.log") for i in range(receivers)]
    results: list[Any] = []
    lock = threading.Lock()

    def send(i: int, share: list[Any]) -> None:
        _, grpc_port, http_port = procs[i]
        protocol = "grpc" if i % 2 == 0 else "http"
        exporter = otlp_exporter(
            protocol, grpc_port if protocol == "grpc" else http_port, timeout=60
        )
        try:
            for start in range(0, len(share), BATCH):
                result = exporter.export(share[start : start + BATCH])
                with lock:
                    results.append(result)
        finally:
            exporter.shutdown()

    threads = [
        threading.Thread(target=send, args=(i, share))
        for i, share in enumerate(_split(spans, receivers))
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not any(t.is_alive() for t in threads), "exporters did not finish"
    finally:
        if during is not None:
            during.set()
        for proc, _, _ in procs:
            proc.terminate()
        for proc, _, _ in procs:
            if proc.wait(30) != 0:
                proc.kill()
    logs = "\n".join((tmp_path / f"receiver-{i}.log").read_text() for i in range(receivers))
    assert len(results) == sum(-(-len(s) // BATCH) for s in _split(spans, receivers))
    assert all(r == SpanExportResult.SUCCESS for r in results), logs
    assert "Traceback" not in logs, logs


def _check_lake(uri: str, spans: list[Any], tmp_path: Path) -> None:
    """Every span once, with its content; each trace row as computed from all its spans."""
    with open_store(uri) as store:
        compact(store)  # drops replayed rows: raw rows must then be unique
    with open_store(uri) as store:
        records = [s for batch in store.iter_spans() for s in batch]
        check_stored(records, {"all": spans})
        on_s3 = {t.trace_id: t for t in store.search_traces(max_results=1000).traces}
    with open_store(f"sqlite:///{tmp_path / 'reference.db'}") as reference:
        reference.write_spans(records)
        expected = reference.search_traces(max_results=1000).traces
    assert len(on_s3) == len(expected) == len({s.context.trace_id for s in spans})
    for info in expected:
        got = on_s3[info.trace_id]
        assert (got.span_count, got.token_usage, got.state, got.name) == (
            info.span_count,
            info.token_usage,
            info.state,
            info.name,
        )
        assert (got.request_time_ms, got.execution_time_ms) == (
            info.request_time_ms,
            info.execution_time_ms,
        )


@pytest.mark.parametrize("receivers", [2, 4])
def test_receivers_share_one_delta_lake_on_s3(
    receivers: int, s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _bucket(s3_env, f"writers-{receivers}", monkeypatch)
    spans = make_sdk_spans(f"w{receivers}", 480)
    _run_load(uri, s3_env, receivers, spans, tmp_path)
    _check_lake(uri, spans, tmp_path)


def test_compaction_and_vacuum_while_receivers_write(
    s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _bucket(s3_env, "maintenance", monkeypatch)
    spans = make_sdk_spans("m", 480)
    done = threading.Event()
    maintenance: dict[str, int] = {"compactions": 0, "conflicts": 0, "vacuumed": 0}
    seen: list[int] = []
    errors: list[BaseException] = []

    def maintain() -> None:
        with open_store(uri) as store:
            while not done.is_set():
                try:
                    compact(store)
                    maintenance["compactions"] += 1
                except TransientStoreError:
                    maintenance["conflicts"] += 1  # a concurrent commit won: run again
                # Delta's default ("lite") vacuum deletes only files that a commit removed
                # (compaction's inputs), never a writer's not-yet-committed files.
                maintenance["vacuumed"] += len(vacuum(store, 0, force=True))

    def read() -> None:
        with open_store(uri) as store:
            while not done.is_set():
                try:
                    page = store.search_traces(max_results=1000)
                except TransientStoreError:
                    continue  # retryable by contract; a StoreError/OSError fails the test
                seen.append(sum(t.span_count for t in page.traces))
                time.sleep(0.2)

    def guarded(fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        return run

    helpers = [threading.Thread(target=guarded(fn)) for fn in (maintain, read)]
    with open_store(uri) as store:  # tables exist before maintenance starts
        store.get_or_create_experiment("Default")
    for t in helpers:
        t.start()
    try:
        _run_load(uri, s3_env, 2, spans, tmp_path, during=done)
    finally:
        done.set()
        for t in helpers:
            t.join(120)
    assert not errors, errors
    assert maintenance["compactions"] >= 1, maintenance
    assert seen and seen == sorted(seen), seen  # a reader never sees spans vanish
    _check_lake(uri, spans, tmp_path)
