"""The anthropic SDK versions this instrumentation supports (the oldest is tested too)."""

_instruments = ("anthropic >= 0.40",)
