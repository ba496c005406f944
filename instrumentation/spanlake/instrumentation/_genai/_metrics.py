"""GenAI client metrics: the conventions' four histograms and our cost counter.

Each instrumentor binds one :class:`ClientMetrics` to its tracer at ``instrument()`` time
(:func:`bind`: the ``meter_provider`` it was given, else the global one, so
``OTEL_METRICS_EXPORTER`` works zero-code). :class:`~._invocation.Invocation` looks it up
when a call starts and records once, when the call's span ends, so every provider that
goes through the lifecycle reports the same metrics with the same attributes and no
provider wrapper knows about them.

Attributes are the conventions' low-cardinality set: operation, provider, request and
response model, server address and port, and ``error.type`` on failed calls (duration
and stream timings only; token usage and cost are recorded for what was used).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import metrics as metrics_api
from opentelemetry.util.types import AttributeValue

from spanlake.semconv import gen_ai as ga
from spanlake.semconv.spanlake_attrs import METRIC_CLIENT_COST

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from ._invocation import Usage

_logger = logging.getLogger("spanlake.instrumentation")
_SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.37.0"
#: Most chunk gaps one stream keeps for ``time_per_output_chunk`` (bounded memory).
MAX_CHUNK_GAPS: Final = 8192
#: The request attributes that go on every measurement.
METRIC_KEYS: Final = (
    ga.OPERATION_NAME,
    ga.PROVIDER_NAME,
    ga.REQUEST_MODEL,
    ga.SERVER_ADDRESS,
    ga.SERVER_PORT,
)


class ClientMetrics:
    """The instruments of one instrumentor (created once, recorded from any thread)."""

    __slots__ = ("cost", "duration", "time_per_chunk", "time_to_first_chunk", "token_usage")

    def __init__(self, meter: metrics_api.Meter) -> None:
        def histogram(name: str, unit: str, description: str, bounds: Sequence[float]) -> Any:
            return meter.create_histogram(
                name, unit=unit, description=description,
                explicit_bucket_boundaries_advisory=list(bounds),
            )  # fmt: skip

        self.token_usage = histogram(
            ga.METRIC_CLIENT_TOKEN_USAGE, "{token}", "Number of input and output tokens used.",
            ga.TOKEN_USAGE_BUCKETS,
        )  # fmt: skip
        self.duration = histogram(
            ga.METRIC_CLIENT_OPERATION_DURATION, "s", "GenAI operation duration.",
            ga.DURATION_BUCKETS,
        )  # fmt: skip
        self.time_to_first_chunk = histogram(
            ga.METRIC_CLIENT_TIME_TO_FIRST_CHUNK, "s",
            "Time to receive the first chunk of a streamed response.", ga.DURATION_BUCKETS,
        )  # fmt: skip
        self.time_per_chunk = histogram(
            ga.METRIC_CLIENT_TIME_PER_OUTPUT_CHUNK, "s",
            "Time between consecutive chunks of a streamed response.", ga.CHUNK_GAP_BUCKETS,
        )  # fmt: skip
        self.cost = meter.create_counter(
            METRIC_CLIENT_COST,
            unit="USD",
            description="Cost of GenAI calls by model, from spanlake's price table.",
        )

    def record(
        self,
        attributes: dict[str, AttributeValue],
        *,
        duration_s: float,
        error_type: str | None,
        response_model: str | None,
        usage: Usage | None,
        first_chunk_s: float | None,
        chunk_gaps_ns: Sequence[int] | None,
    ) -> None:
        """Record one finished call (``attributes``: its :data:`METRIC_KEYS` values)."""
        attrs = dict(attributes)
        if response_model:
            attrs[ga.RESPONSE_MODEL] = response_model
        if usage is not None:
            # The conventions' input count is the billable prompt: cache reads included.
            for kind, count in (
                (ga.TOKEN_TYPE_INPUT, usage.total_input_tokens()),
                (ga.TOKEN_TYPE_OUTPUT, usage.output_tokens),
            ):
                if count is not None:
                    self.token_usage.record(count, {**attrs, ga.TOKEN_TYPE: kind})
            model = response_model or attributes.get(ga.REQUEST_MODEL)
            cost = _cost(str(model) if model else None, usage)
            if cost is not None:
                self.cost.add(cost, attrs)
        if error_type is not None:
            attrs[ga.ERROR_TYPE] = error_type
        self.duration.record(duration_s, attrs)
        if first_chunk_s is not None:
            self.time_to_first_chunk.record(first_chunk_s, attrs)
        if chunk_gaps_ns:
            record_gap = self.time_per_chunk.record
            for gap in chunk_gaps_ns:
                record_gap(gap / 1e9, attrs)


_bound: weakref.WeakKeyDictionary[Any, ClientMetrics] = weakref.WeakKeyDictionary()


def bind(tracer: Tracer, name: str, meter_provider: metrics_api.MeterProvider | None) -> None:
    """Give ``tracer``'s calls their instruments (an instrumentor's ``_instrument``)."""
    try:
        meter = metrics_api.get_meter(name, meter_provider=meter_provider, schema_url=_SCHEMA_URL)
        _bound[tracer] = ClientMetrics(meter)
    except Exception:
        _logger.debug("spanlake could not create GenAI metrics", exc_info=True)


def metrics_for(tracer: Any) -> ClientMetrics | None:
    """The instruments bound to ``tracer`` (None: this tracer records no metrics)."""
    try:
        return _bound.get(tracer)
    except TypeError:  # a tracer that cannot be weakly referenced was never bound
        return None


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _cost(model: str | None, usage: Usage) -> float | None:
    """USD for ``usage`` at ``model``'s price; None (and one warning per model) if unpriced."""
    from spanlake.exporter.pricing import price_for  # the trace cost's table, loaded on use
    from spanlake.exporter.records import TokenUsage

    price = price_for(model) if model else None
    if price is None:
        key = model or "<no model>"
        with _warned_lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            _logger.warning(
                "spanlake: no price for model %r: spanlake.client.cost leaves its calls out "
                "(add one with spanlake.exporter.pricing.register_price or SPANLAKE_PRICES_FILE)",
                key,
            )
        return None
    return price.cost(
        TokenUsage(
            input_tokens=usage.total_input_tokens() or 0,
            output_tokens=usage.output_tokens or 0,
            cache_read_input_tokens=usage.cache_read_input_tokens or 0,
            cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        )
    )
