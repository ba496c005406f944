"""The decoders and body handling, without sockets: protobuf walk, OTLP/JSON, limits."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from receiver._support import otlp_json

from spanlake.exporter.receiver import _json, _protobuf
from spanlake.exporter.receiver._body import check_encoding, decompress, media_format
from spanlake.exporter.receiver._errors import BadRequest, TooLarge, UnsupportedMedia

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
SPAN = bytes.fromhex("b7ad6b7169203331")
PARENT = bytes.fromhex("00f067aa0ba902b7")


def _request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=AnyValue(string_value="checkout"))
    rs.resource.attributes.add(key="spanlake.experiment", value=AnyValue(string_value="exp-r"))
    ss = rs.scope_spans.add()
    ss.scope.name = "my.scope"
    span = ss.spans.add(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id=PARENT,
        name="chat gpt-4o",
        kind=3,
        start_time_unix_nano=1_700_000_000_123_456_789,
        end_time_unix_nano=1_700_000_001_000_000_000,
    )
    span.status.code = 2
    span.status.message = "boom"
    attrs: list[tuple[str, AnyValue]] = [
        ("s", AnyValue(string_value="héllo")),
        ("i", AnyValue(int_value=-(2**63))),
        ("d", AnyValue(double_value=0.25)),
        ("b", AnyValue(bool_value=True)),
        ("raw", AnyValue(bytes_value=b"\x00\xff")),
        ("empty", AnyValue()),
    ]
    arr = AnyValue()
    arr.array_value.values.extend([AnyValue(string_value="a"), AnyValue(int_value=2)])
    kvl = AnyValue()
    kvl.kvlist_value.values.extend(
        [KeyValue(key="k", value=AnyValue(string_value="v")), KeyValue(key="n", value=arr)]
    )
    attrs += [("arr", arr), ("kv", kvl)]
    for key, value in attrs:
        span.attributes.add(key=key, value=value)
    ev = span.events.add(name="exception", time_unix_nano=1_700_000_000_500_000_000)
    ev.attributes.add(key="exception.type", value=AnyValue(string_value="ValueError"))
    # A second span sharing the resource, then one with a bad span id.
    ss.spans.add(trace_id=TRACE, span_id=PARENT, name="root", start_time_unix_nano=1)
    ss.spans.add(trace_id=TRACE, span_id=b"\x01\x02", name="bad")
    return req


EXPECTED_ATTRS: dict[str, Any] = {
    "s": "héllo",
    "i": -(2**63),
    "d": 0.25,
    "b": True,
    "raw": "AP8=",
    "empty": None,
    "arr": ["a", 2],
    "kv": {"k": "v", "n": ["a", 2]},
}


def _check(decoded: Any) -> None:
    assert decoded.rejected == 1
    assert "invalid span id '0102'" in decoded.error_message
    first, root = decoded.spans
    assert first.trace_id == TRACE.hex() and first.span_id == SPAN.hex()
    assert first.parent_span_id == PARENT.hex()
    assert (first.name, first.kind, first.status_code, first.status_message) == (
        "chat gpt-4o",
        "CLIENT",
        "ERROR",
        "boom",
    )
    assert first.start_time_ns == 1_700_000_000_123_456_789
    assert first.end_time_ns == 1_700_000_001_000_000_000
    assert dict(first.attributes) == EXPECTED_ATTRS
    assert [(e.name, e.time_ns, e.attributes) for e in first.events] == [
        ("exception", 1_700_000_000_500_000_000, {"exception.type": "ValueError"})
    ]
    assert first.resource == {"service.name": "checkout", "spanlake.experiment": "exp-r"}
    assert first.scope == "my.scope"
    assert root.parent_span_id is None and root.end_time_ns is None
    assert root.kind == "INTERNAL" and root.status_code == "UNSET"


def test_protobuf_walk_converts_every_field_and_rejects_bad_span_alone() -> None:
    decoded = _protobuf.decode_request(_request().SerializeToString())
    _check(decoded)
    # The resource is converted once per ResourceSpans and shared by its spans.
    assert decoded.spans[0].resource is decoded.spans[1].resource


def test_json_decodes_to_the_same_spans_as_protobuf() -> None:
    body = orjson.dumps(otlp_json(_request()))
    assert b'"traceId":"0af7651916cd43dd8448eb211c80319c"' in body  # hex, not base64
    _check(_json.decode_request(body))


def test_json_accepts_snake_case_numbers_enum_numbers_and_unknown_fields() -> None:
    doc = {
        "resource_spans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"string_value": "x"}}]
                },
                "scope_spans": [
                    {
                        "scope": {"name": "sc", "version": "1"},
                        "spans": [
                            {
                                "trace_id": TRACE.hex().upper(),
                                "span_id": SPAN.hex(),
                                "parent_span_id": "",
                                "name": "n",
                                "kind": 2,
                                "start_time_unix_nano": 1_700_000_000_000_000_001,
                                "end_time_unix_nano": "1700000000000000002",
                                "status": {"code": "STATUS_CODE_OK"},
                                "attributes": [
                                    {"key": "i", "value": {"int_value": 7}},
                                    {"key": "f", "value": {"double_value": "NaN"}},
                                    {"key": "n", "value": {"doubleValue": 3}},
                                ],
                                "flags": 1,
                                "someFutureField": {"x": [1, 2]},
                            },
                            {
                                "traceId": TRACE.hex(),
                                "spanId": PARENT.hex(),
                                "kind": "SPAN_KIND_PRODUCER",
                                "status": {"code": 1},
                            },
                        ],
                    }
                ],
                "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
            }
        ]
    }
    decoded = _json.decode_request(orjson.dumps(doc))
    assert decoded.rejected == 0
    span, other = decoded.spans
    assert span.trace_id == TRACE.hex()  # lower-cased
    assert span.parent_span_id is None
    assert (span.kind, span.status_code) == ("SERVER", "OK")
    assert (span.start_time_ns, span.end_time_ns) == (
        1_700_000_000_000_000_001,
        1_700_000_000_000_000_002,
    )
    assert span.attributes["i"] == 7 and span.attributes["n"] == 3.0
    assert span.attributes["f"] != span.attributes["f"]  # NaN
    assert span.resource == {"service.name": "x"} and span.scope == "sc"
    assert (other.kind, other.status_code) == ("PRODUCER", "OK")


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        ({"traceId": "abcd", "spanId": SPAN.hex()}, "invalid trace id"),
        ({"traceId": "zz" * 16, "spanId": SPAN.hex()}, "not hex"),
        ({"traceId": TRACE.hex(), "spanId": "00" * 8}, "invalid span id"),
        ({"traceId": TRACE.hex()}, "invalid span id"),
        ({"traceId": TRACE.hex(), "spanId": SPAN.hex(), "parentSpanId": "ab"}, "parent"),
        ({"traceId": TRACE.hex(), "spanId": SPAN.hex(), "startTimeUnixNano": "soon"}, "integer"),
        ({"traceId": TRACE.hex(), "spanId": SPAN.hex(), "kind": "SPAN_KIND_WEIRD"}, "span kind"),
        ({"traceId": TRACE.hex(), "spanId": SPAN.hex(), "attributes": {"a": 1}}, "array"),
        (
            {
                "traceId": TRACE.hex(),
                "spanId": SPAN.hex(),
                "attributes": [{"key": "a", "value": 5}],
            },
            "object",
        ),
        ("not a span", "span must be an object"),
    ],
)
def test_json_bad_span_is_rejected_alone(span: Any, reason: str) -> None:
    good = {"traceId": TRACE.hex(), "spanId": PARENT.hex(), "name": "good"}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [span, good]}]}]}
    decoded = _json.decode_request(orjson.dumps(doc))
    assert [s.name for s in decoded.spans] == ["good"]
    assert decoded.rejected == 1
    assert reason in decoded.error_message


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[]", b'"x"', b'{"resourceSpans": {}}', b'{"resourceSpans": [1]}', b"\xff\xfe"],
)
def test_json_undecodable_request_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        _json.decode_request(body)


def test_protobuf_garbage_is_bad_request_and_invalid_utf8_too() -> None:
    with pytest.raises(BadRequest):
        _protobuf.decode_request(b"\xff\xff\xff\xff")
    # Field 1 (resource_spans) -> field 2 (scope_spans) -> span name with invalid UTF-8.
    span = b"\x2a\x02\xff\xfe"  # Span.name (field 5) = b"\xff\xfe"
    scope_spans = b"\x12" + bytes([len(span)]) + span
    resource_spans = b"\x12" + bytes([len(scope_spans)]) + scope_spans
    body = b"\x0a" + bytes([len(resource_spans)]) + resource_spans
    with pytest.raises(BadRequest):
        _protobuf.decode_request(body)


def test_empty_requests_decode_to_nothing() -> None:
    assert _protobuf.decode_request(b"").spans == []
    assert _json.decode_request(b"{}").spans == []


def test_responses_carry_partial_success_in_both_encodings() -> None:
    assert _protobuf.encode_response(0, "") == b""
    response = ExportTraceServiceResponse.FromString(_protobuf.encode_response(2, "bad ids"))
    assert response.partial_success.rejected_spans == 2
    assert response.partial_success.error_message == "bad ids"
    assert orjson.loads(_json.encode_response(0, "")) == {}
    assert orjson.loads(_json.encode_response(2, "bad ids")) == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "bad ids"}
    }


# -- bodies -------------------------------------------------------------------------------

PAYLOAD = b"spanlake " * 1000


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("", PAYLOAD),
        ("gzip", gzip.compress(PAYLOAD)),
        ("gzip", gzip.compress(PAYLOAD[:5000]) + gzip.compress(PAYLOAD[5000:])),
        ("deflate", zlib.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)[2:-4]),  # raw deflate, as some clients send
    ],
)
def test_decompress_round_trips(encoding: str, body: bytes) -> None:
    assert decompress(body, encoding, len(PAYLOAD)) == PAYLOAD


def test_zip_bomb_is_cut_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge):
        decompress(bomb, "gzip", 1024 * 1024)
    with pytest.raises(TooLarge):
        decompress(zlib.compress(b"\0" * (8 * 1024 * 1024)), "deflate", 1024 * 1024)
    with pytest.raises(TooLarge):
        decompress(PAYLOAD, "", len(PAYLOAD) - 1)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", b"not gzip"), ("gzip", gzip.compress(PAYLOAD)[:-30]), ("deflate", b"\x78\x9c\xff")],
)
def test_corrupt_compressed_body_is_bad_request(encoding: str, body: bytes) -> None:
    with pytest.raises(BadRequest):
        decompress(body, encoding, 10 * len(PAYLOAD))


def test_media_types_and_encodings() -> None:
    assert media_format("application/x-protobuf") == "protobuf"
    assert media_format("application/json; charset=utf-8") == "json"
    assert media_format("Application/Protobuf") == "protobuf"
    for bad in (None, "", "text/plain", "application/grpc"):
        with pytest.raises(UnsupportedMedia):
            media_format(bad)
    assert check_encoding(None) == "" and check_encoding("identity") == ""
    assert check_encoding("GZIP") == "gzip" and check_encoding("deflate") == "deflate"
    for bad in ("br", "zstd", "gzip, br"):
        with pytest.raises(UnsupportedMedia):
            check_encoding(bad)


def test_out_of_range_numbers_reject_the_span_not_the_store() -> None:
    span = {"traceId": TRACE.hex(), "spanId": SPAN.hex()}
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                **span,
                                "attributes": [{"key": "i", "value": {"intValue": str(2**63)}}],
                            },
                            {**span, "startTimeUnixNano": -1},
                            {**span, "endTimeUnixNano": 2**64 - 1},
                        ]
                    }
                ]
            }
        ]
    }
    decoded = _json.decode_request(orjson.dumps(doc, option=orjson.OPT_PASSTHROUGH_DATACLASS))
    assert decoded.spans == [] and decoded.rejected == 3
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    spans.add(trace_id=TRACE, span_id=SPAN, start_time_unix_nano=2**63)
    decoded = _protobuf.decode_request(req.SerializeToString())
    assert decoded.spans == [] and "timestamps" in decoded.error_message
