"""One GenAI call as one CLIENT span: start, record request/response/content, fail, end once.

The lifecycle lives here once so provider wrappers stay ~20 lines. Every public method is
contained: it never raises into the application, whatever the provider hands it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from spanlake.instrumentation._capture import capture
from spanlake.semconv import gen_ai as ga
from spanlake.semconv.secrets import is_secret_key
from spanlake.semconv.span_type import SpanType, span_type_from_operation
from spanlake.semconv.spanlake_attrs import SPAN_TYPE, TRUNCATED

from ._config import ContentConfig, content_config, latest_names
from ._metrics import METRIC_KEYS, ClientMetrics, metrics_for
from ._parts import Message, Part
from ._safe import contained

_logger = logging.getLogger("spanlake.instrumentation")
T = TypeVar("T")

#: Attribute: how a stream's span ended (exhausted | closed | context_exit | error | dropped).
STREAM_END: Final = "spanlake.stream.end"
#: Attribute: how many chunks a stream delivered.
STREAM_CHUNKS: Final = "spanlake.stream.chunks"
#: Span event name for one stream chunk (bounded count; see ``_stream``).
CHUNK_EVENT: Final = "spanlake.stream.chunk"


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reported them, normalised by :meth:`attributes`.

    ``input_includes_cache`` says whether the provider's ``input_tokens`` already counts cached
    tokens (OpenAI, Bedrock Converse: yes; Anthropic: no). Our ``gen_ai.usage.input_tokens`` always
    includes cache reads and cache creation, for every provider.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    input_includes_cache: bool = True

    def total_input_tokens(self) -> int | None:
        if self.input_includes_cache:
            return self.input_tokens
        parts = (self.input_tokens, self.cache_read_input_tokens, self.cache_creation_input_tokens)
        if all(p is None for p in parts):
            return None
        return sum(p or 0 for p in parts)

    def attributes(self) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = {}
        total = self.total_input_tokens()
        if total is not None:
            out[ga.USAGE_INPUT_TOKENS] = total
        if self.output_tokens is not None:
            out[ga.USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cache_read_input_tokens is not None:
            out[ga.USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_input_tokens
        if self.cache_creation_input_tokens is not None:
            out[ga.USAGE_CACHE_CREATION_INPUT_TOKENS] = self.cache_creation_input_tokens
            if latest_names():
                out[ga.USAGE_CACHE_WRITE_INPUT_TOKENS] = self.cache_creation_input_tokens
        if self.reasoning_output_tokens is not None:
            out[ga.USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_output_tokens
        return out


@dataclass(slots=True)
class Request:
    """What the call asked for; becomes the span's name and start attributes.

    ``None`` fields are left off the span. ``attributes`` carries provider extras (never
    secrets: keys that look like API keys or auth headers are dropped).
    """

    operation: str
    provider: str
    model: str | None
    span_type: SpanType | None = None
    server_address: str | None = None
    server_port: int | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    max_tokens: int | None = None
    stop_sequences: Sequence[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    choice_count: int | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)

    def span_name(self) -> str:
        return f"{self.operation} {self.model}" if self.model else self.operation

    def span_attributes(self) -> dict[str, AttributeValue]:
        span_type = self.span_type or span_type_from_operation(self.operation) or SpanType.LLM
        out: dict[str, AttributeValue] = {
            ga.OPERATION_NAME: self.operation,
            ga.PROVIDER_NAME: self.provider,
            SPAN_TYPE: span_type.value,
        }
        if self.model is not None:
            out[ga.REQUEST_MODEL] = self.model
        if self.server_address is not None:
            out[ga.SERVER_ADDRESS] = self.server_address
        if self.server_port is not None:
            out[ga.SERVER_PORT] = self.server_port
        if self.stream is not None:
            out[ga.REQUEST_STREAM] = self.stream
        # Most calls set few of these: test for None before converting.
        for key, value, conv in (
            (ga.REQUEST_TEMPERATURE, self.temperature, _num),
            (ga.REQUEST_TOP_P, self.top_p, _num),
            (ga.REQUEST_TOP_K, self.top_k, _num),
            (ga.REQUEST_MAX_TOKENS, self.max_tokens, _int),
            (ga.REQUEST_SEED, self.seed, _int),
            (ga.REQUEST_FREQUENCY_PENALTY, self.frequency_penalty, _num),
            (ga.REQUEST_PRESENCE_PENALTY, self.presence_penalty, _num),
            (ga.REQUEST_CHOICE_COUNT, self.choice_count, _int),
        ):
            if value is not None and (converted := conv(value)) is not None:
                out[key] = converted
        if self.stop_sequences is not None:
            stops = _str_list(self.stop_sequences)
            if stops is not None:
                out[ga.REQUEST_STOP_SEQUENCES] = stops
        for key, extra in self.attributes.items():
            # Extras whose key is a secret (spanlake.semconv.secrets) are dropped.
            if extra is not None and not is_secret_key(key):
                out[key] = extra
        return out


@dataclass(slots=True)
class Response:
    """What the call returned; becomes the span's end attributes."""

    id: str | None = None
    model: str | None = None
    finish_reasons: Sequence[str] | None = None
    usage: Usage | None = None
    output_messages: list[Message] | None = None
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        return None


