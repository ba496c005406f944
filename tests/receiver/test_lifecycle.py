"""Graceful shutdown and the ``spanlake serve`` command line."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import pytest
from receiver._support import BlockingStore, MemoryStore, post, simple_request
from receiver.conftest import StartReceiver

from spanlake.exporter.cli import serve


def test_stop_finishes_in_flight_requests_then_closes_the_store(
    start_receiver: StartReceiver,
) -> None:
    store = BlockingStore()
    r = start_receiver(store)
    answers: list[int] = []
    worker = threading.Thread(
        target=lambda: answers.append(post(r.http_port, simple_request(2).SerializeToString())[0])
    )
    worker.start()
    assert store.entered.wait(10)
    stopper = threading.Thread(target=r.stop)
    stopper.start()
    stopper.join(0.5)
    assert stopper.is_alive(), "stop() must wait for the in-flight request"
    assert not store.closed
    store.release.set()
    stopper.join(10)
    worker.join(10)
    assert answers == [200]
    assert len(store.spans) == 2 and store.closed


def test_store_passed_in_can_be_kept_open(start_receiver: StartReceiver) -> None:
    from spanlake.exporter.receiver import Receiver, ReceiverConfig

    store = MemoryStore()
    with Receiver(store, ReceiverConfig(grpc_port=0, http_port=0), close_store=False) as r:
        assert post(r.http_port or 0, simple_request(1).SerializeToString())[0] == 200
    assert not store.closed and len(store.spans) == 1


def test_port_in_use_is_a_clear_error(start_receiver: StartReceiver) -> None:
    r = start_receiver(MemoryStore())
    with pytest.raises(OSError):
        start_receiver(MemoryStore(), http_port=r.http_port)
    with pytest.raises(OSError):
        start_receiver(MemoryStore(), grpc_port=r.grpc_port)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spanlake")
    serve.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_serve_subcommand_flags_and_defaults() -> None:
    args = _parse(["serve"])
    assert args.func is serve.handler
    assert (args.grpc_port, args.http_port, args.host) == (4317, 4318, "127.0.0.1")
    assert args.store is None and args.experiment is None
    args = _parse(
        [
            "serve", "--store", "sqlite:///x.db", "--grpc-port", "5317", "--http-port", "5318",
            "--host", "0.0.0.0", "--auth-token-file", "t", "--tls-cert", "c", "--tls-key", "k",
            "--experiment", "prod", "--max-request-mib", "4", "--max-inflight-requests", "8",
        ]
    )  # fmt: skip
    assert (args.store, args.grpc_port, args.http_port, args.host) == (
        "sqlite:///x.db", 5317, 5318, "0.0.0.0",
    )  # fmt: skip
    assert (args.auth_token_file, args.tls_cert, args.tls_key, args.experiment) == (
        "t", "c", "k", "prod",
    )  # fmt: skip
    assert (args.max_request_mib, args.max_inflight_requests) == (4, 8)


def test_serve_reports_config_errors_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.handler(_parse(["serve", "--store", "nosuch://x"])) == 2
    assert "Unknown store scheme" in capsys.readouterr().err
    empty = tmp_path / "token"
    empty.write_text("  \n")
    args = _parse(
        ["serve", "--store", f"sqlite:///{tmp_path}/a.db", "--auth-token-file", str(empty)]
    )
    assert serve.handler(args) == 2
    assert "empty" in capsys.readouterr().err
    args = _parse(["serve", "--store", f"sqlite:///{tmp_path}/a.db", "--tls-cert", "c.pem"])
    assert serve.handler(args) == 2
    assert "--tls-key" in capsys.readouterr().err


def test_sigterm_right_after_the_banner_is_a_graceful_stop(tmp_path: Path) -> None:
    """A SIGTERM that lands as soon as `spanlake serve` says it is listening (before the
    serving loop's own handler was installed, during start-up's GC tuning) used to kill the
    process outright (exit -15, no graceful shutdown); now it always exits 0."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from receiver._support import free_port

    for _ in range(3):
        log = tmp_path / "serve.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "spanlake.exporter.receiver",
             "--store", f"sqlite:///{tmp_path / 'x.db'}",
             "--grpc-port", str(free_port()), "--http-port", str(free_port())],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while b"spanlake serve: OTLP" not in log.read_bytes():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the receiver never said it was listening"
                time.sleep(0.001)
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
