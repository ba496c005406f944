"""What the conventions and the recorded bytes say one span must carry, and the check.

Every value here is derived from a recording (request body, response body or headers) by
the provider-specific readers in the test modules; nothing is hard-coded per recording.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode


@dataclass
class Message:
    """One output message as the recording has it."""

    text: str | None = None  # joined text; None = no text part expected
    tool_calls: list[tuple[str | None, str, Any]] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class Expected:
    operation: str
    provider: str
    request_model: str
    params: dict[str, Any] = field(default_factory=dict)  # attribute -> value
    absent: tuple[str, ...] = ()  # attributes that must not be set
    streaming: bool = False
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: tuple[str, ...] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    outputs: list[Message] | None = None  # None: nothing to compare (e.g. embeddings)
    input_texts: list[str] = field(default_factory=list)  # must appear in input content
    error_type: str | None = None
    stream_end: str | None = None  # spanlake.stream.end


def _parts(span: ReadableSpan, key: str) -> list[dict[str, Any]]:
    raw = span.attributes.get(key)
    assert isinstance(raw, str), f"{key} missing on {span.name}: {dict(span.attributes)}"
    value = json.loads(raw)
    assert isinstance(value, list)
    return value


def check(span: ReadableSpan, want: Expected, content: bool) -> None:
    """Assert the span against ``want``; ``content``: capture mode puts content on spans."""
    a = dict(span.attributes or {})
    assert span.name == f"{want.operation} {want.request_model}", span.name
    assert a["gen_ai.operation.name"] == want.operation
    assert a["gen_ai.provider.name"] == want.provider
    assert a["gen_ai.request.model"] == want.request_model
    for key, value in want.params.items():
        got = a.get(key)
        if isinstance(value, float):
            assert got is not None and abs(float(got) - value) < 1e-9, (key, got, value)
        else:
            assert got == value, (key, got, value)
    for key in want.absent:
        assert key not in a, (key, a.get(key))
    if want.streaming:
        assert a.get("gen_ai.request.stream") is True
    else:
        assert a.get("gen_ai.request.stream") in (None, False)
    assert a.get("gen_ai.response.id") == want.response_id
    assert a.get("gen_ai.response.model") == want.response_model
    got_reasons = a.get("gen_ai.response.finish_reasons")
    assert (tuple(got_reasons) if got_reasons is not None else None) == want.finish_reasons
    assert a.get("gen_ai.usage.input_tokens") == want.input_tokens
    assert a.get("gen_ai.usage.output_tokens") == want.output_tokens
    if want.stream_end is not None:
        assert a.get("spanlake.stream.end") == want.stream_end
    if want.error_type is not None:
        assert span.status.status_code is StatusCode.ERROR
        assert a.get("error.type") == want.error_type
        assert any(e.name == "exception" for e in span.events)
    else:
        assert span.status.status_code is StatusCode.UNSET, span.status.description
        assert "error.type" not in a
    if not content:
        for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"):
            assert key not in a, key
        return
    if want.input_texts:
        blob = a.get("gen_ai.input.messages", "") + a.get("gen_ai.system_instructions", "")
        for text in want.input_texts:
            assert json.dumps(text)[1:-1] in str(blob), (text, blob)
    if want.outputs is None:
        return
    if not any(m.text or m.tool_calls for m in want.outputs):
        assert "gen_ai.output.messages" not in a or all(
            not m.get("parts") for m in _parts(span, "gen_ai.output.messages")
        )
        return
    got = _parts(span, "gen_ai.output.messages")
    assert len(got) == len(want.outputs), (got, want.outputs)
    for message, expected in zip(got, want.outputs, strict=True):
        assert message["role"] == "assistant"
        parts = message["parts"]
        texts = [p["content"] for p in parts if p["type"] == "text"]
        if expected.text is not None:
            assert texts == [expected.text], (texts, expected.text)
        else:
            assert texts == []
        calls = [(p.get("id"), p["name"], p.get("arguments")) for p in parts if p["type"] == "tool_call"]
        assert calls == expected.tool_calls, (calls, expected.tool_calls)
        if expected.finish_reason is None:
            assert message.get("finish_reason") != "", "empty finish_reason"
        else:
            assert message.get("finish_reason") == expected.finish_reason
