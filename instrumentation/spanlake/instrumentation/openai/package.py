"""The ``openai`` versions this instrumentation supports (checked by ``BaseInstrumentor``)."""

from __future__ import annotations

# The Responses API (``client.responses``) appeared in 1.66; chat and embeddings are older.
_instruments = ("openai >= 1.66.0",)
