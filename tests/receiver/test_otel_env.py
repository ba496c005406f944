"""An existing OTel app pointed at the receiver purely through the standard environment
variables (``OTEL_EXPORTER_OTLP_ENDPOINT`` ...), run by ``opentelemetry-instrument``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from receiver._support import MemoryStore
from receiver.conftest import StartReceiver

APP = """
from opentelemetry import trace
tracer = trace.get_tracer("checkout-app")
with tracer.start_as_current_span("handle order") as root:
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("gen_ai.usage.input_tokens", 12)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_app_exports_via_otel_env_vars(
    start_receiver: StartReceiver, tmp_path: Path, protocol: str
) -> None:
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    if not instrument.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    store = MemoryStore()
    r = start_receiver(store, auth_token="tok")
    port = r.grpc_port if protocol == "grpc" else r.http_port
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20tok,x-spanlake-experiment=shop",
        OTEL_SERVICE_NAME="checkout",
    )
    done = subprocess.run(
        [str(instrument), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    spans = store.by_name()
    assert sorted(spans) == ["chat gpt-4o", "handle order"], done.stderr
    chat = spans["chat gpt-4o"]
    assert chat.experiment == "shop"
    assert chat.model == "gpt-4o" and chat.token_usage is not None
    assert chat.token_usage.input_tokens == 12
    assert chat.resource["service.name"] == "checkout"
    assert chat.parent_span_id == spans["handle order"].span_id
