"""spanlake's exporter side: OTel spans -> tracking model -> experiment stores.

- :class:`SpanlakeSpanExporter`: the OTel ``SpanExporter`` (entry point ``spanlake``).
- :mod:`spanlake.exporter.mapping`: pure span -> :class:`~spanlake.exporter.records.SpanRecord`.
- :mod:`spanlake.exporter.rollup`: a trace's spans -> its trace record.
- :mod:`spanlake.exporter.store`: the store interface and its SQLite / Parquet / Delta backends.
- :mod:`spanlake.exporter.receiver`: the OTLP receiver behind ``spanlake serve``.

The query API for users is :mod:`spanlake.query`.
"""

from spanlake.exporter.exporter import SpanlakeSpanExporter

__all__ = ["SpanlakeSpanExporter"]
