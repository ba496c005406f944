"""Run the real ``otelcol-spanlake`` (built by ``collector-config/build/build.sh``) on a
shipped config, unchanged: the file is passed as the first ``--config`` and a second,
generated one only moves its listeners (OTLP, health check, internal metrics) to
ephemeral loopback ports; exporter endpoints and queue paths come from the env vars the
config itself reads."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "collector-config"
BUILD_SCRIPT = CONFIG_DIR / "build" / "build.sh"
_binary: str | None = None


def binary() -> str:
    """The binary's path. Outside CI only a cached build is used (a cold build takes
    minutes), else the test is skipped saying how to build; under CI (``CI=true``) it is
    built if needed and any failure fails the test."""
    global _binary
    if _binary is None:
        given = os.environ.get("SPANLAKE_OTELCOL")
        if given:
            _binary = given
        else:
            ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
            args = ["bash", str(BUILD_SCRIPT)] + ([] if ci else ["--cached-only"])
            result = subprocess.run(args, capture_output=True, text=True, timeout=1800)
            if result.returncode != 0:
                message = "otelcol-spanlake not built: " + result.stderr.strip()
                if ci:
                    pytest.fail(message)
                pytest.skip(message + " (run bash collector-config/build/build.sh)")
            _binary = result.stdout.strip().splitlines()[-1]
    return _binary


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Collector:
    """One ``otelcol-spanlake --config SHIPPED --config OVERRIDES`` process."""

    def __init__(
        self,
        config: str,
        workdir: Path,
        env: dict[str, str],
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.config = CONFIG_DIR / config
        self.grpc_port, self.http_port, self.health_port = free_port(), free_port(), free_port()
        shipped = yaml.safe_load(self.config.read_text())
        protocols = shipped["receivers"]["otlp"]["protocols"]
        listeners: dict[str, Any] = {
            "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
        }
        if "http" in protocols:
            listeners["http"] = {"endpoint": f"127.0.0.1:{self.http_port}"}
        overrides: dict[str, Any] = {
            "receivers": {"otlp": {"protocols": listeners}},
            "extensions": {"health_check": {"endpoint": f"127.0.0.1:{self.health_port}"}},
            # the Collector's own metrics would listen on :8888
            "service": {"telemetry": {"metrics": {"level": "none"}}},
        }
        _merge(overrides, extra or {})
        self.overrides = workdir / f"overrides-{self.config.stem}.yaml"
        self.overrides.write_text(yaml.safe_dump(overrides))
        self.log = workdir / f"otelcol-{self.config.stem}.log"
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Collector:
        self.proc = subprocess.Popen(
            [binary(), f"--config=file:{self.config}", f"--config=file:{self.overrides}"],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + 30
        url = f"http://127.0.0.1:{self.health_port}/"
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError("collector did not become healthy: " + self.log.read_text())

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: the Collector drains what it can and exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
