"""spanlake's semantic conventions: the attribute names and JSON shapes we emit and read.

- :mod:`spanlake.semconv.gen_ai`: OTel GenAI semantic-convention keys and value enums
  (v1.41 floor plus the newer experimental names).
- :mod:`spanlake.semconv.spanlake_attrs`: spanlake's few extra keys (span type,
  inputs/outputs, trace-level tags/metadata, experiment).
- :mod:`spanlake.semconv.span_type`: the MLflow-style ``SpanType`` and its mapping to
  ``gen_ai.operation.name``.

We keep our own typed constants because the PyPI semconv package deprecates its GenAI
constants and lacks the newer names.
"""
