"""OTLP/gRPC status codes, rich status and RetryInfo trailers, auth, TLS and health."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from receiver._support import (
    BlockingStore,
    FlakyStore,
    MemoryStore,
    grpc_export,
    post,
    simple_request,
)
from receiver.conftest import StartReceiver


def _rpc_error(port: int, body: bytes, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(port, body, **kwargs)
    return info.value


def _trailers(error: grpc.RpcError) -> dict[str, bytes]:
    return {k: v for k, v in error.trailing_metadata() or ()}


def test_export_is_stored_and_acknowledged(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store)
    answer = grpc_export(r.grpc_port, simple_request(3).SerializeToString())
    assert ExportTraceServiceResponse.FromString(answer) == ExportTraceServiceResponse()
    assert sorted(store.by_name()) == ["span-0", "span-1", "span-2"]


def test_gzip_compressed_call_is_accepted(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store)
    grpc_export(
        r.grpc_port, simple_request(2).SerializeToString(), compression=grpc.Compression.Gzip
    )
    assert len(store.spans) == 2


def test_message_over_grpc_default_4mib_is_accepted_under_our_limit(
    start_receiver: StartReceiver,
) -> None:
    store = MemoryStore()
    r = start_receiver(store, max_request_bytes=16 * 1024 * 1024)
    req = simple_request(1)
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="big").value.string_value = (
        "x" * (5 * 1024 * 1024)
    )
    grpc_export(r.grpc_port, req.SerializeToString())
    assert len(store.by_name()["span-0"].attributes["big"]) == 5 * 1024 * 1024


def test_over_our_limit_is_resource_exhausted_without_retry_info(
    start_receiver: StartReceiver,
) -> None:
    store = MemoryStore()
    r = start_receiver(store, max_request_bytes=1024 * 1024)
    req = simple_request(1)
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="big").value.string_value = (
        "x" * (2 * 1024 * 1024)
    )
    error = _rpc_error(r.grpc_port, req.SerializeToString())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "google.rpc.retryinfo-bin" not in _trailers(error)
    assert store.spans == {}


def test_garbage_is_invalid_argument_with_rich_status(start_receiver: StartReceiver) -> None:
    r = start_receiver(MemoryStore())
    error = _rpc_error(r.grpc_port, b"\xff\xff\xff")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_pb2.Status.FromString(_trailers(error)["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "invalid OTLP protobuf" in status.message


def test_bad_spans_are_rejected_alone_via_partial_success(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store)
    req = simple_request(2)
    req.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x00" * 16, span_id=b"\x01" * 8)
    answer = ExportTraceServiceResponse.FromString(
        grpc_export(r.grpc_port, req.SerializeToString())
    )
    assert answer.partial_success.rejected_spans == 1
    assert "invalid trace id" in answer.partial_success.error_message
    assert sorted(store.by_name()) == ["span-0", "span-1"]


def _assert_retry_info(error: grpc.RpcError, seconds: int) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    trailers = _trailers(error)
    # What the Python OTLP exporter reads ...
    info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert info.retry_delay.seconds == seconds
    # ... and the rich status the Collector reads.
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    unpacked = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(unpacked)
    assert unpacked.retry_delay.seconds == seconds


def test_transient_store_fault_is_unavailable_with_retry_info(
    start_receiver: StartReceiver,
) -> None:
    store = FlakyStore()
    store.failing = True
    r = start_receiver(store, retry_after_s=3)
    body = simple_request(2).SerializeToString()
    _assert_retry_info(_rpc_error(r.grpc_port, body), 3)
    store.failing = False
    grpc_export(r.grpc_port, body)
    assert len(store.spans) == 2


def test_overload_is_unavailable_with_retry_info_not_bare_resource_exhausted(
    start_receiver: StartReceiver,
) -> None:
    store = BlockingStore()
    r = start_receiver(store, max_inflight_requests=1)
    worker = threading.Thread(
        target=grpc_export, args=(r.grpc_port, simple_request(1).SerializeToString())
    )
    worker.start()
    assert store.entered.wait(10)
    _assert_retry_info(_rpc_error(r.grpc_port, simple_request(1, seed=2).SerializeToString()), 1)
    store.release.set()
    worker.join(10)
    assert len(store.spans) == 1


def test_bearer_token_and_experiment_metadata(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store, auth_token="s3cret")
    body = simple_request(1).SerializeToString()
    for metadata in ((), (("authorization", "Bearer nope"),)):
        error = _rpc_error(r.grpc_port, body, metadata=metadata)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    grpc_export(
        r.grpc_port,
        body,
        metadata=(("authorization", "Bearer s3cret"), ("x-spanlake-experiment", "grpc-exp")),
    )
    assert store.by_name()["span-0"].experiment == "grpc-exp"


def test_health_check_service(start_receiver: StartReceiver) -> None:
    r = start_receiver(MemoryStore())
    with grpc.insecure_channel(f"127.0.0.1:{r.grpc_port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        assert check(b"", timeout=10) == b"\x08\x01"  # SERVING


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "1",
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test certificate: {exc}")
    return str(cert), str(key)


def test_tls_on_both_ports(start_receiver: StartReceiver, self_signed: tuple[str, str]) -> None:
    import ssl

    cert, key = self_signed
    store = MemoryStore()
    r = start_receiver(store, tls_cert_file=cert, tls_key_file=key)
    credentials = grpc.ssl_channel_credentials(Path(cert).read_bytes())
    grpc_export(
        r.grpc_port,
        simple_request(1, seed=1, name="g").SerializeToString(),
        credentials=credentials,
    )
    context = ssl.create_default_context(cafile=cert)
    status, _, _ = post(
        r.http_port,
        simple_request(1, seed=2, name="h").SerializeToString(),
        tls_context=context,
    )
    assert status == 200
    assert sorted(store.by_name()) == ["g-0", "h-0"]
    # Plain text on the TLS port is refused, and the server keeps serving.
    with pytest.raises(grpc.RpcError):
        grpc_export(r.grpc_port, simple_request(1).SerializeToString())
    assert post(r.http_port, b"", method="GET", path="/health", tls_context=context)[0] == 200
