"""The receiver's settings: ports, limits, auth and TLS, in one frozen dataclass.

Every limit exists to keep memory bounded under any load: a request is at most
``max_request_bytes`` on the wire *and* after decompression, at most
``max_inflight_requests`` requests / ``max_inflight_bytes`` bytes are being decoded or
written at once (the rest are answered 429 / ``UNAVAILABLE`` with a retry delay), and the
HTTP side holds at most ``max_connections`` connections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    #: 0 picks a free port (tests); None disables that protocol.
    grpc_port: int | None = 4317
    http_port: int | None = 4318
    default_experiment: str = "Default"
    #: Bearer token required on every export when set (``Authorization: Bearer <token>``).
    auth_token: str | None = None
    #: Also require the token on ``GET /health`` and ``GET /metrics`` (and the gRPC health
    #: check). Off by default: probes and scrapers usually carry no token.
    auth_metrics: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    max_request_bytes: int = 16 * MIB
    max_inflight_requests: int = 32
    max_inflight_bytes: int = 128 * MIB
    max_connections: int = 256
    #: Seconds a client is told to wait (Retry-After / RetryInfo) when overloaded.
    retry_after_s: int = 1
    #: Largest number of spans the writer commits in one store call (group commit).
    max_write_batch_spans: int = 8192
    #: Write-ahead log directory: acknowledge once logged and fsynced, store in large
    #: batches in the background (see ``_wal``). None: acknowledge once in the store.
    wal_dir: str | None = None
    #: Log mode: how long the writer waits for a full batch after the oldest request.
    wal_linger_s: float = 1.0
    #: Log mode: spans acknowledged but not yet stored, held in memory (past it: 429).
    wal_max_queued_spans: int = 32768
    grpc_workers: int = 16
    #: Idle / slow-client socket timeout of HTTP connections.
    http_timeout_s: float = 30.0
    #: Seconds to let in-flight requests finish on shutdown.
    drain_timeout_s: float = 10.0
    #: PII redactors (``spanlake.exporter.redaction``) applied to every span before it is
    #: stored; None loads the ``spanlake_redactors`` entry points and ``SPANLAKE_REDACTOR``.
    redactors: tuple[Callable[[str], str], ...] | None = None

    def __post_init__(self) -> None:
        if self.auth_metrics and not self.auth_token:
            raise ValueError("auth_metrics needs an auth token")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both a certificate and a key file")
        for name in ("max_request_bytes", "max_inflight_requests", "max_inflight_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.wal_linger_s < 0 or self.wal_max_queued_spans <= 0:
            raise ValueError("wal_linger_s must be >= 0 and wal_max_queued_spans positive")
        if self.max_inflight_bytes < self.max_request_bytes:
            raise ValueError("max_inflight_bytes must be at least max_request_bytes")
