"""OTel span -> :class:`SpanRecord`: a pure function, no I/O.

Two front doors feed the same mapping: :func:`from_readable_span` (the SDK exporter) and the
OTLP receiver's protobuf/JSON decoders, both producing a :class:`SpanInput`. The mapping
first lets :func:`spanlake.semconv.dialects.normalize` translate other conventions
(OpenInference, OpenLLMetry, MLflow) into OTel GenAI + spanlake keys, then reads:

- span type: ``spanlake.span.type``, else implied by ``gen_ai.operation.name``, else UNKNOWN;
- inputs/outputs: ``spanlake.span.inputs/outputs``, else ``gen_ai.input/output.messages``;
- model: ``gen_ai.request.model``, else ``gen_ai.response.model``;
- provider: ``gen_ai.provider.name``, else the deprecated ``gen_ai.system``;
- usage: ``gen_ai.usage.*`` (``input_tokens`` is inclusive of cache tokens);
- trace-level fields: ``spanlake.trace.tag.*``, ``spanlake.trace.metadata.*``,
  ``spanlake.trace.client_request_id``, ``user.id``, ``session.id``, ``gen_ai.conversation.id``.

What is not promoted to a typed field stays in ``attributes``. Secrets are replaced by
``[REDACTED]`` by key at every level (:mod:`spanlake.semconv.secrets` owns the rule): span,
event and resource attributes, trace tags and metadata, and inside inputs/outputs JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from spanlake.exporter.records import SpanEvent, SpanRecord, TokenUsage
from spanlake.semconv import gen_ai as g
from spanlake.semconv import spanlake_attrs as sl
from spanlake.semconv.dialects import normalize
from spanlake.semconv.secrets import REDACTED, is_secret_key, redact_attributes, redact_json_text
from spanlake.semconv.span_type import SpanType, span_type_from_operation

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

#: Keys consumed into typed fields (and so not repeated in ``attributes``).
_CONSUMED = frozenset({sl.SPAN_TYPE, sl.SPAN_INPUTS, sl.SPAN_OUTPUTS, sl.TRACE_CLIENT_REQUEST_ID})
_TRACE_PREFIXES = (sl.TRACE_TAG_PREFIX, sl.TRACE_METADATA_PREFIX)
_TAG_LEN = len(sl.TRACE_TAG_PREFIX)
_META_LEN = len(sl.TRACE_METADATA_PREFIX)
_USAGE_FIELDS: tuple[tuple[str, str], ...] = (
    (g.USAGE_INPUT_TOKENS, "input_tokens"),
    (g.USAGE_OUTPUT_TOKENS, "output_tokens"),
    (g.USAGE_CACHE_READ_INPUT_TOKENS, "cache_read_input_tokens"),
    (g.USAGE_CACHE_CREATION_INPUT_TOKENS, "cache_creation_input_tokens"),
    (g.USAGE_CACHE_WRITE_INPUT_TOKENS, "cache_creation_input_tokens"),
    (g.USAGE_REASONING_OUTPUT_TOKENS, "reasoning_output_tokens"),
)


@dataclass(slots=True)
class SpanInput:
    """A span as any front door sees it: hex ids, plain-Python attribute values."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str  # INTERNAL | SERVER | CLIENT | PRODUCER | CONSUMER
    start_time_ns: int
    end_time_ns: int | None
    status_code: str  # UNSET | OK | ERROR
    status_message: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    resource: Mapping[str, Any] = field(default_factory=dict)
    scope: str | None = None


def _plain(value: Any) -> Any:
    """OTel attribute values as JSON-able Python: sequences become lists, bytes base64 text
    (what the OTLP receiver stores for a bytes value, so both front doors agree)."""
    if isinstance(value, (tuple, list)):
        return (
            [_plain(v) for v in value] if any(isinstance(v, bytes) for v in value) else list(value)
        )
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def from_readable_span(span: ReadableSpan, resource: Mapping[str, Any] | None = None) -> SpanInput:
    """The SDK's finished span as a :class:`SpanInput` (``resource`` may be pre-converted)."""
    ctx = span.context
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    return SpanInput(
        trace_id=f"{ctx.trace_id:032x}" if ctx else "0" * 32,
        span_id=f"{ctx.span_id:016x}" if ctx else "0" * 16,
        parent_span_id=f"{parent.span_id:016x}" if parent is not None else None,
        name=span.name,
        kind=span.kind.name,
        start_time_ns=span.start_time or 0,
        end_time_ns=span.end_time,
        status_code=status.status_code.name,
        status_message=status.description or "",
        attributes={k: _plain(v) for k, v in (span.attributes or {}).items()},
        events=[
            SpanEvent(e.name, e.timestamp, {k: _plain(v) for k, v in (e.attributes or {}).items()})
            for e in span.events
        ],
        resource=resource
        if resource is not None
        else {k: _plain(v) for k, v in span.resource.attributes.items()},
        scope=scope.name if scope is not None else None,
    )


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (float, str)):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _usage(attrs: Mapping[str, Any]) -> TokenUsage | None:
    usage: TokenUsage | None = None
    for key, name in _USAGE_FIELDS:
        if key in attrs:
            value = _as_int(attrs[key])
            if value is None:
                continue
            if usage is None:
                usage = TokenUsage()
            if getattr(usage, name) == 0:
                setattr(usage, name, value)
    if usage is not None:
        usage.total_tokens = usage.input_tokens + usage.output_tokens
    return usage


