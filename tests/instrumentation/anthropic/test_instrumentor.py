"""Instrumentor lifecycle: idempotence, tracer_provider, zero-code loader, peers."""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

import anthropic
import pytest
import wrapt
from anthropic.resources.messages import AsyncMessages, Messages
from anthropic.types import MessageParam
from fakes.anthropic_server import FakeAnthropic
from opentelemetry.instrumentation.auto_instrumentation import _load
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spanlake.instrumentation._genai._peers import reset_warnings
from spanlake.instrumentation.anthropic import AnthropicInstrumentor

MODEL = "claude-sonnet-5"
HI: list[MessageParam] = [{"role": "user", "content": "Hello, Claude"}]
KEY = "sk-ant-test"
SCOPE = "spanlake.instrumentation.anthropic"


def test_instrument_and_uninstrument_are_idempotent(
    fake: FakeAnthropic, tracer_provider: TracerProvider, rec: Any
) -> None:
    originals = (Messages.__dict__["create"], AsyncMessages.__dict__["stream"])
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=tracer_provider)
    inst.instrument(tracer_provider=tracer_provider)  # no double wrapping
    with anthropic.Anthropic(base_url=fake.base_url, api_key=KEY) as c:
        c.messages.create(model=MODEL, max_tokens=5, messages=HI)
        assert len(rec.all()) == 1
        inst.uninstrument()
        inst.uninstrument()
        assert (Messages.__dict__["create"], AsyncMessages.__dict__["stream"]) == originals
        rec.exporter.clear()
        c.messages.create(model=MODEL, max_tokens=5, messages=HI)
    assert rec.ours() == []  # at most the SDK's own native span now


def test_helpers_cached_before_uninstrument_stop_tracing(
    fake: FakeAnthropic, tracer_provider: TracerProvider, rec: Any
) -> None:
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=tracer_provider)
    with anthropic.Anthropic(base_url=fake.base_url, api_key=KEY) as c:
        raw = c.messages.with_raw_response  # binds the wrapped create into a cached helper
        inst.uninstrument()
        raw.create(model=MODEL, max_tokens=5, messages=HI).parse()
    assert rec.ours() == []


def test_tracer_provider_kwarg_is_honoured(fake: FakeAnthropic, rec: Any) -> None:
    own = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(own))
    inst = AnthropicInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        with anthropic.Anthropic(base_url=fake.base_url, api_key=KEY) as c:
            c.messages.create(model=MODEL, max_tokens=5, messages=HI)
    finally:
        inst.uninstrument()
    assert [s.instrumentation_scope.name for s in own.get_finished_spans()] == [SCOPE]  # type: ignore[union-attr]
    assert rec.all() == []


def test_dependencies_declare_the_version_floor() -> None:
    assert list(AnthropicInstrumentor().instrumentation_dependencies()) == ["anthropic >= 0.40"]


class _RecordingDistro:
    """Stands in for the distro: records which instrumentors the loader would load."""

    def __init__(self) -> None:
        self.loaded: list[str] = []

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        self.loaded.append(entry_point.name)


@pytest.mark.parametrize("disabled", ["", "spanlake_anthropic", "openai, spanlake_anthropic"])
def test_disabled_instrumentations_env_is_respected(
    monkeypatch: pytest.MonkeyPatch, disabled: str
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", disabled)
    distro = _RecordingDistro()
    _load._load_instrumentors(distro)  # type: ignore[no-untyped-call]
    assert ("spanlake_anthropic" in distro.loaded) == (disabled == "")


def test_entry_point_resolves_to_the_instrumentor() -> None:
    from importlib.metadata import entry_points

    (ep,) = [
        e
        for e in entry_points(group="opentelemetry_instrumentor")
        if e.name == "spanlake_anthropic"
    ]
    assert ep.load() is AnthropicInstrumentor


def test_warns_once_when_a_peer_instrumentor_is_active(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reset_warnings()
    peer = types.ModuleType("openinference.instrumentation.anthropic")

    class PeerInstrumentor:
        _instance = types.SimpleNamespace(is_instrumented_by_opentelemetry=True)

    peer.AnthropicInstrumentor = PeerInstrumentor  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "openinference.instrumentation.anthropic", peer)
    inst = AnthropicInstrumentor()
    with caplog.at_level(logging.WARNING, logger="spanlake.instrumentation"):
        for _ in range(2):
            inst.instrument(tracer_provider=tracer_provider)
            inst.uninstrument()
    assert caplog.text.count("openinference.instrumentation.anthropic:AnthropicInstrumentor") == 1


def test_warns_when_sdk_method_already_wrapped(
    tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    reset_warnings()
    original = Messages.__dict__["create"]
    wrapt.wrap_function_wrapper(Messages, "create", lambda w, i, a, k: w(*a, **k))  # a wrapt peer
    inst = AnthropicInstrumentor()
    try:
        with caplog.at_level(logging.WARNING, logger="spanlake.instrumentation"):
            inst.instrument(tracer_provider=tracer_provider)
        inst.uninstrument()
    finally:
        Messages.create = original  # type: ignore[method-assign]
    assert "wrapt wrapper on anthropic.resources.messages.Messages.create" in caplog.text


def test_opentelemetry_instrument_honours_the_disable_list(tmp_path: Any) -> None:
    """The real zero-code route, ``opentelemetry-instrument python ...``, in a subprocess (one
    run: start-up is slow; the enabled case is covered in-process above)."""
    import os
    import subprocess

    script = (
        "import sys\n"
        "from anthropic.resources.messages import Messages\n"
        "site = sys.modules.get('sitecustomize')\n"
        "auto = 'auto_instrumentation' in str(getattr(site, '__file__', ''))\n"
        "print(auto, type(Messages.__dict__['create']).__name__)\n"
    )
    env = {
        **os.environ,
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "spanlake_anthropic",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    bindir = os.path.dirname(sys.executable)
    result = subprocess.run(
        [os.path.join(bindir, "opentelemetry-instrument"), sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "True function", result.stdout + result.stderr


def test_a_second_instance_uninstruments_what_the_first_patched(
    fake: FakeAnthropic, tracer_provider: TracerProvider, rec: Any
) -> None:
    """The usual pattern: ``AnthropicInstrumentor().instrument()`` ... later
    ``AnthropicInstrumentor().uninstrument()`` (BaseInstrumentor is a singleton)."""
    original = Messages.__dict__["create"]
    AnthropicInstrumentor().instrument(tracer_provider=tracer_provider)
    assert Messages.__dict__["create"] is not original
    AnthropicInstrumentor().uninstrument()
    assert Messages.__dict__["create"] is original
    with anthropic.Anthropic(base_url=fake.base_url, api_key=KEY) as c:
        c.messages.create(model=MODEL, max_tokens=5, messages=HI)
    assert rec.ours() == []
