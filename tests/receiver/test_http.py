"""OTLP/HTTP status codes and bodies, per the OTLP spec, with raw HTTP requests."""

from __future__ import annotations

import gzip
import threading
import zlib

import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from receiver._support import (
    BlockingStore,
    FlakyStore,
    MemoryStore,
    otlp_json,
    post,
    simple_request,
)
from receiver.conftest import StartReceiver

JSON = {"Content-Type": "application/json"}


def test_protobuf_export_is_stored_and_answered_in_protobuf(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store)
    status, headers, body = post(r.http_port, simple_request(3).SerializeToString())
    assert status == 200
    assert headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    assert sorted(store.by_name()) == ["span-0", "span-1", "span-2"]
    assert store.by_name()["span-0"].resource == {"service.name": "svc"}


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_json_export_compressed_is_answered_in_json(
    start_receiver: StartReceiver, encoding: str
) -> None:
    store = MemoryStore()
    r = start_receiver(store)
    raw = orjson.dumps(otlp_json(simple_request(2)))
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    status, headers, answer = post(r.http_port, body, {**JSON, "Content-Encoding": encoding})
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert orjson.loads(answer) == {}
    assert sorted(store.by_name()) == ["span-0", "span-1"]


def test_resend_is_not_duplicated(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store)
    body = simple_request(4).SerializeToString()
    assert post(r.http_port, body)[0] == 200
    assert post(r.http_port, body)[0] == 200
    assert len(store.spans) == 4
    assert r.metrics.spans_stored == 4 and r.metrics.spans_duplicate == 4


def test_bad_spans_are_rejected_alone_via_partial_success(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store)
    req = simple_request(2)
    req.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x01" * 15, span_id=b"\x02" * 8)
    req.resource_spans[0].scope_spans[0].spans.add(trace_id=b"\x01" * 16, span_id=b"")
    status, _, body = post(r.http_port, req.SerializeToString())
    assert status == 200
    partial = ExportTraceServiceResponse.FromString(body).partial_success
    assert partial.rejected_spans == 2
    assert "invalid trace id" in partial.error_message
    assert "invalid span id" in partial.error_message
    assert sorted(store.by_name()) == ["span-0", "span-1"]
    # Same through JSON, answered in JSON.
    doc = otlp_json(simple_request(1, seed=9, name="j"))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"].append({"traceId": "ab", "spanId": "cd"})
    status, _, body = post(r.http_port, orjson.dumps(doc), JSON)
    assert status == 200
    assert orjson.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    assert "j-0" in store.by_name()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-protobuf", b"\xff\xff\xff"),
        ("application/json", b"{not json"),
        ("application/json", b'{"resourceSpans": 5}'),
    ],
)
def test_bad_body_is_400_with_a_status_message(
    start_receiver: StartReceiver, content_type: str, body: bytes
) -> None:
    r = start_receiver(MemoryStore())
    status, headers, answer = post(r.http_port, body, {"Content-Type": content_type})
    assert status == 400
    if content_type == "application/json":
        message = orjson.loads(answer)["message"]
    else:
        message = status_pb2.Status.FromString(answer).message
    assert "invalid" in message or "must be" in message
    assert "retry-after" not in headers


def test_over_the_size_limit_is_413_before_reading_or_while_inflating(
    start_receiver: StartReceiver,
) -> None:
    store = MemoryStore()
    r = start_receiver(store, max_request_bytes=64 * 1024)
    status, _, answer = post(r.http_port, b"\0" * (200 * 1024))
    assert status == 413
    assert "limit" in status_pb2.Status.FromString(answer).message
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    status, _, _ = post(r.http_port, bomb, {"Content-Encoding": "gzip"})
    assert status == 413
    # The server is fine afterwards.
    assert post(r.http_port, simple_request(1).SerializeToString())[0] == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": ""},
        {"Content-Encoding": "br"},
        {"Content-Encoding": "zstd"},
    ],
)
def test_unsupported_media_type_or_encoding_is_415(
    start_receiver: StartReceiver, headers: dict[str, str]
) -> None:
    r = start_receiver(MemoryStore())
    status, _, _ = post(r.http_port, simple_request(1).SerializeToString(), headers)
    assert status == 415


def test_transient_store_fault_is_503_with_retry_after_then_ok(
    start_receiver: StartReceiver,
) -> None:
    store = FlakyStore()
    store.failing = True
    r = start_receiver(store, retry_after_s=2)
    body = simple_request(2).SerializeToString()
    status, headers, answer = post(r.http_port, body)
    assert status == 503
    assert headers["retry-after"] == "2"
    assert "store temporarily unavailable" in status_pb2.Status.FromString(answer).message
    assert store.spans == {}
    store.failing = False
    assert post(r.http_port, body)[0] == 200
    assert len(store.spans) == 2


