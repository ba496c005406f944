"""OTLP/gRPC: ``TraceService/Export`` and the standard health check.

The handler takes the raw request bytes (no deserializer) so a malformed message is our
``INVALID_ARGUMENT`` rather than grpcio's ``INTERNAL``. ``maximum_concurrent_rpcs`` is
not used (it answers a bare ``RESOURCE_EXHAUSTED`` that collectors drop for good): the
ingest gate refuses excess work with ``UNAVAILABLE`` and a ``RetryInfo``, carried both in
the rich status (``grpc-status-details-bin``) and in the ``google.rpc.retryinfo-bin``
trailer that the Python OTLP exporter reads. HTTP/2 ``max_concurrent_streams`` bounds how
many calls one connection can queue.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from spanlake.exporter.receiver import _protobuf
from spanlake.exporter.receiver._auth import TokenAuth
from spanlake.exporter.receiver._config import ReceiverConfig
from spanlake.exporter.receiver._errors import InternalError, ReceiverError
from spanlake.exporter.receiver._ingest import Ingestor

logger = logging.getLogger(__name__)

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
HEALTH_SERVICE = "grpc.health.v1.Health"
EXPERIMENT_HEADER = "x-spanlake-experiment"
#: ``HealthCheckResponse{status: SERVING}`` (field 1, varint 1), to avoid a dependency.
_SERVING = b"\x08\x01"
_NOT_SERVING = b"\x08\x02"


def _abort(context: grpc.ServicerContext, error: ReceiverError) -> NoReturn:
    code = error.grpc_code
    status = status_pb2.Status(code=code.value[0], message=error.message)
    trailers: list[tuple[str, bytes]] = []
    if error.retry_after_s is not None:
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=error.retry_after_s)
        )
        detail = any_pb2.Any()
        detail.Pack(info)
        status.details.append(detail)
        trailers.append(("google.rpc.retryinfo-bin", info.SerializeToString()))
    trailers.append(("grpc-status-details-bin", status.SerializeToString()))
    context.set_trailing_metadata(trailers)
    context.abort(code, error.message)
    raise AssertionError("grpc.ServicerContext.abort returned")  # pragma: no cover


class _TraceService:
    def __init__(self, ingestor: Ingestor, auth: TokenAuth) -> None:
        self._ingestor = ingestor
        self._auth = auth
        self._metrics = ingestor.metrics

    def export(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        try:
            self._auth.check(metadata.get("authorization"))
            outcome = self._ingestor.export(
                "protobuf", request, experiment=metadata.get(EXPERIMENT_HEADER)
            )
        except ReceiverError as error:
            self._metrics.count_request("grpc", error.grpc_code.name)
            _abort(context, error)
        except Exception as exc:
            logger.exception("unexpected error in gRPC export")
            self._metrics.count_request("grpc", "INTERNAL")
            _abort(context, InternalError(f"internal error: {type(exc).__name__}"))
        self._metrics.count_request("grpc", "OK")
        return _protobuf.encode_response(outcome.rejected, outcome.message)


def _health(serving: Any, auth: TokenAuth | None) -> Any:
    """The health check; behind the bearer token too when ``auth`` is given."""

    def check(request: bytes, context: grpc.ServicerContext) -> bytes:
        if auth is not None:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            try:
                auth.check(metadata.get("authorization"))
            except ReceiverError as error:
                _abort(context, error)
        return _SERVING if serving() else _NOT_SERVING

    return check


def make_server(
    config: ReceiverConfig, ingestor: Ingestor, auth: TokenAuth, serving: Any
) -> tuple[grpc.Server, int]:
    """A bound, not yet started, gRPC server and its port."""
    options = [
        ("grpc.max_receive_message_length", config.max_request_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.max_concurrent_streams", max(config.max_inflight_requests, 8)),
        # Fail loudly if the port is taken instead of silently sharing it.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(
        ThreadPoolExecutor(max_workers=config.grpc_workers, thread_name_prefix="spanlake-grpc"),
        options=options,
    )
    service = _TraceService(ingestor, auth)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                TRACE_SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(service.export)}
            ),
            grpc.method_handlers_generic_handler(
                HEALTH_SERVICE, {
                    "Check": grpc.unary_unary_rpc_method_handler(
                        _health(serving, auth if config.auth_metrics else None)
                    )
                }
            ),
        )
    )
    host = f"[{config.host}]" if ":" in config.host else config.host  # IPv6 literal
    address = f"{host}:{config.grpc_port or 0}"
    try:
        if config.tls_cert_file and config.tls_key_file:
            with open(config.tls_key_file, "rb") as key, open(config.tls_cert_file, "rb") as cert:
                credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio >= 1.50 raises instead of returning 0
        raise OSError(f"cannot bind the OTLP/gRPC port {address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot bind the OTLP/gRPC port {address}")
    return server, port
