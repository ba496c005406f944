"""End to end: the Bedrock tool-calling agent of seed 000 (MLflow's Bedrock autolog doc),
with spanlake's ``@trace`` instead of ``@mlflow.trace``, against the fake Bedrock.

One trace per question: the AGENT span is the root, the two LLM calls and the TOOL span
are its children in call order, and the store's per-trace token total is the sum of the
two LLM calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes.bedrock_server import FakeBedrock, JsonReply
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sdk_features import botocore_knows

pytest.importorskip("spanlake.tracing")

MODEL_ID = "anthropic.claude-3-5-sonnet-20241022-v2:0"
TOOLS = [
    {
        "toolSpec": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "inputSchema": {
                "json": {
                    "type": "object",
                    "properties": {
                        "city": {
                            "type": "string",
                            "description": "The city and state, e.g., San Francisco, CA",
                        },
                    },
                    "required": ["city"],
                }
            },
        }
    }
]


def _cached() -> int:
    """The second call's cache-read tokens as the SDK reports them: botocore models older
    than prompt caching drop ``cacheReadInputTokens`` before any instrumentation sees it."""
    return 350 if botocore_knows("TokenUsage", "cacheReadInputTokens") else 0


def build_agent(bedrock: Any) -> Any:
    """Seed 000's agent, verbatim but for the decorator's import."""
    from spanlake.tracing import SpanType, trace

    @trace(span_type=SpanType.TOOL)
    def get_weather(city: str) -> str:
        """Get the current weather in a given location"""
        return "sunny" if city == "San Francisco, CA" else "unknown"

    tool_functions = {"get_weather": get_weather}

    @trace(span_type=SpanType.AGENT)
    def run_tool_agent(question: str) -> str:
        messages = [{"role": "user", "content": [{"text": question}]}]
        response = bedrock.converse(
            modelId=MODEL_ID, messages=messages, toolConfig={"tools": TOOLS}
        )
        assistant_message = response["output"]["message"]
        messages.append(assistant_message)
        tool_use = next(
            (c["toolUse"] for c in assistant_message["content"] if "toolUse" in c), None
        )
        if tool_use:
            tool_func = tool_functions[tool_use["name"]]
            tool_result = tool_func(**tool_use["input"])
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "toolResult": {
                                "toolUseId": tool_use["toolUseId"],
                                "content": [{"text": tool_result}],
                            }
                        }
                    ],
                }
            )
            response = bedrock.converse(
                modelId=MODEL_ID, messages=messages, toolConfig={"tools": TOOLS}
            )
        return str(response["output"]["message"]["content"][0]["text"])

    return run_tool_agent


def script(fake: FakeBedrock) -> None:
    """The model asks for the tool, then answers with the tool's result."""
    fake.enqueue(
        JsonReply(
            {
                "output": {
                    "message": {
                        "role": "assistant",
                        "content": [
                            {
                                "toolUse": {
                                    "toolUseId": "tooluse_sf",
                                    "name": "get_weather",
                                    "input": {"city": "San Francisco, CA"},
                                }
                            }
                        ],
                    }
                },
                "stopReason": "tool_use",
                "usage": {"inputTokens": 300, "outputTokens": 40, "totalTokens": 340},
                "metrics": {"latencyMs": 10},
            }
        ),
        JsonReply(
            {
                "output": {
                    "message": {
                        "role": "assistant",
                        "content": [{"text": "It is sunny in San Francisco today."}],
                    }
                },
                "stopReason": "end_turn",
                "usage": {
                    "inputTokens": 20,
                    "outputTokens": 12,
                    "totalTokens": 382,
                    "cacheReadInputTokens": 350,
                },
                "metrics": {"latencyMs": 10},
            }
        ),
    )


def test_seed_000_agent_is_one_nested_trace(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter
) -> None:
    script(fake)
    answer = build_agent(client)("What's the weather like in San Francisco today?")
    assert answer == "It is sunny in San Francisco today."
    # The tool's result really went back to the model.
    second = fake.requests[-1].body["messages"][-1]["content"][0]["toolResult"]
    assert second == {"toolUseId": "tooluse_sf", "content": [{"text": "sunny"}]}

    spans = sorted(instrumented.get_finished_spans(), key=lambda s: s.start_time or 0)
    assert len({s.context.trace_id for s in spans}) == 1
    root = spans[0]
    assert root.parent is None
    assert (root.attributes or {})["spanlake.span.type"] == "AGENT"
    children = spans[1:]
    assert [(c.attributes or {})["spanlake.span.type"] for c in children] == [
        "CHAT_MODEL",
        "TOOL",
        "CHAT_MODEL",
    ]
    assert all(c.parent is not None and c.parent.span_id == root.context.span_id for c in children)
    first_llm, tool, second_llm = children
    assert (first_llm.attributes or {})["gen_ai.response.finish_reasons"] == ("tool_use",)
    calls = json.loads(str((first_llm.attributes or {})["gen_ai.output.messages"]))[0]["parts"]
    assert calls[0]["type"] == "tool_call" and calls[0]["name"] == "get_weather"
    assert "sunny" in str((tool.attributes or {}).get("spanlake.span.outputs"))
    assert (second_llm.attributes or {})["gen_ai.usage.input_tokens"] == 20 + _cached()


def test_seed_000_agent_token_totals_in_the_store(
    client: Any, fake: FakeBedrock, instrumented: InMemorySpanExporter, sqlite_uri: str
) -> None:
    exporter_mod = pytest.importorskip("spanlake.exporter")
    query = pytest.importorskip("spanlake.query")
    script(fake)
    build_agent(client)("What's the weather like in San Francisco today?")
    spans = instrumented.get_finished_spans()

    exporter = exporter_mod.SpanlakeSpanExporter(sqlite_uri, experiment="bedrock-agent")
    try:
        exporter.export(spans)
        (info,) = query.search_traces(["bedrock-agent"], store=exporter.store)
    finally:
        exporter.shutdown()
    usage = info.token_usage
    assert usage.input_tokens == 300 + 20 + _cached()
    assert usage.output_tokens == 40 + 12
    assert usage.cache_read_input_tokens == _cached()
