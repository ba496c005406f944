"""Read every GenAI attribute dialect into one: OTel GenAI plus spanlake's keys.

``normalize(span_attributes)`` returns a new dict holding the original attributes plus the
OTel GenAI keys (:mod:`spanlake.semconv.gen_ai`) and spanlake's keys
(:mod:`spanlake.semconv.spanlake_attrs`) filled in from whichever other dialect the span
speaks: OpenInference, OpenLLMetry (Traceloop) legacy, MLflow, and older/newer OTel GenAI
names. Keys already present in OTel GenAI / spanlake form win; among dialects the first
in :data:`DIALECTS` to fill a key wins.

Each dialect is a declarative table (:class:`~._table.Dialect`) recognised by its marker
keys, so the common case, a span in current OTel form or with no GenAI keys at all, costs
one dict copy and two C-level ``isdisjoint`` checks over its keys. Last, input tokens are
made inclusive of cached tokens where a producer provably left them out (:mod:`._usage`),
whatever the dialect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from spanlake.semconv.dialects import mlflow, openinference, openllmetry, otel_genai
from spanlake.semconv.dialects._table import Dialect, PrefixRename, Rename, apply
from spanlake.semconv.dialects._usage import CACHE_KEYS, make_input_inclusive

__all__ = ["DIALECTS", "Dialect", "PrefixRename", "Rename", "detect", "normalize"]

#: Applied in this order; the first dialect to fill a key wins. MLflow first: its span
#: type and inputs are explicit choices of the user. The OTel-names table runs before
#: OpenLLMetry because both read the shared legacy usage names and it owns them.
DIALECTS: Final[tuple[Dialect, ...]] = (
    mlflow.DIALECT,
    openinference.DIALECT,
    otel_genai.DIALECT,
    openllmetry.DIALECT,
)

_ALL_MARKERS: Final = frozenset().union(*(d.markers for d in DIALECTS))


def detect(attributes: Mapping[str, Any]) -> list[str]:
    """Names of the dialects ``attributes`` carries (for diagnostics and tests)."""
    keys = attributes.keys()
    return [d.name for d in DIALECTS if not keys.isdisjoint(d.markers)]


def normalize(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes plus their OTel GenAI / spanlake equivalents. Never raises."""
    out = dict(attributes)
    keys = out.keys()
    if not keys.isdisjoint(_ALL_MARKERS):
        src = dict(out)  # the tables read the originals, never their own output
        for dialect in DIALECTS:
            if src.keys().isdisjoint(dialect.markers):
                continue
            try:
                apply(dialect, src, out)
            except Exception:  # a malformed span must never stop ingest
                continue
    if not keys.isdisjoint(CACHE_KEYS):
        make_input_inclusive(out)
    return out
