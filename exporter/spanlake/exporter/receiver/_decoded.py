"""What both OTLP decoders produce: the valid spans, and why the others were rejected."""

from __future__ import annotations

from dataclasses import dataclass, field

from spanlake.exporter.mapping import SpanInput

#: At most this many distinct reasons are echoed in ``partial_success.error_message``.
MAX_MESSAGES = 5

KINDS = ("INTERNAL", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
ZERO_TRACE = "0" * 32
ZERO_SPAN = "0" * 16


@dataclass(slots=True)
class Decoded:
    spans: list[SpanInput] = field(default_factory=list)
    rejected: int = 0
    messages: list[str] = field(default_factory=list)

    def reject(self, message: str, count: int = 1) -> None:
        self.rejected += count
        if len(self.messages) < MAX_MESSAGES and message not in self.messages:
            self.messages.append(message)

    @property
    def error_message(self) -> str:
        return "; ".join(self.messages)


#: Timestamps must fit a signed 64-bit integer (every store's integer column).
MAX_TIME_NS = 2**63 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def bad_times(start: int, end: int) -> str | None:
    if not 0 <= start <= MAX_TIME_NS or not 0 <= end <= MAX_TIME_NS:
        return f"invalid timestamps {start}/{end}: must be below 2**63 ns"
    return None


def bad_ids(trace_id: str, span_id: str, parent: str | None) -> str | None:
    """Why a span's (hex) ids are unusable, or None when they are fine."""
    if len(trace_id) != 32 or trace_id == ZERO_TRACE:
        return f"invalid trace id {trace_id[:64]!r}: expected 16 non-zero bytes"
    if len(span_id) != 16 or span_id == ZERO_SPAN:
        return f"invalid span id {span_id[:64]!r}: expected 8 non-zero bytes"
    if parent is not None and len(parent) != 16:
        return f"invalid parent span id {parent[:64]!r}: expected 8 bytes or empty"
    return None
