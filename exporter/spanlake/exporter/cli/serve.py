"""``spanlake serve``: run the OTLP receiver (gRPC 4317, HTTP 4318) in front of a store."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from typing import Any

from spanlake.exporter.errors import ConfigError

ENV_STORE = "SPANLAKE_STORE"
ENV_EXPERIMENT = "SPANLAKE_EXPERIMENT"
DEFAULT_STORE = "sqlite:///spanlake.db"

_DESCRIPTION = "Run the OTLP receiver (gRPC 4317, HTTP 4318) in front of a store: spans are\nacknowledged once durable in the store (or in the write-ahead log, with --wal-dir)."
_EPILOG = """\
Point any OTLP exporter at it, e.g.
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
Send `x-spanlake-experiment: NAME` (header / metadata) to choose the experiment.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=None,
        help=f"store URI (default ${ENV_STORE} or {DEFAULT_STORE})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--grpc-port", type=int, default=4317, help="OTLP/gRPC port (0: any free)")
    parser.add_argument("--http-port", type=int, default=4318, help="OTLP/HTTP port (0: any free)")
    parser.add_argument("--no-grpc", action="store_true", help="do not serve OTLP/gRPC")
    parser.add_argument("--no-http", action="store_true", help="do not serve OTLP/HTTP")
    parser.add_argument(
        "--experiment",
        default=None,
        help=f"experiment of spans that name none (default ${ENV_EXPERIMENT} or Default)",
    )
    parser.add_argument(
        "--auth-token-file", help="require 'Authorization: Bearer <token in this file>'"
    )
    parser.add_argument(
        "--auth-metrics",
        action="store_true",
        help="also require the --auth-token-file token on GET /health and /metrics (and the "
        "gRPC health check); off by default, for probes and scrapers without a token",
    )
    parser.add_argument("--tls-cert", help="PEM certificate (enables TLS on both ports)")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    limits = parser.add_argument_group("limits (bounded memory)")
    limits.add_argument(
        "--max-request-mib", type=float, default=16, help="largest request, wire and decompressed"
    )
    limits.add_argument(
        "--max-inflight-requests", type=int, default=32, help="requests worked on at once"
    )
    limits.add_argument(
        "--max-inflight-mib", type=float, default=128, help="bytes of requests worked on at once"
    )
    limits.add_argument("--max-connections", type=int, default=256, help="open HTTP connections")
    limits.add_argument(
        "--retry-after", type=int, default=1, help="seconds clients are told to wait when busy"
    )
    wal = parser.add_argument_group("write-ahead log (large store commits for any sender)")
    wal.add_argument(
        "--wal-dir",
        help="acknowledge once a request is fsynced to a log here; store it in large batches "
        "in the background (replayed after a crash). Off by default: acknowledge once stored",
    )
    wal.add_argument(
        "--wal-linger-ms",
        type=float,
        default=1000,
        help="how long the writer waits to fill a batch (default 1000; rows become visible "
        "in the store this much later)",
    )
    wal.add_argument(
        "--wal-max-queued-spans",
        type=int,
        default=32768,
        help="acknowledged spans held in memory until stored (past it: 429 / retry later)",
    )
    wal.add_argument(
        "--replay-quarantine",
        action="store_true",
        help="do not serve: retry the requests the store once refused for good "
        "(quarantine-*.wal files under --wal-dir) into --store, delete each once stored, "
        "and exit (0: all stored, 1: some still refused and kept)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the OTLP receiver (gRPC 4317, HTTP 4318)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from spanlake.exporter.receiver import Receiver, ReceiverConfig
    from spanlake.exporter.receiver._auth import load_token
    from spanlake.exporter.redaction import load_redactors
    from spanlake.exporter.store import open_store

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    mib = 1024 * 1024
    try:
        if args.auth_metrics and not args.auth_token_file:
            raise ConfigError("--auth-metrics needs --auth-token-file")
        if bool(args.tls_cert) != bool(args.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        config = ReceiverConfig(
            host=args.host,
            grpc_port=None if args.no_grpc else args.grpc_port,
            http_port=None if args.no_http else args.http_port,
            default_experiment=args.experiment or os.environ.get(ENV_EXPERIMENT) or "Default",
            auth_token=load_token(args.auth_token_file) if args.auth_token_file else None,
            auth_metrics=args.auth_metrics,
            tls_cert_file=args.tls_cert,
            tls_key_file=args.tls_key,
            max_request_bytes=int(args.max_request_mib * mib),
            max_inflight_requests=args.max_inflight_requests,
            max_inflight_bytes=int(args.max_inflight_mib * mib),
            max_connections=args.max_connections,
            retry_after_s=args.retry_after,
            wal_dir=args.wal_dir,
            wal_linger_s=args.wal_linger_ms / 1000,
            wal_max_queued_spans=args.wal_max_queued_spans,
            redactors=tuple(load_redactors()),  # one that cannot load: refuse to start
        )
        if args.replay_quarantine and not args.wal_dir:
            raise ConfigError("--replay-quarantine needs the --wal-dir of the receiver")
        store = open_store(args.store or os.environ.get(ENV_STORE) or DEFAULT_STORE)
    except (ConfigError, ValueError) as exc:
        print(f"spanlake serve: {exc}", file=sys.stderr)
        return 2
    if args.replay_quarantine:
        return _replay_quarantine(store, config, args.wal_dir)
    receiver = Receiver(store, config)
    # From the first bound port on, SIGTERM means a graceful stop: a signal that arrived
    # before serve_forever installed its handler used to kill the process outright.
    wake = threading.Event()
    early = {
        sig: signal.signal(sig, lambda _sig, _frame: wake.set())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        receiver.start()
    except OSError as exc:
        print(f"spanlake serve: {exc}", file=sys.stderr)
        return 1
    scheme = "https" if config.tls_cert_file else "http"
    parts = []
    if receiver.grpc_port is not None:
        parts.append(f"OTLP/gRPC {scheme}://{config.host}:{receiver.grpc_port}")
    if receiver.http_port is not None:
        parts.append(f"OTLP/HTTP {scheme}://{config.host}:{receiver.http_port}/v1/traces")
    print(f"spanlake serve: {', '.join(parts)} -> {store.uri}", flush=True)
    _tune_gc()
    try:
        receiver.serve_forever(wake)
    finally:
        for sig, handler in early.items():
            signal.signal(sig, handler)
    return 0


def _replay_quarantine(store: Any, config: Any, wal_dir: str) -> int:
    from spanlake.exporter.receiver._quarantine import replay_quarantine

    try:
        report = replay_quarantine(store, config, wal_dir)
    finally:
        store.close()
    print(
        f"spanlake serve --replay-quarantine: {report.files} file(s), {report.requests} "
        f"request(s), {report.spans} span(s) stored ({report.new_spans} new)"
        + (f"; {len(report.failed)} still refused and kept" if report.failed else ""),
        flush=True,
    )
    for path, reason in report.failed.items():
        print(f"  {path}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0


def _tune_gc() -> None:
    """Ingest allocates ~100 short-lived, acyclic objects per span (protobuf wrappers, dicts);
    the default gen-0 threshold (700) then runs the cycle collector thousands of times a
    second, ~15% of a span's CPU. Freeze what start-up loaded (never collectable) and collect
    less often; memory stays bounded because these objects are freed by refcounting."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m spanlake.exporter.receiver``)."""
    parser = argparse.ArgumentParser(
        prog="spanlake serve",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    return handler(parser.parse_args(argv))
