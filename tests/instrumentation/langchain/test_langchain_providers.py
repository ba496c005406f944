"""One logical LLM step for every LangChain x instrumented-SDK pair installed here:
langchain-openai -> openai, langchain-anthropic -> anthropic, langchain-aws -> boto3 Bedrock
(Converse). Each chat-model call is the framework's CHAT_MODEL span with the SDK's span as
its only child (never two sibling chat spans), and the trace stored through our exporter
counts its tokens and cost once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.anthropic_server import FakeAnthropic
from fakes.anthropic_server import Reply as AnthropicReply
from fakes.anthropic_server import Usage as AnthropicUsage
from fakes.bedrock_server import FakeBedrock, JsonReply
from fakes.openai_server import ChatReply, FakeOpenAI, Usage
from span_tree import Tree, attrs

from spanlake.exporter import SpanlakeSpanExporter
from spanlake.exporter.store import open_store
from spanlake.semconv import gen_ai as ga
from spanlake.tracing import SpanType, trace

langchain_anthropic = pytest.importorskip("langchain_anthropic")
langchain_aws = pytest.importorskip("langchain_aws")
langchain_openai = pytest.importorskip("langchain_openai")

CLAUDE = "claude-sonnet-4-20250514"
NOVA = "amazon.nova-lite-v1:0"


@pytest.fixture
def openai_model() -> Iterator[Any]:
    with FakeOpenAI() as fake:
        fake.script(ChatReply(text="hi", usage=Usage(input_tokens=30, output_tokens=5)))
        yield (
            langchain_openai.ChatOpenAI(
                model="gpt-4o-mini", base_url=fake.base_url, api_key="sk-test", max_retries=0
            ),
            "ChatOpenAI",
            "chat gpt-4o-mini",
            (30, 5),
        )


@pytest.fixture
def anthropic_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with FakeAnthropic() as fake:
        fake.script(
            AnthropicReply(
                text="hi",
                usage=AnthropicUsage(input_tokens=20, output_tokens=6, cache_read_input_tokens=10),
            )
        )
        yield (
            langchain_anthropic.ChatAnthropic(
                model=CLAUDE,
                base_url=fake.base_url,
                api_key="sk-ant-test",
                max_retries=0,
                max_tokens=64,
            ),
            "ChatAnthropic",
            f"chat {CLAUDE}",
            (30, 6),  # both sides count the cache read in the input tokens
        )


@pytest.fixture
def bedrock_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    with FakeBedrock() as fake:
        fake.enqueue(
            JsonReply(
                {
                    "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
                    "stopReason": "end_turn",
                    "usage": {"inputTokens": 25, "outputTokens": 4, "totalTokens": 29},
                    "metrics": {"latencyMs": 3},
                }
            )
        )
        yield (
            langchain_aws.ChatBedrockConverse(
                model=NOVA, region_name="us-east-1", endpoint_url=fake.endpoint_url
            ),
            "ChatBedrockConverse",
            f"chat {NOVA}",
            (25, 4),
        )


@pytest.mark.parametrize("pair", ["openai_model", "anthropic_model", "bedrock_model"])
def test_one_logical_llm_step_per_call(
    pair: str, request: pytest.FixtureRequest, tree: Any, tmp_path: Path
) -> None:
    model, framework_name, sdk_name, tokens = request.getfixturevalue(pair)

    @trace(name="app", span_type=SpanType.AGENT)
    def app() -> str:
        return str(model.invoke("hello").content)

    assert app() == "hi"
    t: Tree = tree()
    assert t.render() == [
        "app [AGENT]",
        f"  {framework_name} [CHAT_MODEL]",
        f"    {sdk_name} [CHAT_MODEL]",
    ]
    framework, sdk = t.one(framework_name), t.one(sdk_name)
    for span in (framework, sdk):
        a = attrs(span)
        assert (a[ga.USAGE_INPUT_TOKENS], a[ga.USAGE_OUTPUT_TOKENS]) == tokens, span.name
    assert attrs(framework)[ga.PROVIDER_NAME] == attrs(sdk)[ga.PROVIDER_NAME]

    # Stored through our exporter, the trace counts the step's tokens once.
    uri = f"sqlite:///{tmp_path / 'spanlake.db'}"
    exporter = SpanlakeSpanExporter(uri, "pairs")
    exporter.export(list(t.spans))
    exporter.shutdown()
    store = open_store(uri)
    (info,) = store.search_traces(experiment_names=["pairs"]).traces
    assert (info.token_usage.input_tokens, info.token_usage.output_tokens) == tokens
    store.close()


def test_anthropic_stream_nests_the_sdk_stream(anthropic_model: Any, tree: Any) -> None:
    model = anthropic_model[0]

    async def app() -> str:
        return "".join([str(c.content) async for c in model.astream("hello")])

    assert asyncio.run(app()) == "hi"
    t: Tree = tree()
    assert t.render() == ["ChatAnthropic [CHAT_MODEL]", f"  chat {CLAUDE} [CHAT_MODEL]"]
    assert attrs(t.one(f"chat {CLAUDE}"))[ga.REQUEST_STREAM] is True
    assert attrs(t.one("ChatAnthropic"))[ga.REQUEST_STREAM] is True
