"""Issue 11 defects seen on the real recordings, shown on the fake with the real SDK:
choice count only when n != 1, ``extra_body`` service tier, system messages kept in the
message list, embeddings input text recorded with content capture on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
from fakes.openai_server import ChatReply, FakeOpenAI
from opentelemetry.sdk.trace import ReadableSpan


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_choice_count_only_when_not_one_and_extra_body_tier(
    client: openai.OpenAI, fake: FakeOpenAI, instrumented: Any
) -> None:
    fake.script(ChatReply(text="a"), ChatReply(text="b"))
    msgs: Any = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=msgs, n=1)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=msgs, n=2, extra_body={"service_tier": "flex"}
    )
    first, second = (attrs(s) for s in instrumented.get_finished_spans())
    assert "gen_ai.request.choice.count" not in first  # n=1 is the default: not recorded
    assert second["gen_ai.request.choice.count"] == 2
    assert second["openai.request.service_tier"] == "flex"


def test_system_message_stays_in_the_message_list(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    fake.script(ChatReply(text="Sunny."))
    msgs: Any = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Weather?"},
    ]
    client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    a = attrs(one_span())
    messages = json.loads(a["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["parts"] == [{"type": "text", "content": "You are terse."}]
    assert "gen_ai.system_instructions" not in a
    output = json.loads(a["gen_ai.output.messages"])
    assert all(m.get("finish_reason") != "" for m in output)


def test_embeddings_input_text_recorded(
    client: openai.OpenAI, fake: FakeOpenAI, one_span: Callable[[], ReadableSpan]
) -> None:
    client.embeddings.create(model="text-embedding-3-small", input=["red apple", "green pear"])
    messages = json.loads(attrs(one_span())["gen_ai.input.messages"])
    texts = [p["content"] for m in messages for p in m["parts"] if p["type"] == "text"]
    assert texts == ["red apple", "green pear"]
