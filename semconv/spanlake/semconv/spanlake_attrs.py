"""spanlake's own span attribute keys: the few things OTel has no name for.

They ride on ordinary OTel span attributes, so a span exported anywhere (Jaeger, OTLP)
still carries them, and the exporter/receiver read them back into the tracking model.

Trace-level fields are set on whichever span is current when
``update_current_trace`` runs; the roll-up merges them over all spans of a trace
(later-starting spans win on conflicts), so they survive out-of-order arrival.
"""

from __future__ import annotations

from typing import Final

SPAN_TYPE: Final = "spanlake.span.type"
#: JSON text of the span's inputs (bound arguments of a traced function, request payload).
SPAN_INPUTS: Final = "spanlake.span.inputs"
#: JSON text of the span's outputs (return value, aggregated generator items).
SPAN_OUTPUTS: Final = "spanlake.span.outputs"
#: Attribute names whose value was cut to the size cap, as ``"key:original_bytes"`` strings.
TRUNCATED: Final = "spanlake.truncated"

#: Prefix of one trace tag: ``spanlake.trace.tag.<key>`` = str value (mutable later in the store).
TRACE_TAG_PREFIX: Final = "spanlake.trace.tag."
#: Prefix of one trace metadata entry: ``spanlake.trace.metadata.<key>`` = str value.
TRACE_METADATA_PREFIX: Final = "spanlake.trace.metadata."
TRACE_CLIENT_REQUEST_ID: Final = "spanlake.trace.client_request_id"

#: Experiment routing: a span or resource attribute naming the experiment.
EXPERIMENT: Final = "spanlake.experiment"

# Standard OTel keys that become trace metadata (``metadata.user``, ``metadata.session``).
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"
METADATA_USER: Final = "user"
METADATA_SESSION: Final = "session"

#: Resource attribute of the emitting service.
SERVICE_NAME: Final = "service.name"

#: Metric: USD spent on GenAI calls (a counter, by model), from the same price table as
#: the trace cost; calls to a model without a price are left out and warned about once.
METRIC_CLIENT_COST: Final = "spanlake.client.cost"
#: Trace metadata key set to ``"true"`` when some token usage in the trace has no price,
#: so ``cost_usd`` is a lower bound rather than the whole cost.
COST_PARTIAL: Final = "spanlake.cost.partial"
