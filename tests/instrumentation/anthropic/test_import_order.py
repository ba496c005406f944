"""Issue 11: every Anthropic client class is traced whatever the import order.

``AnthropicBedrock`` / ``AnthropicVertex``'s ``beta.messages`` classes copy the first-party
methods at import (``create = FirstPartyMessagesAPI.create``): with ``anthropic`` imported
before ``instrument()`` they kept the unpatched functions and produced no span. Each case runs
in a fresh interpreter (import order is per process), against the loopback fake.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLIENTS = (
    "Anthropic", "AsyncAnthropic", "AnthropicBedrock", "AsyncAnthropicBedrock",
    "AnthropicVertex", "AsyncAnthropicVertex",
)
TESTS = Path(__file__).resolve().parents[2]

_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from fakes.anthropic_server import FakeAnthropic
from spanlake.instrumentation.anthropic import AnthropicInstrumentor

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
inst = AnthropicInstrumentor()
if {sdk_first}:
    import anthropic
    {construct_early}
inst.instrument(tracer_provider=provider)
import anthropic

KIND, ASYNC = {cls!r}, {cls!r}.startswith("Async")
HI = [{{"role": "user", "content": "hi"}}]

def make(url):
    cls = getattr(anthropic, KIND)
    if "Bedrock" in KIND:
        return cls(base_url=url, aws_access_key="AKIDEXAMPLE", aws_secret_key="secret",
                   aws_region="us-east-1", max_retries=0)
    if "Vertex" in KIND:
        return cls(base_url=url + "/v1", region="us-east5", project_id="p",
                   access_token="token", max_retries=0)
    return cls(base_url=url, api_key="sk-test", max_retries=0)

def calls(c):
    kw = dict(model="claude-x", max_tokens=8, messages=HI)
    return [
        lambda: c.messages.create(**kw),
        lambda: c.messages.with_raw_response.create(**kw),
        lambda: c.beta.messages.create(**kw),
        lambda: c.beta.messages.with_raw_response.create(**kw),
    ]

async def run_async(c):
    for call in calls(c):
        await call()

def run(traced):
    exporter.clear()
    with FakeAnthropic() as fake:
        c = make(fake.base_url)
        if ASYNC:
            asyncio.run(run_async(c))
        else:
            for call in calls(c):
                call()
    names = [s.name for s in exporter.get_finished_spans()
             if s.instrumentation_scope.name == "spanlake.instrumentation.anthropic"]
    return names

try:
    make("http://127.0.0.1:1")
except Exception as exc:  # e.g. AnthropicVertex without google-auth in an old SDK
    print("SKIP", type(exc).__name__, exc)
    raise SystemExit(0)
print("TRACED", len(run(True)))
inst.uninstrument()
print("UNTRACED", len(run(False)))
"""


@pytest.mark.parametrize("order", ["sdk_imported_first", "instrument_first"])
@pytest.mark.parametrize("cls", CLIENTS)
def test_every_client_class_traced_whatever_the_import_order(cls: str, order: str) -> None:
    pytest.importorskip("botocore")  # AnthropicBedrock signs with botocore
    sdk_first = order == "sdk_imported_first"
    script = _SCRIPT.format(
        tests=str(TESTS), sdk_first=sdk_first, cls=cls,
        # also load the platform client modules (and their beta classes) before instrument()
        # (older SDKs lack these modules; anthropic.lib.* then reuse the first-party classes)
        construct_early="import importlib, importlib.util; [importlib.util.find_spec(m) and importlib.import_module(m) "
        "for m in ('anthropic.lib.bedrock._beta_messages', 'anthropic.lib.vertex._beta_messages')]"
        if sdk_first else "pass",
    )
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout.split()
    if out and out[0] == "SKIP":
        pytest.skip(result.stdout)
    # 4 calls: messages and beta.messages, plain and with_raw_response; one span each.
    assert out == ["TRACED", "4", "UNTRACED", "0"], result.stdout + result.stderr[-2000:]
