"""Seed 004's async tool-calling agent, run against the fake API under our instrumentation.

Three questions run concurrently with ``asyncio.gather``; each must become its own trace
with the ``@trace``-decorated agent span as root, the two LLM calls and the tool span as its
children, and the token usage on the LLM spans only.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import anthropic
from fakes.anthropic_server import FakeAnthropic, Reply, ToolUse, Usage
from opentelemetry.sdk.trace import ReadableSpan

from spanlake.semconv import gen_ai as ga
from spanlake.semconv.spanlake_attrs import SPAN_TYPE
from spanlake.tracing import SpanType, trace

MODEL = "claude-3-5-sonnet-20241022"  # the seed's model
WEATHER = {"Tokyo": "sunny", "Paris": "rainy"}


def _respond(body: dict[str, Any]) -> Reply:
    """The model: ask for the tool on a question, answer from the tool result."""
    last = body["messages"][-1]
    if isinstance(last["content"], str):
        city = re.search(r"in (\w+) today", last["content"]).group(1)  # type: ignore[union-attr]
        return Reply(
            text=None,
            tool_uses=[ToolUse("get_weather", {"city": city}, id=f"toolu_{city}")],
            usage=Usage(input_tokens=50, output_tokens=20),
        )
    result = last["content"][0]["content"]
    return Reply(text=f"The weather is {result}.", usage=Usage(input_tokens=80, output_tokens=10))


def _build_agent(client: anthropic.AsyncAnthropic) -> Any:
    # Verbatim in spirit from the seed, with spanlake's @trace in place of @mlflow.trace.
    @trace(span_type=SpanType.TOOL)
    async def get_weather(city: str) -> str:
        return WEATHER.get(city, "unknown")

    tools: Any = [
        {
            "name": "get_weather",
            "description": "Returns the weather condition of a given city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    tool_functions = {"get_weather": get_weather}

    @trace(span_type=SpanType.AGENT)
    async def run_tool_agent(question: str) -> str:
        messages: list[Any] = [{"role": "user", "content": question}]
        ai_msg = await client.messages.create(
            model=MODEL, messages=messages, tools=tools, max_tokens=2048
        )
        messages.append({"role": "assistant", "content": ai_msg.content})
        tool_calls = [c for c in ai_msg.content if c.type == "tool_use"]
        for tool_call in tool_calls:
            if tool_func := tool_functions.get(tool_call.name):
                tool_result = await tool_func(**tool_call.input)  # type: ignore[arg-type]
            else:
                raise RuntimeError("An invalid tool is returned from the assistant!")
            messages.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": tool_call.id, "content": tool_result}
                    ],
                }
            )
        response = await client.messages.create(model=MODEL, messages=messages, max_tokens=2048)
        return response.content[-1].text  # type: ignore[union-attr]

    return run_tool_agent


async def test_seed_004_tool_agent_one_trace_per_question(
    aclient: anthropic.AsyncAnthropic, fake: FakeAnthropic, rec: Any
) -> None:
    fake.responder = _respond
    agent = _build_agent(aclient)
    cities = ["Tokyo", "Paris", "Sydney"]
    questions = [f"What's the weather like in {city} today?" for city in cities]
    answers = await asyncio.gather(*(agent(q) for q in questions))
    assert answers == ["The weather is sunny.", "The weather is rainy.", "The weather is unknown."]

    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in rec.all():
        by_trace.setdefault(span.context.trace_id, []).append(span)
    assert len(by_trace) == 3
    for spans in by_trace.values():
        assert len(spans) == 4  # agent, LLM (tool call), tool, LLM (answer): no native SDK span
        (root,) = [s for s in spans if s.parent is None]
        assert root.name == "run_tool_agent"
        assert (root.attributes or {})[SPAN_TYPE] == "AGENT"
        children = sorted((s for s in spans if s is not root), key=lambda s: s.start_time or 0)
        assert all(
            s.parent is not None and s.parent.span_id == root.context.span_id for s in children
        )
        assert [(s.attributes or {})[SPAN_TYPE] for s in children] == [
            "CHAT_MODEL",
            "TOOL",
            "CHAT_MODEL",
        ]
        first, tool, second = children
        city = json.loads(str((tool.attributes or {})["spanlake.span.inputs"]))["city"]
        assert (first.attributes or {})[ga.RESPONSE_FINISH_REASONS] == ("tool_use",)
        calls = json.loads(str((first.attributes or {})[ga.OUTPUT_MESSAGES]))[0]["parts"]
        assert calls == [
            {
                "type": "tool_call",
                "id": f"toolu_{city}",
                "name": "get_weather",
                "arguments": {"city": city},
            }
        ]
        history = json.loads(str((second.attributes or {})[ga.INPUT_MESSAGES]))
        assert history[-1]["parts"] == [
            {
                "type": "tool_call_response",
                "id": f"toolu_{city}",
                "response": WEATHER.get(city, "unknown"),
            }
        ]
        tokens = [
            (
                (s.attributes or {}).get(ga.USAGE_INPUT_TOKENS),
                (s.attributes or {}).get(ga.USAGE_OUTPUT_TOKENS),
            )
            for s in children
        ]
        assert tokens == [(50, 20), (None, None), (80, 10)]
