"""The receiver's own counters, rendered as Prometheus text on ``GET /metrics``.

Plain integers behind one lock rather than the OTel metrics SDK: the receiver must not
trace or meter itself through a global provider, and scraping needs no exporter.
"""

from __future__ import annotations

import threading
from collections import Counter

_HELP = {
    "spans_received_total": ("counter", "Spans decoded from export requests."),
    "spans_stored_total": ("counter", "Spans newly written to the store (durable)."),
    "spans_duplicate_total": ("counter", "Spans acknowledged that the store already had."),
    "spans_rejected_total": ("counter", "Spans rejected as invalid (partial success)."),
    "store_errors_total": ("counter", "Failed store writes (transient or not)."),
    "requests_quarantined_total": (
        "counter",
        "Logged requests the store refused for good, kept as quarantine-*.wal files.",
    ),
    "spans_quarantined_total": ("counter", "Spans in the quarantined requests."),
    "inflight_requests": ("gauge", "Export requests being decoded or written."),
    "inflight_bytes": ("gauge", "Bytes of export requests being decoded or written."),
    "write_queue_spans": ("gauge", "Spans waiting for the store writer."),
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans_received = 0
        self.spans_stored = 0
        self.spans_duplicate = 0
        self.spans_rejected = 0
        self.store_errors = 0
        self.requests_quarantined = 0
        self.spans_quarantined = 0
        self.requests: Counter[tuple[str, str]] = Counter()
        # Gauges, owned by the gate and the writer (read without the lock).
        self.inflight_requests = 0
        self.inflight_bytes = 0
        self.write_queue_spans = 0

    def count_request(self, transport: str, code: str) -> None:
        with self._lock:
            self.requests[(transport, code)] += 1

    def count_spans(self, received: int, rejected: int) -> None:
        with self._lock:
            self.spans_received += received
            self.spans_rejected += rejected

    def count_write(self, spans: int, new: int) -> None:
        with self._lock:
            self.spans_stored += new
            self.spans_duplicate += spans - new

    def count_store_error(self) -> None:
        with self._lock:
            self.store_errors += 1

    def count_quarantined(self, spans: int) -> None:
        with self._lock:
            self.requests_quarantined += 1
            self.spans_quarantined += spans

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        values = {
            "spans_received_total": self.spans_received,
            "spans_stored_total": self.spans_stored,
            "spans_duplicate_total": self.spans_duplicate,
            "spans_rejected_total": self.spans_rejected,
            "store_errors_total": self.store_errors,
            "requests_quarantined_total": self.requests_quarantined,
            "spans_quarantined_total": self.spans_quarantined,
            "inflight_requests": self.inflight_requests,
            "inflight_bytes": self.inflight_bytes,
            "write_queue_spans": self.write_queue_spans,
        }
        lines: list[str] = []
        for name, value in values.items():
            kind, text = _HELP[name]
            lines += [
                f"# HELP spanlake_receiver_{name} {text}",
                f"# TYPE spanlake_receiver_{name} {kind}",
                f"spanlake_receiver_{name} {value}",
            ]
        lines += [
            "# HELP spanlake_receiver_requests_total Export requests by transport and outcome.",
            "# TYPE spanlake_receiver_requests_total counter",
        ]
        with self._lock:
            requests = sorted(self.requests.items())
        for (transport, code), count in requests:
            lines.append(
                f'spanlake_receiver_requests_total{{transport="{transport}",code="{code}"}} {count}'
            )
        return "\n".join(lines) + "\n"
