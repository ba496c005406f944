"""Telemetry bugs never reach the app: every hook that fails is skipped, the call goes on."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam
from fakes.anthropic_server import FakeAnthropic, Reply

from spanlake.instrumentation.anthropic import _accumulator, _call, _wrappers
from spanlake.semconv import gen_ai as ga

MODEL = "claude-sonnet-5"
HI: list[MessageParam] = [{"role": "user", "content": "Hello, Claude"}]


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("telemetry bug")


def test_request_conversion_failure_means_no_span_but_a_normal_call(
    monkeypatch: pytest.MonkeyPatch, client: anthropic.Anthropic, rec: Any
) -> None:
    monkeypatch.setattr(_call, "build_request", _boom)
    msg = client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert msg.content[0].text == "Hello from the fake Claude."  # type: ignore[union-attr]
    assert rec.ours() == []


def test_input_content_failure_keeps_the_span(
    monkeypatch: pytest.MonkeyPatch, client: anthropic.Anthropic, rec: Any
) -> None:
    monkeypatch.setattr(_call, "input_messages", _boom)
    client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    attrs = dict(rec.one().attributes or {})
    assert ga.INPUT_MESSAGES not in attrs and attrs[ga.USAGE_OUTPUT_TOKENS] == 7


def test_response_conversion_failure_still_ends_the_span(
    monkeypatch: pytest.MonkeyPatch, client: anthropic.Anthropic, rec: Any
) -> None:
    monkeypatch.setattr(_wrappers, "build_response", _boom)
    msg = client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert msg.id.startswith("msg_")
    span = rec.one()
    assert span.end_time is not None and ga.RESPONSE_ID not in (span.attributes or {})


def test_accumulator_failure_leaves_the_stream_intact(
    monkeypatch: pytest.MonkeyPatch, client: anthropic.Anthropic, fake: FakeAnthropic, rec: Any
) -> None:
    monkeypatch.setattr(_accumulator.AnthropicAccumulator, "add", _boom)
    monkeypatch.setattr(_accumulator.AnthropicAccumulator, "response", _boom)
    fake.script(Reply(text="intact"))
    with client.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
        assert stream.get_final_text() == "intact"
    assert rec.one().end_time is not None
