"""The tracking data model (SPEC section 4) as plain dataclasses.

Every store reads and writes these; the mapping produces :class:`SpanRecord` from OTel
spans and :mod:`spanlake.exporter.rollup` derives :class:`TraceInfo` from a trace's spans.
JSON-valued fields (inputs, outputs) are kept as JSON *text* so they are encoded once, by
the instrumentation, and stored verbatim.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

import orjson


def _decode(json_text: str | None) -> Any:
    """JSON text as a value; text that is not valid JSON (e.g. truncated) stays a string."""
    if json_text is None:
        return None
    try:
        return orjson.loads(json_text)
    except orjson.JSONDecodeError:
        return json_text


class TraceState(str, Enum):
    OK = "OK"
    ERROR = "ERROR"
    IN_PROGRESS = "IN_PROGRESS"


class AssessmentKind(str, Enum):
    FEEDBACK = "FEEDBACK"
    EXPECTATION = "EXPECTATION"


class AssessmentSource(str, Enum):
    HUMAN = "HUMAN"
    LLM_JUDGE = "LLM_JUDGE"
    CODE = "CODE"


@dataclass(slots=True)
class TokenUsage:
    """Token counts; ``input_tokens`` includes cache reads and cache creation."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, other: TokenUsage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.cache_read_input_tokens += other.cache_read_input_tokens
        self.cache_creation_input_tokens += other.cache_creation_input_tokens
        self.reasoning_output_tokens += other.reasoning_output_tokens


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "time_ns": self.time_ns, "attributes": self.attributes}


@dataclass(slots=True)
class SpanRecord:
    """One span as stored. Ids are lowercase hex (trace 32, span 16)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    experiment: str
    name: str
    span_type: str
    kind: str  # INTERNAL | SERVER | CLIENT | PRODUCER | CONSUMER
    start_time_ns: int
    end_time_ns: int | None
    status: str  # UNSET | OK | ERROR
    status_message: str = ""
    inputs: str | None = None  # JSON text
    outputs: str | None = None  # JSON text
    model: str | None = None
    provider: str | None = None
    #: None when the span reports no usage at all (distinguishes "no usage" from zero).
    token_usage: TokenUsage | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str | None = None
    # Trace-level fields this span carries (merged by the roll-up).
    trace_tags: dict[str, str] = field(default_factory=dict)
    trace_metadata: dict[str, str] = field(default_factory=dict)
    client_request_id: str | None = None

    @property
    def service_name(self) -> str | None:
        value = self.resource.get("service.name")
        return str(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The CLI/JSON contract shape (inputs/outputs decoded from JSON text)."""
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "span_type": self.span_type,
            "kind": self.kind,
            "start_time_ns": self.start_time_ns,
            "end_time_ns": self.end_time_ns,
            "status": self.status,
            "status_message": self.status_message,
            "inputs": _decode(self.inputs),
            "outputs": _decode(self.outputs),
            "model": self.model,
            "provider": self.provider,
            "token_usage": self.token_usage.to_dict() if self.token_usage else None,
            "attributes": dict(self.attributes),
            "events": [e.to_dict() for e in self.events],
            "resource": dict(self.resource),
            "scope": self.scope,
        }


@dataclass(slots=True)
class TraceInfo:
    """The trace record: derived from its spans, identical whatever their arrival order."""

    trace_id: str
    experiment: str
    name: str | None
    state: TraceState
    request_time_ms: int
    execution_time_ms: int | None
    request_preview: str | None
    response_preview: str | None
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    token_usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = None
    span_count: int = 0
    models: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    service_name: str | None = None
    client_request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The CLI/JSON contract shape."""
        return {
            "trace_id": self.trace_id,
            "experiment": self.experiment,
            "name": self.name,
            "state": self.state.value,
            "request_time_ms": self.request_time_ms,
            "execution_time_ms": self.execution_time_ms,
            "request_preview": self.request_preview,
            "response_preview": self.response_preview,
            "tags": dict(self.tags),
            "metadata": dict(self.metadata),
            "token_usage": self.token_usage.to_dict(),
            "cost_usd": self.cost_usd,
            "span_count": self.span_count,
            "models": list(self.models),
            "providers": list(self.providers),
            "service_name": self.service_name,
            "client_request_id": self.client_request_id,
        }


@dataclass(slots=True)
class Assessment:
    """Feedback or an expectation on a trace (or one of its spans), logged after the fact."""

    trace_id: str
    name: str
    value: Any
    kind: AssessmentKind = AssessmentKind.FEEDBACK
    span_id: str | None = None
    rationale: str | None = None
    source_type: AssessmentSource = AssessmentSource.HUMAN
    source_id: str | None = None
    time_ms: int = 0
    assessment_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assessment_id": self.assessment_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "name": self.name,
            "kind": self.kind.value,
            "value": self.value,
            "rationale": self.rationale,
            "source": {"type": self.source_type.value, "id": self.source_id},
            "time_ms": self.time_ms,
            "metadata": dict(self.metadata),
        }


@dataclass(slots=True)
class Experiment:
    experiment_id: str
    name: str
    created_time_ms: int
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Trace:
    """A trace with all its spans (sorted by start time) and assessments."""

    info: TraceInfo
    spans: list[SpanRecord]
    assessments: list[Assessment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``spanlake traces get --format json`` shape."""
        return {
            "info": self.info.to_dict(),
            "spans": [s.to_dict() for s in self.spans],
            "assessments": [a.to_dict() for a in self.assessments],
        }


@dataclass(slots=True)
class TracePage:
    """One page of search results; pass ``next_page_token`` back to get the next."""

    traces: list[TraceInfo]
    next_page_token: str | None = None
