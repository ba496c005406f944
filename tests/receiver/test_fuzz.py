"""Bad input never kills the receiver and always gets the right answer: fuzzed protobuf
and JSON bodies, wrong id lengths, invalid UTF-8, huge attributes, zip bombs, wrong
content types and encodings (hypothesis, bounded example counts)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from receiver._support import otlp_json, post, simple_request

from spanlake.exporter.receiver import Receiver, ReceiverConfig
from spanlake.exporter.store import open_store

LIMIT = 256 * 1024
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    # The real SQLite store: whatever the decoders let through must be storable.
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    r = Receiver(
        store, ReceiverConfig(grpc_port=None, http_port=0, max_request_bytes=LIMIT)
    ).start()
    yield r
    # The server survived everything: still healthy, nothing answered 5xx.
    assert post(r.http_port or 0, b"", method="GET", path="/health")[0] == 200
    assert not [c for (_, c), _n in r.metrics.requests.items() if c.startswith("5")]
    r.stop()


def _port(r: Receiver) -> int:
    assert r.http_port is not None
    return r.http_port


@FUZZ
@given(body=st.binary(max_size=2048))
def test_random_protobuf_bytes(receiver: Receiver, body: bytes) -> None:
    status, _, _ = post(_port(receiver), body)
    assert status in (200, 400)


VALID = simple_request(5).SerializeToString()


@FUZZ
@given(
    cut=st.integers(0, len(VALID)),
    flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(1, 255)), max_size=4),
)
def test_mutated_protobuf(receiver: Receiver, cut: int, flips: list[tuple[int, int]]) -> None:
    body = bytearray(VALID[:cut] if cut % 3 == 0 else VALID)
    for pos, mask in flips:
        if pos < len(body):
            body[pos] ^= mask
    status, _, answer = post(_port(receiver), bytes(body))
    assert status in (200, 400)
    if status == 200:
        ExportTraceServiceResponse.FromString(answer)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=20,
)
OTLP_KEYS = ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "attributes",
             "key", "value", "stringValue", "intValue", "arrayValue", "values", "kind",
             "status", "code", "events", "resource", "startTimeUnixNano"]  # fmt: skip
OTLP_SHAPED = st.recursive(
    st.none() | st.integers() | st.text(max_size=34) | st.sampled_from(["", "0" * 32, "ab" * 8]),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(OTLP_KEYS), kids, max_size=5)
    ),
    max_leaves=30,
)


@FUZZ
@given(doc=JSON_VALUES | OTLP_SHAPED)
def test_random_json_documents(receiver: Receiver, doc: Any) -> None:
    body = json.dumps(doc).encode()  # stdlib: also ints beyond 64 bits
    status, headers, answer = post(_port(receiver), body, {"Content-Type": "application/json"})
    assert status in (200, 400), answer
    assert headers["content-type"] == "application/json"
    orjson.loads(answer)


ID_BYTES = st.one_of(st.binary(min_size=0, max_size=20), st.binary(min_size=16, max_size=16))


@FUZZ
@given(
    ids=st.lists(
        st.tuples(st.binary(min_size=0, max_size=18), st.binary(min_size=0, max_size=10)),
        min_size=1,
        max_size=8,
    ),
    as_json=st.booleans(),
)
def test_wrong_id_lengths_are_rejected_span_by_span(
    receiver: Receiver, ids: list[tuple[bytes, bytes]], as_json: bool
) -> None:
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for trace_id, span_id in ids:
        spans.add(trace_id=trace_id, span_id=span_id, name="s")
    expected = sum(1 for t, s in ids if not (len(t) == 16 and any(t) and len(s) == 8 and any(s)))
    if as_json:
        status, _, answer = post(
            _port(receiver), orjson.dumps(otlp_json(req)), {"Content-Type": "application/json"}
        )
        assert status == 200
        rejected = int(orjson.loads(answer).get("partialSuccess", {}).get("rejectedSpans", 0))
    else:
        status, _, answer = post(_port(receiver), req.SerializeToString())
        assert status == 200
        rejected = ExportTraceServiceResponse.FromString(answer).partial_success.rejected_spans
    assert rejected == expected


@FUZZ
@given(raw=st.binary(min_size=1, max_size=64))
def test_invalid_utf8_in_json_strings(receiver: Receiver, raw: bytes) -> None:
    body = orjson.dumps(otlp_json(simple_request(1))).replace(b'"span-0"', b'"' + raw + b'"', 1)
    try:
        raw.decode("utf-8")
        valid = b'"' not in raw and b"\\" not in raw and all(b >= 0x20 for b in raw)
    except UnicodeDecodeError:
        valid = False
    status, _, _ = post(_port(receiver), body, {"Content-Type": "application/json"})
    assert status == (200 if valid else 400)


@FUZZ
@given(content_type=st.text(max_size=40), encoding=st.text(max_size=12))
def test_random_content_types_and_encodings(
    receiver: Receiver, content_type: str, encoding: str
) -> None:
    headers = {"Content-Type": content_type, "Content-Encoding": encoding}
    try:
        headers_ok = all(
            h.isprintable() and h.isascii() and h == h.strip() for h in headers.values()
        )
    except Exception:
        headers_ok = False
    if not headers_ok:
        return  # http.client refuses to send such headers
    media = content_type.split(";", 1)[0].strip().lower()
    known_media = media in ("application/x-protobuf", "application/protobuf", "application/json")
    known_encoding = encoding.strip().lower() in ("", "identity", "gzip", "x-gzip", "deflate")
    status, _, _ = post(_port(receiver), b"", headers)
    if not (known_media and known_encoding):
        assert status == 415
    else:
        # An empty body is a valid protobuf request, an invalid JSON one, a corrupt stream.
        assert status in (200, 400)


@pytest.mark.parametrize("size", [LIMIT // 2, LIMIT * 2])
def test_huge_attribute(receiver: Receiver, size: int) -> None:
    req = simple_request(1, seed=size)
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="huge").value.string_value = (
        "é" * (size // 2)
    )
    status, _, _ = post(_port(receiver), req.SerializeToString())
    assert status == (200 if size < LIMIT else 413)


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),
    ],
)
@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
def test_zip_bombs(receiver: Receiver, encoding: str, compress: Any, content_type: str) -> None:
    bomb = compress(b"\x00" * (32 * 1024 * 1024))
    assert len(bomb) < LIMIT
    status, _, _ = post(
        _port(receiver), bomb, {"Content-Type": content_type, "Content-Encoding": encoding}
    )
    assert status == 413
    assert receiver.metrics.inflight_bytes == 0
