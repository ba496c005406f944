"""The botocore versions this instrumentation supports (Converse arrived in 1.34.116)."""

_instruments = ("botocore >= 1.34.116",)
