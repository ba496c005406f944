"""Zero code: an unmodified LangGraph tool-calling agent (langchain-openai against the fake
OpenAI API) run under ``opentelemetry-instrument`` lands in the store, and the
``spanlake traces get`` CLI prints it as one tree per question: the app's ``@trace`` span,
the graph, its steps, the chat-model calls with the OpenAI SDK span nested in each, the
tool, and the ``@trace`` helpers the tool ran in its own asyncio tasks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes.openai_server import ChatReply, FakeOpenAI, ToolCall, Usage

pytest.importorskip("langchain_openai")
pytest.importorskip("langgraph")

BIN = Path(sys.executable).parent

APP = textwrap.dedent(
    '''
    import asyncio, os
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition
    from spanlake.tracing import SpanType, trace

    @trace(span_type=SpanType.RETRIEVER)
    async def lookup(source: str, city: str) -> str:
        await asyncio.sleep(0)
        return {"Paris": "rainy"}.get(city, "sunny") if source == "radar" else "mild"

    @tool
    async def get_weather(city: str) -> str:
        """The weather of a city."""
        radar, climate = await asyncio.gather(lookup("radar", city), lookup("climate", city))
        return f"{radar}, {climate}"

    llm = ChatOpenAI(model="gpt-4o-mini", base_url=os.environ["FAKE_OPENAI_URL"],
                     api_key="sk-test", max_retries=0).bind_tools([get_weather])

    async def agent(state: MessagesState):
        return {"messages": [await llm.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    app = graph.compile()

    @trace(span_type=SpanType.AGENT)
    async def run_agent(question: str) -> str:
        state = await app.ainvoke({"messages": [("user", question)]})
        return state["messages"][-1].content

    async def main():
        for answer in await asyncio.gather(run_agent("Weather in Paris?"), run_agent("And Rome?")):
            print(answer)

    asyncio.run(main())
    '''
)


def _replies() -> list[ChatReply]:
    def call(city: str) -> ChatReply:
        args = json.dumps({"city": city})
        return ChatReply(
            text=None,
            tool_calls=[ToolCall("get_weather", args, id=f"call_{city}")],
            usage=Usage(input_tokens=50, output_tokens=10),
        )

    answer = ChatReply(text="Done.", usage=Usage(input_tokens=80, output_tokens=5))
    return [call("Paris"), call("Rome"), answer, answer]


TREE = [
    "run_agent [AGENT]",
    "invoke_agent LangGraph [AGENT]",
    "agent [CHAIN]",
    "ChatOpenAI [CHAT_MODEL]",
    "chat gpt-4o-mini [CHAT_MODEL]",
    "tools_condition [CHAIN]",
    "tools [CHAIN]",
    "execute_tool get_weather [TOOL]",
    "lookup [RETRIEVER]",
    "lookup [RETRIEVER]",
    "agent [CHAIN]",
    "ChatOpenAI [CHAT_MODEL]",
    "chat gpt-4o-mini [CHAT_MODEL]",
    "tools_condition [CHAIN]",
]
DEPTHS = [0, 1, 2, 3, 4, 3, 2, 3, 4, 4, 2, 3, 4, 3]


def test_langgraph_agent_zero_code_read_back_through_the_cli(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'spanlake.db'}"
    (tmp_path / "app.py").write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SPANLAKE_"))}
    with FakeOpenAI() as fake:
        fake.script(*_replies())
        env.update(
            FAKE_OPENAI_URL=fake.base_url,
            OTEL_TRACES_EXPORTER="spanlake",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            SPANLAKE_STORE=store,
            SPANLAKE_EXPERIMENT="langgraph",
            # The app uses neither SDK; importing them would only slow the start-up down.
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="spanlake_anthropic,spanlake_bedrock",
        )
        done = subprocess.run(
            [str(BIN / "opentelemetry-instrument"), sys.executable, "app.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Done.", "Done."]
    assert "Error in" not in done.stderr and "Failed to detach" not in done.stderr, done.stderr

    cli = str(BIN / "spanlake")
    listed = subprocess.run(
        [cli, "traces", "list", "--store", store, "--experiment", "langgraph", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    traces = json.loads(listed.stdout)
    traces = traces["traces"] if isinstance(traces, dict) else traces
    assert len(traces) == 2
    for info in traces:
        shown = subprocess.run(
            [cli, "traces", "get", info["trace_id"], "--store", store],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.splitlines()
        # Header: tokens of the two chat steps, each counted once (50+10 and 80+5).
        assert "spans 14  tokens 145 (in 130 / out 15)" in shown[1], shown[1]
        body = shown[2:]
        names = [re.sub(r"^[\s│├└─]*", "", line).split("  ")[0] for line in body]
        assert names == TREE, "\n".join(shown)
        depths = [len(re.match(r"^[\s│├└─]*", line).group(0)) // 4 for line in body]  # type: ignore[union-attr]
        assert depths == [d + 1 for d in DEPTHS], "\n".join(shown)  # "└── " before the root
        framework_lines = [line for line in body if "ChatOpenAI [CHAT_MODEL]" in line]
        assert all("gpt-4o-mini" in line and "tokens" in line for line in framework_lines)
