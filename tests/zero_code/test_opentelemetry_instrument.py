"""`OTEL_TRACES_EXPORTER=spanlake opentelemetry-instrument python app.py` really works,
alone and beside opentelemetry-distro (whose defaults name the otlp exporters)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from spanlake.exporter.store import open_store

APP = textwrap.dedent(
    """
    import threading
    from opentelemetry import trace

    tracer = trace.get_tracer("my.app")
    other = trace.get_tracer("some.other.instrumentation")

    def handle(i):
        with tracer.start_as_current_span(f"request-{i}", attributes={"spanlake.span.type": "AGENT"}):
            with other.start_as_current_span("http GET", kind=trace.SpanKind.CLIENT):
                pass

    threads = [threading.Thread(target=handle, args=(i,)) for i in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
    print("app finished")
    """
)

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("distro", "configurator"),
    [("spanlake", "spanlake"), ("distro", "configurator"), (None, None)],
    ids=["spanlake-only", "opentelemetry-distro-wins", "loader-default"],
)
def test_unmodified_app_is_traced(
    tmp_path: Path, distro: str | None, configurator: str | None
) -> None:
    (tmp_path / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLAKE_"))}
    env.update(
        OTEL_TRACES_EXPORTER="spanlake",
        SPANLAKE_EXPERIMENT="zero-code",
        OTEL_SERVICE_NAME="demo-app",
        # keep the run short when opentelemetry-distro's otlp metrics/logs are active
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
        OTEL_METRIC_EXPORT_INTERVAL="600000",
    )
    if distro:
        env.update(OTEL_PYTHON_DISTRO=distro, OTEL_PYTHON_CONFIGURATOR=configurator or "")
    result = subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "app finished" in result.stdout
    store = open_store(f"sqlite:///{tmp_path}/spanlake.db")  # the default store location
    traces = store.search_traces(experiment_names=["zero-code"]).traces
    assert sorted(t.name or "" for t in traces) == ["request-0", "request-1", "request-2"]
    for info in traces:
        assert info.span_count == 2 and info.service_name == "demo-app"
        spans = store.get_trace(info.trace_id).spans
        root, child = sorted(spans, key=lambda s: s.parent_span_id is not None)
        assert child.parent_span_id == root.span_id and child.scope == "some.other.instrumentation"
        assert root.span_type == "AGENT"
    store.close()
