"""Demo: an async tool-calling Claude agent (MLflow's Anthropic tracing example), traced.

Run it zero-code, exactly as a user would (``examples/run_demo.sh`` does this)::

    OTEL_TRACES_EXPORTER=spanlake opentelemetry-instrument python examples/agent_demo.py

There is no internet here, so the real ``anthropic`` SDK talks to the loopback fake
Messages API from ``tests/fakes`` (the same one the test suite uses). Each question becomes
one trace: the agent span as root, the Claude calls and the tool call nested under it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import anthropic

from spanlake.tracing import SpanType, trace, update_current_trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fakes.anthropic_server import FakeAnthropic, Reply, ToolUse, Usage

MODEL = "claude-sonnet-4-20250514"
TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]
QUESTIONS = {
    "Tokyo": "What's the weather like in Tokyo today?",
    "Paris": "Should I take an umbrella in Paris?",
    "Cairo": "Is it hot in Cairo right now?",
}
WEATHER = {"Tokyo": "sunny, 24°C", "Paris": "light rain, 14°C", "Cairo": "clear, 35°C"}


@trace(span_type=SpanType.TOOL)
async def get_weather(city: str) -> str:
    await asyncio.sleep(0.01)  # a real tool would call an API
    return WEATHER.get(city, "unknown")


client: anthropic.AsyncAnthropic  # created in main(), once the local API is up


@trace(span_type=SpanType.AGENT)
async def run_agent(question: str) -> str:
    update_current_trace(tags={"app": "weather-agent"}, user="demo-user", session="demo-session")
    messages: list[dict[str, object]] = [{"role": "user", "content": question}]
    while True:
        response = await client.messages.create(
            model=MODEL,
            max_tokens=1024,
            tools=TOOLS,
            messages=messages,  # type: ignore[arg-type]
        )
        if response.stop_reason != "tool_use":
            return "".join(b.text for b in response.content if b.type == "text")
        messages.append(
            {"role": "assistant", "content": [b.model_dump() for b in response.content]}
        )
        results = []
        for block in response.content:
            if block.type == "tool_use":
                output = await get_weather(**block.input)  # type: ignore[arg-type]
                results.append({"type": "tool_result", "tool_use_id": block.id, "content": output})
        messages.append({"role": "user", "content": results})


async def main() -> None:
    with FakeAnthropic() as fake:
        # First the model asks for the tool (one call per question), then it answers.
        fake.script(
            *[
                Reply(
                    text=None,
                    tool_uses=[ToolUse("get_weather", {"city": c}, id=f"toolu_{c}")],
                    usage=Usage(input_tokens=420, output_tokens=38),
                )
                for c in QUESTIONS
            ],
            *[
                Reply(
                    text="I checked the current weather for you: see the tool result above.",
                    usage=Usage(input_tokens=510, output_tokens=24, cache_read_input_tokens=400),
                )
                for c in QUESTIONS
            ],
        )
        global client
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="demo-key")
        answers = await asyncio.gather(*(run_agent(q) for q in QUESTIONS.values()))
    print(json.dumps(dict(zip(QUESTIONS, answers, strict=True)), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
