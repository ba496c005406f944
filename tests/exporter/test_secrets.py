"""Secrets never reach the store, through either front door, at any level; token counts do.

The app is the README's SDK snippet plus the manual API, run as its own process; it exports
either with the in-process ``SpanlakeSpanExporter`` or with the real OTLP exporter to a
``spanlake serve`` receiver. The test then reads every table of the SQLite file back.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from receiver.conftest import StartReceiver
from receiver.conftest import start_receiver as start_receiver  # the fixture, shared

from spanlake.exporter.store import open_store
from spanlake.semconv.secrets import REDACTED, is_secret_key, redact_value

APP = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace as otel
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from spanlake.tracing import start_span, trace, update_current_trace

    door, target = sys.argv[1], sys.argv[2]
    if door == "exporter":
        from spanlake.exporter import SpanlakeSpanExporter
        exporter = SpanlakeSpanExporter(target, "secrets")
    elif door == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=target, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=target)
    resource = Resource.create({"service.name": "svc", "api_key": "sk-resource-SECRET"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.set_tracer_provider(provider)

    @trace
    def call(prompt, api_key, headers):
        update_current_trace(
            tags={"api_key": "sk-tag-SECRET", "env": "prod"},
            metadata={"password": "hunter2-meta-SECRET", "team": "search"},
        )
        span = otel.get_current_span()
        span.set_attribute("auth.bearer_token", "tok-bearer-SECRET")
        span.set_attribute("access_token", "tok-access-SECRET")
        span.set_attribute("http.request.header.x-api-key", ("sk-header-attr-SECRET",))
        span.set_attribute("request.body", '{"user": "u", "credentials": {"k": "cred-SECRET"}}')
        span.set_attribute("gen_ai.usage.input_tokens", 12)
        span.set_attribute("gen_ai.usage.output_tokens", 3)
        span.set_attribute("llm.token_count.prompt", 12)
        span.set_attribute("gen_ai.request.max_tokens", 100)
        span.add_event("http.request", {"authorization": "Bearer sk-event-SECRET", "n": 1})
        with start_span("inner") as inner:
            inner.set_inputs({"config": {"nested": [{"client_secret": "cs-SECRET"}]}})
            inner.set_outputs({"token": "tok-bare-SECRET", "eos_token": "</s>"})
        return {"answer": "ok", "session": {"refresh_token": "tok-refresh-SECRET"}}

    call(
        "hello",
        api_key="sk-arg-SECRET",
        headers={"Authorization": "Bearer sk-nested-header-SECRET", "Accept": "json"},
    )
    provider.shutdown()
    """
)


def _run_app(tmp_path: Path, door: str, target: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    result = subprocess.run(
        [sys.executable, "app.py", door, target],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _check_store(db: Path) -> None:
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert "SECRET" not in dump  # not in any table, any column, any level
    store = open_store(f"sqlite:///{db}")
    try:
        (info,) = store.search_traces().traces
        trace = store.get_trace(info.trace_id)
    finally:
        store.close()
    assert info.tags == {"api_key": REDACTED, "env": "prod"}
    assert info.metadata["password"] == REDACTED
    assert info.metadata["team"] == "search"
    assert info.token_usage.input_tokens == 12
    assert info.token_usage.output_tokens == 3
    spans = {s.name: s for s in trace.spans}
    call, inner = spans["call"], spans["inner"]
    assert json.loads(call.inputs or "") == {
        "prompt": "hello",
        "api_key": REDACTED,
        "headers": {"Authorization": REDACTED, "Accept": "json"},
    }
    assert json.loads(call.outputs or "") == {
        "answer": "ok",
        "session": {"refresh_token": REDACTED},
    }
    attrs = call.attributes
    assert attrs["auth.bearer_token"] == REDACTED
    assert attrs["access_token"] == REDACTED
    assert attrs["http.request.header.x-api-key"] == REDACTED
    assert json.loads(attrs["request.body"]) == {"user": "u", "credentials": REDACTED}
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["llm.token_count.prompt"] == 12
    assert attrs["gen_ai.request.max_tokens"] == 100
    (event,) = [e for e in call.events if e.name == "http.request"]
    assert event.attributes == {"authorization": REDACTED, "n": 1}
    assert call.resource["api_key"] == REDACTED
    assert call.resource["service.name"] == "svc"
    assert json.loads(inner.inputs or "") == {"config": {"nested": [{"client_secret": REDACTED}]}}
    assert json.loads(inner.outputs or "") == {"token": REDACTED, "eos_token": "</s>"}


def test_in_process_exporter_stores_no_secret(tmp_path: Path) -> None:
    db = tmp_path / "spanlake.db"
    _run_app(tmp_path, "exporter", f"sqlite:///{db}")
    _check_store(db)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_receiver_stores_no_secret(
    tmp_path: Path, protocol: str, start_receiver: StartReceiver
) -> None:
    db = tmp_path / "spanlake.db"
    receiver = start_receiver(open_store(f"sqlite:///{db}"))
    target = (
        f"127.0.0.1:{receiver.grpc_port}"
        if protocol == "grpc"
        else f"http://127.0.0.1:{receiver.http_port}/v1/traces"
    )
    _run_app(tmp_path, protocol, target)
    receiver.stop()
    _check_store(db)


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "http.request.header.proxy-authorization",
        "x-api-key",
        "OPENAI_API_KEY",
        "apiKey",
        "client_secret",
        "password",
        "db.passwd",
        "set-cookie",
        "auth.bearer_token",
        "access_token",
        "refreshToken",
        "token",
        "x-amz-security-token",
        "aws_secret_access_key",
        "private_key",
        "credentials",
        "auth",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "llm.token_count.prompt",
        "llm.usage.total_tokens",
        "max_tokens",
        "gen_ai.request.max_tokens",
        "maxTokens",
        "token_count",
        "eos_token",
        "author",
        "gen_ai.prompt",
        "tokenizer",
    ],
)
def test_not_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_redact_value_walks_json_text_inside_values_and_keeps_the_rest() -> None:
    value = {"tool_call": {"arguments": '{"password": "p", "q": 1}'}, "n": [1, {"k": 2}]}
    assert redact_value(value) == {
        "tool_call": {"arguments": f'{{"password":"{REDACTED}","q":1}}'},
        "n": [1, {"k": 2}],
    }
    clean = {"a": [1, 2, {"b": "text mentioning a password"}]}
    assert redact_value(clean) is clean  # nothing secret: no copy
