"""spanlake's exporter side: OTel spans -> tracking model -> experiment stores.

- :class:`SpanlakeSpanExporter`: the OTel ``SpanExporter`` (entry point ``spanlake``).
- :mod:`spanlake.exporter.mapping`: pure span -> :class:`~spanlake.exporter.records.SpanRecord`.
- :mod:`spanlake.exporter.rollup`: a trace's spans -> its trace record.
- :mod:`spanlake.exporter.store`: the store interface and its SQLite / Parquet / Delta backends.
- :mod:`spanlake.exporter.receiver`: the OTLP receiver behind ``spanlake serve``.

The query API for users is :mod:`spanlake.query`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spanlake.exporter.exporter import SpanlakeSpanExporter

__all__ = ["SpanlakeSpanExporter"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so the light modules here (pricing, records) import without
    # the exporter's SDK machinery: the instrumentations price calls with them.
    if name == "SpanlakeSpanExporter":
        from spanlake.exporter.exporter import SpanlakeSpanExporter

        return SpanlakeSpanExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