def test_overload_is_429_with_retry_after(start_receiver: StartReceiver) -> None:
    store = BlockingStore()
    r = start_receiver(store, max_inflight_requests=1)
    first: list[int] = []
    worker = threading.Thread(
        target=lambda: first.append(post(r.http_port, simple_request(1).SerializeToString())[0])
    )
    worker.start()
    assert store.entered.wait(10)
    status, headers, _ = post(r.http_port, simple_request(1, seed=2).SerializeToString())
    assert status == 429
    assert headers["retry-after"] == "1"
    assert r.metrics.inflight_requests == 1
    store.release.set()
    worker.join(10)
    assert first == [200]
    assert r.metrics.inflight_requests == 0 and r.metrics.inflight_bytes == 0


def test_bearer_token_is_required_when_configured(start_receiver: StartReceiver) -> None:
    store = MemoryStore()
    r = start_receiver(store, auth_token="s3cret")
    body = simple_request(1).SerializeToString()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        status, answer_headers, _ = post(r.http_port, body, headers)
        assert status == 401
        assert answer_headers["www-authenticate"] == "Bearer"
    assert store.spans == {}
    assert post(r.http_port, body, {"Authorization": "Bearer s3cret"})[0] == 200
    assert len(store.spans) == 1


def test_experiment_header_overrides_resource_attribute_and_default(
    start_receiver: StartReceiver,
) -> None:
    store = MemoryStore()
    r = start_receiver(store, default_experiment="fallback")
    post(r.http_port, simple_request(1, seed=1, name="default").SerializeToString())
    routed = simple_request(1, seed=2, name="resource")
    routed.resource_spans[0].resource.attributes.add(
        key="spanlake.experiment"
    ).value.string_value = "from-resource"
    post(r.http_port, routed.SerializeToString())
    header = simple_request(1, seed=3, name="header")
    header.resource_spans[0].resource.attributes.add(
        key="spanlake.experiment"
    ).value.string_value = "ignored"
    post(r.http_port, header.SerializeToString(), {"x-spanlake-experiment": "from-header"})
    by_name = store.by_name()
    assert by_name["default-0"].experiment == "fallback"
    assert by_name["resource-0"].experiment == "from-resource"
    assert by_name["header-0"].experiment == "from-header"
    assert by_name["header-0"].resource["service.name"] == "svc"


def test_chunked_body_is_read(start_receiver: StartReceiver) -> None:
    import http.client

    store = MemoryStore()
    r = start_receiver(store)
    body = simple_request(2).SerializeToString()
    conn = http.client.HTTPConnection("127.0.0.1", r.http_port, timeout=10)
    conn.request(
        "POST",
        "/v1/traces",
        body=iter([body[:10], body[10:]]),
        headers={"Content-Type": "application/x-protobuf"},
        encode_chunked=True,
    )
    assert conn.getresponse().status == 200
    conn.close()
    assert len(store.spans) == 2


def test_health_metrics_and_unknown_paths(start_receiver: StartReceiver) -> None:
    r = start_receiver(MemoryStore())
    post(r.http_port, simple_request(3).SerializeToString())
    status, _, body = post(r.http_port, b"", method="GET", path="/health")
    assert status == 200 and orjson.loads(body) == {"status": "ok"}
    status, headers, body = post(r.http_port, b"", method="GET", path="/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert "spanlake_receiver_spans_stored_total 3" in text
    assert 'spanlake_receiver_requests_total{transport="http",code="200"} 1' in text
    assert "spanlake_receiver_write_queue_spans 0" in text
    assert post(r.http_port, b"x", path="/v1/metrics")[0] == 404
    assert post(r.http_port, b"", method="GET", path="/nope")[0] == 404


def test_keep_alive_connection_survives_errors(start_receiver: StartReceiver) -> None:
    import http.client

    store = MemoryStore()
    r = start_receiver(store)
    conn = http.client.HTTPConnection("127.0.0.1", r.http_port, timeout=10)
    for i, (ctype, body, expected) in enumerate(
        [
            ("application/x-protobuf", b"\xff\xff", 400),
            ("text/plain", b"hello", 415),
            ("application/x-protobuf", simple_request(1, seed=5).SerializeToString(), 200),
        ]
    ):
        conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": ctype})
        response = conn.getresponse()
        response.read()
        assert response.status == expected, i
    conn.close()
    assert len(store.spans) == 1


def test_keep_alive_response_is_one_write(start_receiver: StartReceiver) -> None:
    """Issue 10, item 12: headers and body leave in one write with TCP_NODELAY, so a
    keep-alive sender gets each whole response at once (before: headers, then the body
    ~40 ms later, held back by Nagle until the client's delayed ACK)."""
    import socket

    r = start_receiver(MemoryStore())
    body = orjson.dumps(otlp_json(simple_request(2)))
    request = (
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", r.http_port), timeout=10) as sock:
        for _ in range(5):  # the same connection, kept alive
            sock.sendall(request)
            first = sock.recv(65536)
            head, _, rest = first.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            assert length > 0
            assert len(rest) == length, "the body did not arrive with the headers"
