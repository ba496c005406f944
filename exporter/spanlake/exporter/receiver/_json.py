"""OTLP/JSON -> :class:`SpanInput`, straight from ``orjson.loads`` output.

Not ``google.protobuf.json_format``: OTLP/JSON differs from the canonical protobuf JSON
mapping (ids are hex, not base64) and ``json_format`` is ~100x slower. Accepted, as the
OTLP spec asks of receivers: camelCase and snake_case field names, 64-bit integers as
strings or numbers, enums by number or by name, unknown fields ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from spanlake.exporter.mapping import SpanInput
from spanlake.exporter.receiver._decoded import (
    INT64_MAX,
    INT64_MIN,
    KINDS,
    MAX_TIME_NS,
    STATUS_CODES,
    Decoded,
    bad_ids,
)
from spanlake.exporter.receiver._errors import BadRequest
from spanlake.exporter.records import SpanEvent

MAX_DEPTH = 32
_KIND_NAMES = {
    f"SPAN_KIND_{k}": k for k in ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
}
_KIND_NAMES["SPAN_KIND_UNSPECIFIED"] = "INTERNAL"
_STATUS_NAMES = {"STATUS_CODE_UNSET": "UNSET", "STATUS_CODE_OK": "OK", "STATUS_CODE_ERROR": "ERROR"}
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class _SpanError(ValueError):
    """One span is malformed; it is rejected alone."""


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _SpanError(f"{what} must be an array")
    return value


def _int(value: Any, what: str, low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """An int64 (or, with ``low=0``, a timestamp) given as a number or a string."""
    number: int | None = None
    if value is None or value == "":
        number = 0
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and len(value) <= 24:
        try:
            number = int(value)
        except ValueError:
            pass
    if number is None:
        raise _SpanError(f"{what} must be an integer, got {str(value)[:40]!r}")
    if not low <= number <= high:
        raise _SpanError(f"{what} {number} is out of range")
    return number


def _time(value: Any, what: str) -> int:
    return _int(value, what, 0, MAX_TIME_NS)


def _hex_id(value: Any, what: str) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise _SpanError(f"{what} must be a hex string")
    try:
        return bytes.fromhex(value).hex()
    except ValueError:
        raise _SpanError(f"{what} {value[:64]!r} is not hex") from None


def _value(v: Any, depth: int = 0) -> Any:
    """An OTLP/JSON ``AnyValue`` object as plain Python (bytes stay base64 text)."""
    if not isinstance(v, dict):
        raise _SpanError("attribute value must be an object")
    for key, raw in v.items():
        if key in ("stringValue", "string_value"):
            if not isinstance(raw, str):
                raise _SpanError("stringValue must be a string")
            return raw
        if key in ("intValue", "int_value"):
            return _int(raw, "intValue")
        if key in ("doubleValue", "double_value"):
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return float(raw)
            if isinstance(raw, str):
                try:
                    return _SPECIAL_FLOATS.get(raw) or float(raw)
                except ValueError:
                    pass
            raise _SpanError("doubleValue must be a number")
        if key in ("boolValue", "bool_value"):
            if not isinstance(raw, bool):
                raise _SpanError("boolValue must be true or false")
            return raw
        if key in ("arrayValue", "array_value", "kvlistValue", "kvlist_value"):
            if depth >= MAX_DEPTH:
                raise _SpanError("attribute value nested too deep")
            if not isinstance(raw, dict):
                raise _SpanError(f"{key} must be an object")
            values = _list(raw.get("values"), f"{key}.values")
            if key.startswith("array"):
                return [_value(x, depth + 1) for x in values]
            return _attributes(values, depth + 1)
        if key in ("bytesValue", "bytes_value"):
            if not isinstance(raw, str):
                raise _SpanError("bytesValue must be base64 text")
            return raw
    return None  # an empty AnyValue, or only unknown fields


def _attributes(kvs: Any, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in _list(kvs, "attributes"):
        if not isinstance(kv, dict):
            raise _SpanError("attribute must be an object")
        key = kv.get("key")
        if not isinstance(key, str):
            raise _SpanError("attribute key must be a string")
        value = kv.get("value")
        out[key] = None if value is None else _value(value, depth)
    return out


def _enum(value: Any, names: Mapping[str, str], numbers: tuple[str, ...], what: str) -> str:
    if value is None:
        return numbers[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return numbers[value] if 0 <= value < len(numbers) else numbers[0]
    if isinstance(value, str) and value in names:
        return names[value]
    raise _SpanError(f"unknown {what} {str(value)[:40]!r}")


def _span(span: Any, resource: dict[str, Any], scope: str | None, out: Decoded) -> SpanInput | None:
    if not isinstance(span, dict):
        raise _SpanError("span must be an object")
    trace_id = _hex_id(_get(span, "traceId", "trace_id"), "traceId")
    span_id = _hex_id(_get(span, "spanId", "span_id"), "spanId")
    parent = _hex_id(_get(span, "parentSpanId", "parent_span_id"), "parentSpanId") or None
    reason = bad_ids(trace_id, span_id, parent)
    if reason is not None:
        out.reject(reason)
        return None
    name = span.get("name") or ""
    if not isinstance(name, str):
        raise _SpanError("span name must be a string")
    status = span.get("status") or {}
    if not isinstance(status, dict):
        raise _SpanError("status must be an object")
    message = status.get("message") or ""
    if not isinstance(message, str):
        raise _SpanError("status message must be a string")
    events = []
    for e in _list(span.get("events"), "events"):
        if not isinstance(e, dict):
            raise _SpanError("event must be an object")
        event_name = e.get("name") or ""
        if not isinstance(event_name, str):
            raise _SpanError("event name must be a string")
        events.append(
            SpanEvent(
                event_name,
                _time(_get(e, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
                _attributes(e.get("attributes")),
            )
        )
    end = _time(_get(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano")
    return SpanInput(
        trace_id,
        span_id,
        parent,
        name,
        _enum(span.get("kind"), _KIND_NAMES, KINDS, "span kind"),
        _time(_get(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
        end or None,
        _enum(status.get("code"), _STATUS_NAMES, STATUS_CODES, "status code"),
        message,
        _attributes(span.get("attributes")),
        events,
        resource,
        scope,
    )


def _container(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{what} must be an array")
    return value


def decode_request(body: bytes) -> Decoded:
    """Decode an OTLP/JSON ``ExportTraceServiceRequest``; BadRequest when it is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("OTLP/JSON body must be an object")
    out = Decoded()
    for rs in _container(_get(doc, "resourceSpans", "resource_spans"), "resourceSpans"):
        if not isinstance(rs, dict):
            raise BadRequest("resourceSpans entries must be objects")
        scopes = _container(_get(rs, "scopeSpans", "scope_spans"), "scopeSpans")
        try:
            res = rs.get("resource") or {}
            if not isinstance(res, dict):
                raise _SpanError("resource must be an object")
            resource = _attributes(res.get("attributes"))
        except _SpanError as exc:
            out.reject(f"bad resource: {exc}", _count_spans(scopes))
            continue
        for ss in scopes:
            if not isinstance(ss, dict):
                raise BadRequest("scopeSpans entries must be objects")
            scope_obj = ss.get("scope") or {}
            scope_name = scope_obj.get("name") if isinstance(scope_obj, dict) else None
            scope = scope_name if isinstance(scope_name, str) and scope_name else None
            for span in _container(ss.get("spans"), "spans"):
                try:
                    decoded = _span(span, resource, scope, out)
                except _SpanError as exc:
                    out.reject(str(exc))
                    continue
                if decoded is not None:
                    out.spans.append(decoded)
    return out


def _count_spans(scopes: list[Any]) -> int:
    return sum(
        len(ss["spans"])
        for ss in scopes
        if isinstance(ss, dict) and isinstance(ss.get("spans"), list)
    )


def encode_response(rejected: int, message: str) -> bytes:
    if not rejected and not message:
        return b"{}"
    return orjson.dumps(
        {"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}
    )
