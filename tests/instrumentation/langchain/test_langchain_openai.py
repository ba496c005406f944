"""LangChain and LangGraph driven for real (langchain-openai -> the real openai SDK -> the
loopback fake OpenAI API) under our LangChain and OpenAI instrumentations: chains, batch,
streams, astream_events, a tool-calling graph, errors, content modes, containment."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fakes.openai_server import ChatReply, FakeOpenAI, ToolCall, Usage, bad_request
from opentelemetry.trace import StatusCode
from span_tree import Tree, attrs

pytest.importorskip("langchain_openai")

from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from spanlake.instrumentation.langchain import _messages
from spanlake.semconv import gen_ai as ga
from spanlake.semconv.spanlake_attrs import SPAN_INPUTS, SPAN_OUTPUTS, TRUNCATED
from spanlake.tracing import SpanType, trace

MODEL = "gpt-4o-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def llm(fake: FakeOpenAI) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL, base_url=fake.base_url, api_key="sk-test", max_retries=0, temperature=0.2
    )


@tool
def get_weather(city: str) -> str:
    """The weather of a city."""
    if city == "Atlantis":
        raise ValueError("no such city")
    return {"Paris": "rainy"}.get(city, "sunny")


def _graph(llm: ChatOpenAI, *, is_async: bool = False) -> Any:
    bound = llm.bind_tools([get_weather])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", aagent if is_async else agent)
    graph.add_node("tools", ToolNode([get_weather]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


def _tool_turn(city: str, call_id: str) -> list[ChatReply]:
    return [
        ChatReply(
            text=None,
            tool_calls=[ToolCall("get_weather", json.dumps({"city": city}), id=call_id)],
            usage=Usage(input_tokens=40, output_tokens=9),
        ),
        ChatReply(text=f"It is nice in {city}.", usage=Usage(input_tokens=60, output_tokens=7)),
    ]


AGENT_TREE = [
    "app [AGENT]",
    "  invoke_agent LangGraph [AGENT]",
    "    agent [CHAIN]",
    "      ChatOpenAI [CHAT_MODEL]",
    f"        chat {MODEL} [CHAT_MODEL]",
    "      tools_condition [CHAIN]",
    "    tools [CHAIN]",
    "      execute_tool get_weather [TOOL]",
    "    agent [CHAIN]",
    "      ChatOpenAI [CHAT_MODEL]",
    f"        chat {MODEL} [CHAT_MODEL]",
    "      tools_condition [CHAIN]",
]


def test_chain_nests_prompt_model_sdk_and_parser_under_the_app_span(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any
) -> None:
    fake.script(ChatReply(text="Bonjour", usage=Usage(input_tokens=11, output_tokens=2)))
    chain = (
        ChatPromptTemplate.from_messages([("system", "Translate."), ("user", "{text}")])
        | llm
        | StrOutputParser()
    )

    @trace(name="app", span_type=SpanType.CHAIN)
    def app(text: str) -> str:
        return chain.invoke({"text": text})

    assert app("Hello") == "Bonjour"
    t: Tree = tree()
    assert t.render() == [
        "app [CHAIN]",
        "  RunnableSequence [CHAIN]",
        "    ChatPromptTemplate [CHAIN]",
        "    ChatOpenAI [CHAT_MODEL]",
        f"      chat {MODEL} [CHAT_MODEL]",
        "    StrOutputParser [PARSER]",
    ]
    framework, sdk = t.one("ChatOpenAI"), t.one(f"chat {MODEL}")
    fa = attrs(framework)
    assert fa[ga.OPERATION_NAME] == "chat" and fa[ga.PROVIDER_NAME] == "openai"
    assert fa[ga.REQUEST_MODEL] == MODEL and fa[ga.REQUEST_TEMPERATURE] == 0.2
    assert (fa[ga.USAGE_INPUT_TOKENS], fa[ga.USAGE_OUTPUT_TOKENS]) == (11, 2)
    assert fa[ga.RESPONSE_FINISH_REASONS] == ("stop",)
    assert json.loads(fa[ga.INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Translate."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hello"}]},
    ]
    assert json.loads(fa[ga.OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Bonjour"}],
            "finish_reason": "stop",
        }
    ]
    # One logical LLM step: the SDK span is the framework span's only child, with the same usage.
    assert t.kids(framework) == [sdk]
    assert (attrs(sdk)[ga.USAGE_INPUT_TOKENS], attrs(sdk)[ga.USAGE_OUTPUT_TOKENS]) == (11, 2)
    assert json.loads(attrs(t.one("RunnableSequence"))[SPAN_OUTPUTS]) == "Bonjour"
    assert json.loads(attrs(t.one("RunnableSequence"))[SPAN_INPUTS]) == {"text": "Hello"}


def test_langgraph_tool_agent_spans_steps_tools_and_llm_calls(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any
) -> None:
    fake.script(*_tool_turn("Paris", "call_paris"))
    graph = _graph(llm)

    @trace(name="app", span_type=SpanType.AGENT)
    def app(question: str) -> str:
        return str(graph.invoke({"messages": [("user", question)]})["messages"][-1].content)

    assert app("Weather in Paris?") == "It is nice in Paris."
    t: Tree = tree()
    assert t.render() == AGENT_TREE
    graph_span = t.one("invoke_agent LangGraph")
    assert attrs(graph_span)[ga.OPERATION_NAME] == "invoke_agent"
    assert attrs(graph_span)[ga.AGENT_NAME] == "LangGraph"
    steps = [attrs(s).get("spanlake.langgraph.step") for s in t.kids(graph_span)]
    assert steps == [1, 2, 3]
    tool_span = attrs(t.one("execute_tool get_weather"))
    assert tool_span[ga.OPERATION_NAME] == "execute_tool"
    assert tool_span[ga.TOOL_NAME] == "get_weather"
    assert tool_span[ga.TOOL_CALL_ID] == "call_paris"
    assert tool_span[ga.TOOL_DESCRIPTION] == "The weather of a city."
    assert json.loads(tool_span[ga.TOOL_CALL_ARGUMENTS]) == {"city": "Paris"}
    assert json.loads(tool_span[ga.TOOL_CALL_RESULT]) == "rainy"
    first_llm = t.named("ChatOpenAI")[0]
    out = json.loads(attrs(first_llm)[ga.OUTPUT_MESSAGES])
    assert out[0]["parts"] == [
        {
            "type": "tool_call",
            "id": "call_paris",
            "name": "get_weather",
            "arguments": {"city": "Paris"},
        }
    ]
    assert json.loads(attrs(first_llm)[ga.TOOL_DEFINITIONS])[0]["name"] == "get_weather"
    history = json.loads(attrs(t.named("ChatOpenAI")[1])[ga.INPUT_MESSAGES])
    assert history[-1] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "call_paris", "response": "rainy"}],
    }


async def test_concurrent_async_agents_each_nest_in_their_own_trace(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any
) -> None:
    graph = _graph(llm, is_async=True)

    @trace(name="app", span_type=SpanType.AGENT)
    async def app(question: str) -> Any:
        return await graph.ainvoke({"messages": [("user", question)]})

    fake.script(
        _tool_turn("Paris", "call_a")[0],
        _tool_turn("Rome", "call_b")[0],
        ChatReply(text="done"),
        ChatReply(text="done"),
    )
    await asyncio.gather(app("a"), app("b"))
    t: Tree = tree()
    assert len(t.roots()) == 2
    assert len({s.context.trace_id for s in t.spans}) == 2
    for root in t.roots():
        assert t.render(root) == AGENT_TREE
        # Every span of the trace hangs off this root.
        trace_spans = [s for s in t.spans if s.context.trace_id == root.context.trace_id]
        assert len(trace_spans) == len(AGENT_TREE)


def test_stream_keeps_one_step_nested_and_marks_the_stream(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any
) -> None:
    fake.script(ChatReply(text="one two three four", usage=Usage(input_tokens=5, output_tokens=4)))
    llm.stream_usage = True

    @trace(name="app")
    def app() -> str:
        return "".join(str(chunk.content) for chunk in llm.stream("count"))

    assert app() == "one two three four"
    t: Tree = tree()
    assert t.render()[1:] == [
        "  ChatOpenAI [CHAT_MODEL]",
        f"    chat {MODEL} [CHAT_MODEL]",
    ]
    span = attrs(t.one("ChatOpenAI"))
    assert span[ga.REQUEST_STREAM] is True
    assert span["spanlake.stream.chunks"] >= 4
    assert span[ga.RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert (span[ga.USAGE_INPUT_TOKENS], span[ga.USAGE_OUTPUT_TOKENS]) == (5, 4)
    assert json.loads(span[ga.OUTPUT_MESSAGES])[0]["parts"] == [
        {"type": "text", "content": "one two three four"}
    ]


async def test_astream_and_astream_events_nest_the_sdk_span(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any, instrumented: Any
) -> None:
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | llm | StrOutputParser()
    fake.script(ChatReply(text="streamed answer"), ChatReply(text="evented answer"))

    @trace(name="app")
    async def app() -> tuple[str, list[str]]:
        text = "".join([c async for c in chain.astream({"q": "x"})])
        events = [e["event"] async for e in chain.astream_events({"q": "y"}, version="v2")]
        return text, events

    text, events = await app()
    assert text == "streamed answer" and "on_chat_model_stream" in events
    t: Tree = tree()
    (root,) = t.roots()
    assert (
        t.render(root)[1:]
        == [
            "  RunnableSequence [CHAIN]",
            "    ChatPromptTemplate [CHAIN]",
            "    ChatOpenAI [CHAT_MODEL]",
            f"      chat {MODEL} [CHAT_MODEL]",
            "    StrOutputParser [PARSER]",
        ]
        * 2
    )


def test_batch_gives_one_chain_per_input_each_with_its_sdk_child(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any
) -> None:
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | llm | StrOutputParser()
    fake.script(ChatReply(text="a"), ChatReply(text="b"), ChatReply(text="c"))

    @trace(name="app")
    def app() -> list[str]:
        return chain.batch([{"q": "1"}, {"q": "2"}, {"q": "3"}])

    assert sorted(app()) == ["a", "b", "c"]
    t: Tree = tree()
    (root,) = t.roots()
    assert [s.name for s in t.kids(root)] == ["RunnableSequence"] * 3
    for model_span in t.named("ChatOpenAI"):
        assert [k.name for k in t.kids(model_span)] == [f"chat {MODEL}"]


def test_provider_error_marks_each_failed_span_and_reraises_unchanged(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any
) -> None:
    fake.script(bad_request("Invalid value for 'temperature'."))
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | llm

    with pytest.raises(openai.BadRequestError) as caught:
        chain.invoke({"q": "x"})
    assert caught.value.status_code == 400
    # langchain-openai re-raises the SDK's error as its own subclass; the app gets that one.
    raised = type(caught.value).__qualname__
    t: Tree = tree()
    for name, error_type in (
        ("RunnableSequence", raised),
        ("ChatOpenAI", raised),
        (f"chat {MODEL}", "BadRequestError"),
    ):
        span = t.one(name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert attrs(span)[ga.ERROR_TYPE] == error_type, name
    assert t.one("ChatPromptTemplate").status.status_code is StatusCode.UNSET


def test_tool_error_is_on_the_tool_span(llm: ChatOpenAI, fake: FakeOpenAI, tree: Any) -> None:
    fake.script(_tool_turn("Atlantis", "call_x")[0])
    graph = _graph(llm)  # ToolNode re-raises a tool's error by default

    with pytest.raises(ValueError, match="no such city"):
        graph.invoke({"messages": [("user", "Atlantis?")]})
    t: Tree = tree()
    tool_span = t.one("execute_tool get_weather")
    assert tool_span.status.status_code is StatusCode.ERROR
    assert attrs(tool_span)[ga.ERROR_TYPE] == "ValueError"
    assert [e.name for e in tool_span.events] == ["exception"]
    # The model call before it succeeded.
    assert all(s.status.status_code is StatusCode.UNSET for s in t.named("ChatOpenAI"))


def test_retriever_records_the_query_and_documents(tree: Any) -> None:
    class Docs(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            return [Document(page_content=f"about {query}", metadata={"source": "kb"}, id="d1")]

    assert Docs().invoke("otel")[0].page_content == "about otel"
    span = tree().one("Docs")
    assert attrs(span)["spanlake.span.type"] == "RETRIEVER"
    assert attrs(span)[ga.OPERATION_NAME] == "retrieval"
    assert json.loads(attrs(span)[SPAN_INPUTS]) == {"query": "otel"}
    assert json.loads(attrs(span)[SPAN_OUTPUTS]) == [
        {"page_content": "about otel", "metadata": {"source": "kb"}, "id": "d1"}
    ]


def test_no_content_mode_records_structure_without_prompts(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
    fake.script(*_tool_turn("Paris", "call_p"))
    _graph(llm).invoke({"messages": [("user", "secret question")]})
    t: Tree = tree()
    assert t.render() == [line[2:] for line in AGENT_TREE[1:]]
    for span in t.spans:
        dumped = json.dumps(dict(span.attributes or {}))
        assert "secret question" not in dumped and "rainy" not in dumped, span.name
    assert attrs(t.one("execute_tool get_weather"))[ga.TOOL_CALL_ID] == "call_p"
    assert attrs(t.named("ChatOpenAI")[0])[ga.USAGE_INPUT_TOKENS] == 40


def test_content_cap_truncates_and_marks(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPANLAKE_CONTENT_MAX_BYTES", "300")
    fake.script(ChatReply(text="ok"))
    (ChatPromptTemplate.from_messages([("user", "{q}")]) | llm).invoke({"q": "x" * 5000})
    t: Tree = tree()
    seq, model = attrs(t.one("RunnableSequence")), attrs(t.one("ChatOpenAI"))
    assert len(seq[SPAN_INPUTS].encode()) <= 300 and json.loads(seq[SPAN_INPUTS])
    assert any(m.startswith(SPAN_INPUTS + ":") for m in seq[TRUNCATED])
    assert len(model[ga.INPUT_MESSAGES].encode()) <= 300
    assert any(m.startswith(ga.INPUT_MESSAGES + ":") for m in model[TRUNCATED])


def test_a_telemetry_bug_never_reaches_the_app(
    llm: ChatOpenAI, fake: FakeOpenAI, tree: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(_messages, "llm_response", broken)
    monkeypatch.setattr(_messages, "input_messages", broken)
    fake.script(ChatReply(text="still fine"))
    assert (llm | StrOutputParser()).invoke("hi") == "still fine"
    t: Tree = tree()
    assert sorted(s.name for s in t.spans) == sorted(
        ["RunnableSequence", "ChatOpenAI", f"chat {MODEL}", "StrOutputParser"]
    )


def test_uninstrument_stops_the_spans(llm: ChatOpenAI, fake: FakeOpenAI, instrumented: Any) -> None:
    from spanlake.instrumentation.langchain import LangChainInstrumentor
    from spanlake.instrumentation.openai import OpenAIInstrumentor

    LangChainInstrumentor().uninstrument()
    OpenAIInstrumentor().uninstrument()
    fake.script(ChatReply(text="quiet"))
    assert (llm | StrOutputParser()).invoke("hi") == "quiet"
    assert instrumented.get_finished_spans() == ()
    LangChainInstrumentor().instrument()
    OpenAIInstrumentor().instrument()


def test_a_langgraph_interrupt_is_not_an_error(tree: Any) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import interrupt

    class State(MessagesState):
        answer: str

    def ask(state: State) -> dict[str, Any]:
        return {"answer": interrupt("approve?")}

    graph = StateGraph(State)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    app = graph.compile(checkpointer=InMemorySaver())
    result = app.invoke({"messages": []}, config={"configurable": {"thread_id": "t1"}})
    assert "__interrupt__" in result
    t: Tree = tree()
    assert t.render() == ["invoke_agent LangGraph [AGENT]", "  ask [CHAIN]"]
    for span in t.spans:
        assert span.status.status_code is not StatusCode.ERROR, span.name
        assert ga.ERROR_TYPE not in attrs(span)
    assert attrs(t.one("ask"))["spanlake.langgraph.control_flow"] == "GraphInterrupt"


async def test_embeddings_nest_the_sdk_embeddings_span(fake: FakeOpenAI, tree: Any) -> None:
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=fake.base_url,
        api_key="sk-test",
        max_retries=0,
        check_embedding_ctx_length=False,
    )

    @trace(name="app")
    async def app() -> tuple[Any, Any]:
        return embeddings.embed_documents(["a cat", "a dog"]), await embeddings.aembed_query(
            "a bird"
        )

    docs, query = await app()
    assert len(docs) == 2 and isinstance(query, list)
    t: Tree = tree()
    (root,) = t.roots()
    assert t.render(root)[1:] == [
        "  OpenAIEmbeddings.embed_documents [EMBEDDING]",
        "    embeddings text-embedding-3-small [EMBEDDING]",
        "  OpenAIEmbeddings.aembed_query [EMBEDDING]",
        "    embeddings text-embedding-3-small [EMBEDDING]",
    ]
    span = attrs(t.one("OpenAIEmbeddings.embed_documents"))
    assert span[ga.OPERATION_NAME] == "embeddings" and span[ga.PROVIDER_NAME] == "openai"
    assert span[ga.REQUEST_MODEL] == "text-embedding-3-small"
    assert span[ga.EMBEDDINGS_DIMENSION_COUNT] == len(docs[0])
    assert json.loads(span[ga.INPUT_MESSAGES])[0]["parts"] == [
        {"type": "text", "content": "a cat"},
        {"type": "text", "content": "a dog"},
    ]
