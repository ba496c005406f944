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

from spanlake.exporter.records import SpanRecord

APP = """
from opentelemetry import trace
tracer = trace.get_tracer("checkout-app")
with tracer.start_as_current_span("handle order") as root:
    with tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("gen_ai.usage.input_tokens", 12)
"""


def test_apps_export_via_otel_env_vars_over_grpc_and_http(
    start_receiver: StartReceiver, tmp_path: Path
) -> None:
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    if not instrument.exists():
        pytest.skip("opentelemetry-instrument is not installed")
    store = MemoryStore()
    r = start_receiver(store, auth_token="tok")
    app = tmp_path / "app.py"
    app.write_text(APP)
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    runs = {}
    # Both apps at once (each start-up loads every installed instrumentor: slow).
    for protocol, port in (("grpc", r.grpc_port), ("http/protobuf", r.http_port)):
        env = dict(
            base,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20tok,x-spanlake-experiment={protocol}",
            OTEL_SERVICE_NAME=f"checkout-{protocol}",
        )
        runs[protocol] = subprocess.Popen(
            [str(instrument), sys.executable, str(app)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for protocol, proc in runs.items():
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, (protocol, err)
    by_experiment: dict[str, dict[str, SpanRecord]] = {}
    for record in store.spans.values():
        by_experiment.setdefault(record.experiment, {})[record.name] = record
    assert sorted(by_experiment) == ["grpc", "http/protobuf"]
    for protocol, spans in by_experiment.items():
        assert sorted(spans) == ["chat gpt-4o", "handle order"]
        chat = spans["chat gpt-4o"]
        assert chat.model == "gpt-4o" and chat.token_usage is not None
        assert chat.token_usage.input_tokens == 12
        assert chat.resource["service.name"] == f"checkout-{protocol}"
        assert chat.parent_span_id == spans["handle order"].span_id
