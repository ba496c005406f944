"""Zero-code GenAI metrics: ``OTEL_METRICS_EXPORTER=prometheus opentelemetry-instrument``
serves the instrumentations' metrics for a Prometheus scrape, and the stored traces say
where the cost is partial."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from fakes.openai_server import ChatReply, FakeOpenAI, Usage
from prometheus_client.parser import text_string_to_metric_families

from spanlake.exporter.pricing import price_for
from spanlake.exporter.store import open_store

APP = textwrap.dedent(
    """
    import sys
    import openai
    from opentelemetry import trace

    tracer = trace.get_tracer("shop")
    client = openai.OpenAI(max_retries=0)
    with tracer.start_as_current_span("priced"):
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    with tracer.start_as_current_span("unpriced"):
        client.chat.completions.create(model="house-model-7b", messages=[{"role": "user", "content": "Hi"}])
    print("ready", flush=True)
    sys.stdin.readline()  # stay up until the test has scraped
    """
)
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    hits = [v for (n, got), v in samples.items() if n == name and set(labels.items()) <= set(got)]
    assert hits, (name, labels, sorted({n for n, _ in samples}))
    return sum(hits)


def test_prometheus_scrape_shows_token_usage_duration_and_cost(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = _free_port()
    with FakeOpenAI() as fake:
        fake.script(
            ChatReply(usage=Usage(100, 20)),
            ChatReply(usage=Usage(50, 10)),
            ChatReply(model="house-model-7b", usage=Usage(7, 3)),
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLAKE_"))}
        env.update(
            OTEL_TRACES_EXPORTER="spanlake",
            OTEL_METRICS_EXPORTER="prometheus",
            OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
            OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
            OTEL_SERVICE_NAME="shop",
            SPANLAKE_STORE=f"sqlite:///{tmp_path}/traces.db",
            SPANLAKE_EXPERIMENT="metrics",
            OPENAI_BASE_URL=fake.base_url,
            OPENAI_API_KEY="sk-test",
        )
        app = subprocess.Popen(
            [str(BIN / "opentelemetry-instrument"), sys.executable, "app.py"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert app.stdout is not None and app.stdin is not None
            line = app.stdout.readline()
            assert line.strip() == "ready", app.stderr.read() if app.stderr else ""
            samples = _scrape(port)
            app.stdin.write("\n")
            app.stdin.flush()
            _, stderr = app.communicate(timeout=60)
        finally:
            if app.poll() is None:
                app.kill()
    assert app.returncode == 0, stderr

    priced = {"gen_ai_request_model": "gpt-4o-mini", "gen_ai_provider_name": "openai"}
    assert (
        _value(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **priced) == 150
    )
    assert (
        _value(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="output", **priced) == 30
    )
    assert _value(samples, "gen_ai_client_token_usage_count", gen_ai_token_type="input") == 3
    assert (
        _value(
            samples, "gen_ai_client_operation_duration_seconds_count", gen_ai_operation_name="chat"
        )
        == 3
    )
    price = price_for("gpt-4o-mini")
    assert price is not None
    cost = _value(samples, "spanlake_client_cost_USD_total", **priced)
    assert cost == pytest.approx((150 * price.input + 30 * price.output) / 1e6)
    assert not [
        k
        for k in samples
        if k[0].startswith("spanlake_client_cost")
        and ("gen_ai_request_model", "house-model-7b") in k[1]
    ]
    assert "no price for model 'house-model-7b'" in stderr

    store = open_store(f"sqlite:///{tmp_path}/traces.db")
    try:
        traces = {t.name: t for t in store.search_traces(experiment_names=["metrics"]).traces}
    finally:
        store.close()
    assert traces["priced"].cost_usd == pytest.approx(cost)
    assert "spanlake.cost.partial" not in traces["priced"].metadata
    assert traces["priced"].token_usage.input_tokens == 150
    assert traces["unpriced"].cost_usd is None
    assert traces["unpriced"].metadata["spanlake.cost.partial"] == "true"
