"""Zero code: seed 000's Bedrock agent run under ``opentelemetry-instrument`` lands in the store
as one trace per question, agent span at the root, with the right token totals; and
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=spanlake_bedrock`` switches our spans off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fakes.bedrock_server import FakeBedrock, JsonReply

pytest.importorskip("spanlake.tracing")
query = pytest.importorskip("spanlake.query")

INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")

APP = textwrap.dedent(
    '''
    import os
    import boto3
    from spanlake.tracing import SpanType, trace

    bedrock = boto3.client(
        service_name="bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=os.environ["FAKE_BEDROCK_URL"],
    )
    model_id = "anthropic.claude-3-5-sonnet-20241022-v2:0"

    @trace(span_type=SpanType.TOOL)
    def get_weather(city: str) -> str:
        """Get the current weather in a given location"""
        return "sunny" if city == "San Francisco, CA" else "unknown"

    tools = [{"toolSpec": {"name": "get_weather",
                           "description": "Get the current weather in a given location",
                           "inputSchema": {"json": {"type": "object",
                                                    "properties": {"city": {"type": "string"}},
                                                    "required": ["city"]}}}}]
    tool_functions = {"get_weather": get_weather}

    @trace(span_type=SpanType.AGENT)
    def run_tool_agent(question: str) -> str:
        messages = [{"role": "user", "content": [{"text": question}]}]
        response = bedrock.converse(modelId=model_id, messages=messages, toolConfig={"tools": tools})
        assistant_message = response["output"]["message"]
        messages.append(assistant_message)
        tool_use = next((c["toolUse"] for c in assistant_message["content"] if "toolUse" in c), None)
        if tool_use:
            tool_result = tool_functions[tool_use["name"]](**tool_use["input"])
            messages.append({"role": "user", "content": [{"toolResult": {
                "toolUseId": tool_use["toolUseId"], "content": [{"text": tool_result}]}}]})
            response = bedrock.converse(modelId=model_id, messages=messages, toolConfig={"tools": tools})
        return response["output"]["message"]["content"][0]["text"]

    for city in ("San Francisco, CA", "Paris"):
        print(run_tool_agent(f"What's the weather like in {city} today?"))
    '''
)


def _tool_reply(city: str, tokens: int) -> JsonReply:
    use = {"toolUseId": f"tooluse_{len(city)}", "name": "get_weather", "input": {"city": city}}
    return JsonReply(
        {
            "output": {"message": {"role": "assistant", "content": [{"toolUse": use}]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": tokens, "outputTokens": 10, "totalTokens": tokens + 10},
            "metrics": {"latencyMs": 5},
        }
    )


def _answer(text: str, tokens: int) -> JsonReply:
    return JsonReply(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": tokens, "outputTokens": 5, "totalTokens": tokens + 5},
            "metrics": {"latencyMs": 5},
        }
    )


def _run(tmp_path: Path, fake: FakeBedrock, store: str, **extra_env: str) -> str:
    fake.enqueue(
        _tool_reply("San Francisco, CA", 100),
        _answer("Sunny in SF.", 120),
        _tool_reply("Paris", 200),
        _answer("No idea for Paris.", 220),
    )
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {
        **os.environ,
        "FAKE_BEDROCK_URL": fake.endpoint_url,
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        "OTEL_TRACES_EXPORTER": "spanlake",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "SPANLAKE_STORE": store,
        "SPANLAKE_EXPERIMENT": "bedrock-zero-code",
        # The app uses neither SDK; importing them would only slow the start-up down.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "spanlake_openai,spanlake_anthropic",
        **extra_env,
    }
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'zero.db'}"


def test_agent_under_opentelemetry_instrument(
    tmp_path: Path, fake: FakeBedrock, store_uri: str
) -> None:
    out = _run(tmp_path, fake, store_uri)
    assert out.splitlines() == ["Sunny in SF.", "No idea for Paris."]

    traces = sorted(query.search_traces(["bedrock-zero-code"], store=store_uri), key=_input_tokens)
    assert len(traces) == 2
    expected = [(100 + 120, 15), (200 + 220, 15)]
    assert [(t.token_usage.input_tokens, t.token_usage.output_tokens) for t in traces] == expected
    for info in traces:
        trace = query.get_trace(info.trace_id, store=store_uri)
        roots = [s for s in trace.spans if not s.parent_span_id]
        assert [r.name for r in roots] == ["run_tool_agent"]
        children = sorted(
            (s for s in trace.spans if s.parent_span_id == roots[0].span_id),
            key=lambda s: s.start_time_ns,
        )
        assert [str(c.span_type) for c in children] == ["CHAT_MODEL", "TOOL", "CHAT_MODEL"]


def test_disabled_by_entry_point_name(tmp_path: Path, fake: FakeBedrock, store_uri: str) -> None:
    _run(
        tmp_path,
        fake,
        store_uri,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="spanlake_bedrock,spanlake_openai,spanlake_anthropic",
    )
    traces = query.search_traces(["bedrock-zero-code"], store=store_uri)
    assert len(traces) == 2
    for info in traces:
        spans = query.get_trace(info.trace_id, store=store_uri).spans
        assert sorted(str(s.span_type) for s in spans) == ["AGENT", "TOOL"]


def _input_tokens(info: Any) -> int:
    return int(info.token_usage.input_tokens)