def error_type_of(exc: BaseException) -> str:
    """``error.type`` for an exception: its class's qualified name (OTel's rule for exceptions)."""
    return type(exc).__qualname__


class Invocation:
    """The span of one GenAI call. Create with :meth:`start`; every method is contained."""

    __slots__ = (
        "_end_lock",
        "_ended",
        "_error_type",
        "_event_attrs",
        "_first_chunk_ns",
        "_metric_attrs",
        "_response_model",
        "_start_ns",
        "_truncated",
        "_usage",
        "chunk_gaps",
        "content",
        "metrics",
        "span",
    )

    def __init__(
        self,
        span: trace_api.Span,
        content: ContentConfig,
        metrics: ClientMetrics | None = None,
        metric_attrs: dict[str, AttributeValue] | None = None,
    ) -> None:
        self.span = span
        self.content = content
        self._start_ns = time.monotonic_ns()
        self._first_chunk_ns: int | None = None
        self._truncated: list[str] | None = None
        self._event_attrs: dict[str, AttributeValue] | None = None
        self._end_lock = threading.Lock()
        self._ended = False
        #: The instruments this call records into when it ends (None: no metrics).
        self.metrics = metrics
        self._metric_attrs = metric_attrs
        self._usage: Usage | None = None
        self._response_model: str | None = None
        self._error_type: str | None = None
        #: Nanoseconds between consecutive stream chunks (filled by the stream proxy).
        self.chunk_gaps: list[int] | None = [] if metrics is not None else None

    @classmethod
    def start(
        cls,
        tracer: trace_api.Tracer,
        request: Request,
        *,
        content: ContentConfig | None = None,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.CLIENT,
        name: str | None = None,
    ) -> Invocation | None:
        """Start the span (a CLIENT child of the current context unless told otherwise:
        frameworks pass their run's parent ``context``, ``INTERNAL`` and the run's ``name``);
        None if that fails."""
        try:
            attributes = request.span_attributes()
            span = tracer.start_span(
                name or request.span_name(), context=context, kind=kind, attributes=attributes
            )
            metrics = metrics_for(tracer)
            metric_attrs: dict[str, AttributeValue] | None = (
                None
                if metrics is None
                else {k: attributes[k] for k in METRIC_KEYS if k in attributes}
            )
            return cls(
                span, content if content is not None else content_config(), metrics, metric_attrs
            )
        except Exception:
            _logger.debug("spanlake could not start a GenAI span", exc_info=True)
            return None

    # --- running the wrapped call ------------------------------------------------------
    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with the span current; on error the span fails and ends
        and the app's exception propagates unchanged. The span stays open on success."""
        token = _attach(self.span)
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            _detach(token)

    async def run_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Async twin of :meth:`run` (the span is current for the awaited call)."""
        token = _attach(self.span)
        try:
            return await fn(*args, **kwargs)
        except BaseException as exc:
            self.fail(exc)
            raise
        finally:
            _detach(token)

    # --- content --------------------------------------------------------------------------
    @property
    def captures_content(self) -> bool:
        """Whether providers should build content at all (skip the work when False)."""
        return self.content.enabled

    @contained
    def record_input(
        self,
        *,
        messages: list[Message] | None = None,
        system: list[Part] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record request content (already in the parts schema) per the capture mode."""
        if not self.content.enabled:
            return
        out: dict[str, AttributeValue] = {}
        if messages is not None:
            self._content(out, ga.INPUT_MESSAGES, messages)
        if system:
            self._content(out, ga.SYSTEM_INSTRUCTIONS, system)
        if tools:
            self._content(out, ga.TOOL_DEFINITIONS, tools)
        if out:
            self.span.set_attributes(out)

    def _content(self, out: dict[str, AttributeValue], key: str, value: Any) -> None:
        """Encode one content value (capped) into ``out`` and/or the pending event."""
        # The budget-filling encoder: the cap applies to the whole value (a 400 KB prompt
        # under a 128 KiB cap keeps ~128 KiB), in time bounded by the cap.
        text, original = capture(value, self.content.max_bytes)
        if original is not None:
            if self._truncated is None:
                self._truncated = []
            self._truncated.append(f"{key}:{original}")
            out[TRUNCATED] = list(self._truncated)
        if self.content.on_span:
            out[key] = text
        if self.content.on_event:
            if self._event_attrs is None:
                self._event_attrs = {}
            self._event_attrs[key] = text

    # --- streams --------------------------------------------------------------------------
    @contained
    def mark_first_chunk(self) -> None:
        """Record ``gen_ai.response.time_to_first_chunk`` (seconds since start) once."""
        if self._first_chunk_ns is None:
            self._first_chunk_ns = time.monotonic_ns()
            ttfc = (self._first_chunk_ns - self._start_ns) / 1e9
            self.span.set_attribute(ga.RESPONSE_TIME_TO_FIRST_CHUNK, ttfc)

    # --- ending ---------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self._ended

    @contained
    def set_response(self, response: Response) -> None:
        """Set response attributes and output content (the span stays open)."""
        out: dict[str, AttributeValue] = {}
        if response.id:
            out[ga.RESPONSE_ID] = response.id
        if response.model:
            out[ga.RESPONSE_MODEL] = response.model
        reasons = _str_list(response.finish_reasons)
        if reasons:
            out[ga.RESPONSE_FINISH_REASONS] = reasons
        if response.usage is not None:
            out.update(response.usage.attributes())
            self._usage = response.usage
        if response.model:
            self._response_model = response.model
        if response.attributes:
            out.update(response.attributes)
        if response.output_messages is not None and self.content.enabled:
            self._content(out, ga.OUTPUT_MESSAGES, response.output_messages)
        # One call, one lock: each SDK set_attribute takes the span's lock separately.
        self.span.set_attributes(out)

    def finish(self, response: Response | None = None) -> None:
        """Record ``response`` (if any) and end the span with status OK-by-default; once only."""
        if self.ended:
            return
        if response is not None:
            self.set_response(response)
        self.end()

    @contained
    def fail(self, exc: BaseException, error_type: str | None = None) -> None:
        """Mark the span as failed by ``exc`` (status ERROR, ``error.type``, exception event) and end it."""
        if self.ended:
            return
        span = self.span
        self._error_type = error_type or error_type_of(exc)
        span.set_attribute(ga.ERROR_TYPE, self._error_type)
        span.record_exception(exc, escaped=True)
        span.set_status(Status(StatusCode.ERROR, str(exc)[:1024] or type(exc).__name__))
        self.end()

    @contained
    def end(self) -> None:
        """End the span exactly once (later calls, from any thread, do nothing)."""
        if not self._end_lock.acquire(blocking=False):
            return
        self._ended = True
        if self._event_attrs:
            self.span.add_event(ga.EVENT_CLIENT_INFERENCE_OPERATION_DETAILS, self._event_attrs)
        self.span.end()
        if self.metrics is not None:
            self._record_metrics(self.metrics)

    @contained
    def _record_metrics(self, metrics: ClientMetrics) -> None:
        now = time.monotonic_ns()
        first = self._first_chunk_ns
        metrics.record(
            self._metric_attrs or {},
            duration_s=(now - self._start_ns) / 1e9,
            error_type=self._error_type,
            response_model=self._response_model,
            usage=self._usage,
            first_chunk_s=None if first is None else (first - self._start_ns) / 1e9,
            chunk_gaps_ns=self.chunk_gaps,
        )


def _attach(span: trace_api.Span) -> object | None:
    try:
        return context_api.attach(trace_api.set_span_in_context(span))
    except Exception:
        return None


def _detach(token: object | None) -> None:
    if token is not None:
        try:
            context_api.detach(token)  # type: ignore[arg-type]
        except Exception:
            pass
