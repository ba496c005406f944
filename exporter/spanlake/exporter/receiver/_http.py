"""OTLP/HTTP: ``POST /v1/traces`` (protobuf or JSON, gzip/deflate), ``GET /health`` and
``GET /metrics``, on the standard library's threaded HTTP/1.1 server.

Why stdlib and not an async framework: the work per request (decode, map, SQLite commit)
is CPU-bound under one GIL, so an event loop would not add throughput; keep-alive
connections each get a thread, and the number of connections, of admitted requests and
of their bytes are all capped, so memory stays bounded. A request is admitted (by its
``Content-Length``) *before* its body is read; a refused body is drained when it is small
enough to keep the connection, otherwise the connection is closed after the answer.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Any

import orjson
from google.rpc import status_pb2

from spanlake.exporter.receiver import _json, _protobuf
from spanlake.exporter.receiver._auth import TokenAuth
from spanlake.exporter.receiver._body import Format, check_encoding, media_format
from spanlake.exporter.receiver._config import ReceiverConfig
from spanlake.exporter.receiver._errors import (
    BadRequest,
    InternalError,
    ReceiverError,
    TooLarge,
)
from spanlake.exporter.receiver._ingest import Ingestor

logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
EXPERIMENT_HEADER = "x-spanlake-experiment"
_CONTENT_TYPES: dict[Format, str] = {
    "protobuf": "application/x-protobuf",
    "json": "application/json",
}
_DRAIN_CHUNK = 64 * 1024
_DRAIN_FACTOR = 4
_MIN_DRAIN = 64 * 1024 * 1024
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


class _BodyUnread(Exception):
    """The body could not be read completely: the connection must be closed."""


def _read_chunked(rfile: BufferedIOBase, limit: int) -> bytes:
    out = bytearray()
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise BadRequest("truncated chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("invalid chunk size") from None
        if size < 0:
            raise BadRequest("invalid chunk size")
        if size == 0:
            for _ in range(64):  # trailers, up to the blank line
                if rfile.readline(8192) in (b"\r\n", b"\n", b""):
                    return bytes(out)
            raise BadRequest("too many trailers")
        if len(out) + size > limit:
            raise TooLarge(f"request body exceeds the {limit}-byte limit")
        chunk = rfile.read(size)
        if len(chunk) < size:
            raise BadRequest("truncated chunked body")
        out += chunk
        rfile.readline(8)


def _error_body(fmt: Format, error: ReceiverError) -> bytes:
    code = error.grpc_code.value[0]
    if fmt == "json":
        return orjson.dumps({"code": code, "message": error.message})
    body: bytes = status_pb2.Status(code=code, message=error.message).SerializeToString()
    return body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: with Nagle on, a keep-alive response waited ~40 ms for the client's
    # delayed ACK before going out (JSON senders topped out near 22 requests/s).
    disable_nagle_algorithm = True
    server_version = "spanlake-receiver"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        self.request.settimeout(self.server.config.http_timeout_s)
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError) as exc:  # resets, timeouts, bad TLS: just drop it
            logger.debug("HTTP connection from %s ended: %s", self.client_address, exc)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    # -- plumbing -----------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Status line, headers and body in one write (one segment on the wire).
        buffered: list[bytes] | None = getattr(self, "_headers_buffer", None)
        if buffered is None:  # not the stdlib layout we know: two writes, still no Nagle
            self.end_headers()
            self.wfile.write(body)
            return
        buffered.append(b"\r\n")
        buffered.append(body)
        self.flush_headers()

    def _send_error(self, fmt: Format, error: ReceiverError) -> None:
        headers = {}
        if error.retry_after_s is not None:
            headers["Retry-After"] = str(error.retry_after_s)
        if error.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        self.server.ingestor.metrics.count_request("http", str(error.http_status))
        self._send(error.http_status, _error_body(fmt, error), _CONTENT_TYPES[fmt], headers)

    def _content_length(self) -> int | None:
        """The declared body length; None for a chunked body."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise BadRequest(f"invalid Content-Length {raw!r}")
        return length

    def _discard_body(self, length: int | None) -> None:
        """Drain an unwanted body (no memory kept) so that the client, still sending,
        can read our answer; past ``_DRAIN_FACTOR`` x the limit just close instead."""
        cap = max(self.server.config.max_request_bytes * _DRAIN_FACTOR, _MIN_DRAIN)
        if length is None or length > cap:
            self.close_connection = True
            return
        remaining = length
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, _DRAIN_CHUNK))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass
        if remaining:
            self.close_connection = True

    # -- routes -------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/metrics") and self.server.config.auth_metrics:
            try:
                self.server.auth.check(self.headers.get("Authorization"))
            except ReceiverError as error:
                self._send(
                    error.http_status,
                    orjson.dumps({"error": error.message}),
                    "application/json",
                    {"WWW-Authenticate": "Bearer"},
                )
                return
        if path == "/health":
            ok = self.server.serving()
            body = orjson.dumps({"status": "ok" if ok else "shutting down"})
            self._send(200 if ok else 503, body, "application/json")
        elif path == "/metrics":
            body = self.server.ingestor.metrics.render().encode()
            self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        content_type = self.headers.get("Content-Type")
        fmt: Format = "json" if "json" in (content_type or "").lower() else "protobuf"
        length: int | None = 0
        body_read = False
        try:
            length = self._content_length()
            if path != TRACES_PATH:
                self._discard_body(length)
                body_read = True
                self._send(404, b"not found: OTLP traces go to /v1/traces\n", "text/plain")
                return
            self.server.auth.check(self.headers.get("Authorization"))
            fmt = media_format(content_type)
            encoding = check_encoding(self.headers.get("Content-Encoding"))
            limit = self.server.config.max_request_bytes
            ingestor = self.server.ingestor
            with ingestor.admit(limit if length is None else length) as ticket:
                body_read = True  # from here on, a failure leaves the stream unusable
                if length is None:
                    body = _read_chunked(self.rfile, limit)
                else:
                    body = self.rfile.read(length)
                    if len(body) < length:
                        raise _BodyUnread
                outcome = ingestor.process(
                    ticket, fmt, body, encoding, self.headers.get(EXPERIMENT_HEADER)
                )
                del body
        except (_BodyUnread, OSError):  # client gone or too slow: nothing to answer
            self.close_connection = True
            return
        except ReceiverError as error:
            if not body_read:
                self._discard_body(length)
            elif isinstance(error, (TooLarge, BadRequest)) and length is None:
                self.close_connection = True
            self._send_error(fmt, error)
            return
        except Exception as exc:
            logger.exception("unexpected error in HTTP export")
            self.close_connection = True
            self._send_error(fmt, InternalError(f"internal error: {type(exc).__name__}"))
            return
        encode = _json.encode_response if fmt == "json" else _protobuf.encode_response
        self.server.ingestor.metrics.count_request("http", "200")
        self._send(200, encode(outcome.rejected, outcome.message), _CONTENT_TYPES[fmt])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self,
        config: ReceiverConfig,
        ingestor: Ingestor,
        auth: TokenAuth,
        serving: Any,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.config = config
        self.ingestor = ingestor
        self.auth = auth
        self.serving = serving
        self._ssl_context = ssl_context
        self._active = 0
        self._active_lock = threading.Lock()
        if ":" in config.host:  # an IPv6 literal such as "::"
            self.address_family = socket.AF_INET6
        super().__init__((config.host, config.http_port or 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self._ssl_context is not None:
            # Handshake later, in the connection's own thread (a slow client must not
            # stall the accept loop).
            sock = self._ssl_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            full = self._active >= self.config.max_connections
            if not full:
                self._active += 1
        if full:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._active_lock:
                self._active -= 1
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1

    def _refuse(self, request: socket.socket) -> None:
        try:
            if not isinstance(request, ssl.SSLSocket):
                request.settimeout(0.2)
                request.sendall(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)


def make_server(
    config: ReceiverConfig, ingestor: Ingestor, auth: TokenAuth, serving: Any
) -> tuple[ThreadingHTTPServer, int]:
    """A bound HTTP server (call ``serve_forever`` in a thread) and its port."""
    ssl_context = None
    if config.tls_cert_file and config.tls_key_file:
        ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    server = _Server(config, ingestor, auth, serving, ssl_context)
    return server, server.server_address[1]
