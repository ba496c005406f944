"""The ``langchain-core`` versions this instrumentation supports (checked by ``BaseInstrumentor``)."""

from __future__ import annotations

# 0.3 is the first line with ``tool_call_id`` on tool callbacks and copied step contexts.
_instruments = ("langchain-core >= 0.3",)
