"""The receiver: both transports over one ingest pipeline, with a graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from http.server import ThreadingHTTPServer
from types import FrameType

import grpc

from spanlake.exporter.receiver import _grpc, _http
from spanlake.exporter.receiver._auth import TokenAuth
from spanlake.exporter.receiver._config import ReceiverConfig
from spanlake.exporter.receiver._ingest import Ingestor
from spanlake.exporter.receiver._metrics import Metrics
from spanlake.exporter.store.base import Store

logger = logging.getLogger(__name__)


class Receiver:
    """OTLP/gRPC and OTLP/HTTP in front of a store.

    ``with Receiver(store, config) as r:`` starts it (ports in ``r.grpc_port`` and
    ``r.http_port``); leaving the block drains in-flight requests, commits what is queued
    and closes the store when ``close_store`` is true.
    """

    def __init__(
        self, store: Store, config: ReceiverConfig | None = None, *, close_store: bool = True
    ) -> None:
        self.config = config or ReceiverConfig()
        self.store = store
        self.metrics = Metrics()
        self._close_store = close_store
        self._ingestor = Ingestor(store, self.config, self.metrics)
        self._auth = TokenAuth(self.config.auth_token)
        self._serving = False
        self._stopped = threading.Event()
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self.grpc_port: int | None = None
        self.http_port: int | None = None

    def _is_serving(self) -> bool:
        return self._serving

    def start(self) -> Receiver:
        """Bind and start both transports (a port of None leaves that one off)."""
        cfg = self.config
        try:
            if cfg.grpc_port is not None:
                self._grpc, self.grpc_port = _grpc.make_server(
                    cfg, self._ingestor, self._auth, self._is_serving
                )
            if cfg.http_port is not None:
                self._http, self.http_port = _http.make_server(
                    cfg, self._ingestor, self._auth, self._is_serving
                )
        except BaseException:
            self._teardown()
            raise
        if self._grpc is not None:
            self._grpc.start()
        if self._http is not None:
            self._http_thread = threading.Thread(
                target=self._http.serve_forever,
                kwargs={"poll_interval": 0.2},
                name="spanlake-http",
                daemon=True,
            )
            self._http_thread.start()
        self._serving = True
        logger.info(
            "spanlake receiver on %s (OTLP/gRPC %s, OTLP/HTTP %s) -> %s",
            cfg.host,
            self.grpc_port,
            self.http_port,
            getattr(self.store, "uri", type(self.store).__name__),
        )
        return self

    def stop(self) -> None:
        """Stop accepting, finish admitted requests, commit the queue, close the store.
        Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._serving = False
        grace = self.config.drain_timeout_s
        done = self._grpc.stop(grace) if self._grpc is not None else None
        if self._http is not None:
            self._http.shutdown()
        self._ingestor.close()
        if done is not None:
            done.wait(grace)
        self._teardown()

    def _teardown(self) -> None:
        if self._http is not None:
            self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(None)
        self._ingestor.writer.close(self.config.drain_timeout_s)
        if self._close_store:
            self.store.close()

    def serve_forever(self, wake: threading.Event | None = None) -> None:
        """Run until SIGTERM or SIGINT (main thread), then shut down gracefully. ``wake``:
        an event the caller's own early signal handler may already have set (a signal that
        came between ``start()`` and this call still means a graceful stop)."""
        wake = wake or threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            logger.info("signal %d: shutting down", signum)
            wake.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if not self._serving:
                self.start()
            while not wake.wait(0.5) and not self._stopped.is_set():
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