def _json_text(value: Any) -> str | None:
    """An inputs/outputs attribute as JSON text (already JSON text when we emitted it)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    import orjson

    return orjson.dumps(value, default=str).decode()


def _span_type(attrs: Mapping[str, Any]) -> str:
    explicit = attrs.get(sl.SPAN_TYPE)
    if isinstance(explicit, str) and explicit:
        return explicit.upper()
    implied = span_type_from_operation(attrs.get(g.OPERATION_NAME))
    return (implied or SpanType.UNKNOWN).value


def _redact_events(events: list[SpanEvent]) -> list[SpanEvent]:
    out: list[SpanEvent] | None = None
    for index, event in enumerate(events):
        attrs = redact_attributes(event.attributes)
        if attrs is not event.attributes:
            if out is None:
                out = list(events)
            out[index] = SpanEvent(event.name, event.time_ns, attrs)
    return events if out is None else out


#: Resource attribute sets already redacted (by identity): a process or a ResourceSpans
#: shares one resource across its spans, so it is redacted once.
_RESOURCES: dict[int, tuple[Mapping[str, Any], dict[str, Any]]] = {}


def _redact_resource(resource: Mapping[str, Any]) -> dict[str, Any]:
    cached = _RESOURCES.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    redacted = redact_attributes(resource if type(resource) is dict else dict(resource))
    if len(_RESOURCES) > 256:
        _RESOURCES.clear()
    _RESOURCES[id(resource)] = (resource, redacted)
    return redacted


def _trace_field(key: str, value: Any) -> str:
    return REDACTED if is_secret_key(key) else redact_json_text(str(value))


def experiment_for(span: SpanInput, default: str, override: str | None = None) -> str:
    """Routing: explicit override (e.g. a request header) > span attribute > resource > default."""
    if override:
        return override
    for source in (span.attributes, span.resource):
        value = source.get(sl.EXPERIMENT)
        if isinstance(value, str) and value:
            return value
    return default


def map_span(span: SpanInput, experiment: str) -> SpanRecord:
    """The tracking-model record of one span (pure; never does I/O)."""
    attrs = normalize(span.attributes)
    inputs = _json_text(attrs.get(sl.SPAN_INPUTS))
    outputs = _json_text(attrs.get(sl.SPAN_OUTPUTS))
    consumed = _CONSUMED
    if inputs is None and g.INPUT_MESSAGES in attrs:
        inputs = _json_text(attrs[g.INPUT_MESSAGES])
        consumed = consumed | {g.INPUT_MESSAGES}
    if outputs is None and g.OUTPUT_MESSAGES in attrs:
        outputs = _json_text(attrs[g.OUTPUT_MESSAGES])
        consumed = consumed | {g.OUTPUT_MESSAGES}

    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    rest: dict[str, Any] = {}
    for key, value in attrs.items():
        if key in consumed:
            continue
        if key.startswith(_TRACE_PREFIXES):  # one C call for the common miss
            if key.startswith(sl.TRACE_TAG_PREFIX):
                tags[key[_TAG_LEN:]] = _trace_field(key, value)
            else:
                metadata[key[_META_LEN:]] = _trace_field(key, value)
        else:
            rest[key] = value
    for key, meta_key in (
        (sl.USER_ID, sl.METADATA_USER),
        (sl.SESSION_ID, sl.METADATA_SESSION),
        (g.CONVERSATION_ID, sl.METADATA_SESSION),
    ):
        if key in attrs and meta_key not in metadata:
            metadata[meta_key] = str(attrs[key])
    rest = redact_attributes(rest)
    if inputs is not None:
        inputs = redact_json_text(inputs)
    if outputs is not None:
        outputs = redact_json_text(outputs)

    model = attrs.get(g.REQUEST_MODEL) or attrs.get(g.RESPONSE_MODEL)
    provider = attrs.get(g.PROVIDER_NAME) or attrs.get(g.SYSTEM)
    client_request_id = attrs.get(sl.TRACE_CLIENT_REQUEST_ID)
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id or None,
        experiment=experiment,
        name=span.name,
        span_type=_span_type(attrs),
        kind=span.kind,
        start_time_ns=span.start_time_ns,
        end_time_ns=span.end_time_ns,
        status=span.status_code,
        status_message=span.status_message,
        inputs=inputs,
        outputs=outputs,
        model=str(model) if model else None,
        provider=str(provider) if provider else None,
        token_usage=_usage(attrs),
        attributes=rest,
        events=_redact_events(span.events),
        # Shared, not copied: every span of one OTLP ResourceSpans (or one SDK process) has
        # the same resource, and records are never mutated after mapping.
        resource=_redact_resource(span.resource),
        scope=span.scope,
        trace_tags=tags,
        trace_metadata=metadata,
        client_request_id=str(client_request_id) if client_request_id else None,
    )


def map_spans(
    spans: Sequence[SpanInput], default_experiment: str, override: str | None = None
) -> list[SpanRecord]:
    """Map a batch, routing each span to its experiment."""
    return [map_span(s, experiment_for(s, default_experiment, override)) for s in spans]
