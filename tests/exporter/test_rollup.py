"""Trace records derived from spans: order independence, token roll-up, previews, cost."""

from __future__ import annotations

import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanlake.exporter.pricing import price_for, register_price
from spanlake.exporter.records import SpanRecord, TokenUsage, TraceState
from spanlake.exporter.rollup import PREVIEW_MAX_CHARS, preview, rollup
from spanlake.exporter.store.sqlite import SQLiteStore

T = "0af7651916cd43dd8448eb211c80319c"


def span(
    sid: int, parent: int | None, *, usage: TokenUsage | None = None, **kw: object
) -> SpanRecord:
    defaults: dict[str, object] = dict(
        trace_id=T,
        span_id=f"{sid:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        experiment="exp",
        name=f"span-{sid}",
        span_type="CHAIN",
        kind="INTERNAL",
        start_time_ns=1_700_000_000_000_000_000 + sid * 1000,
        end_time_ns=1_700_000_000_500_000_000 + sid,
        status="OK",
        token_usage=usage,
    )
    defaults.update(kw)
    return SpanRecord(**defaults)  # type: ignore[arg-type]


def agent_trace() -> list[SpanRecord]:
    return [
        span(
            1,
            None,
            inputs='{"question": "weather?"}',
            outputs='"sunny"',
            trace_tags={"env": "dev"},
            resource={"service.name": "agent-svc"},
        ),
        # A framework LLM span wrapping the SDK's LLM span: counted once.
        span(
            2,
            1,
            usage=TokenUsage(100, 10, 110),
            model="claude-sonnet-4",
            span_type="LLM",
            trace_tags={"env": "prod"},
        ),
        span(
            3,
            2,
            usage=TokenUsage(100, 10, 110),
            model="claude-sonnet-4-20250514",
            provider="anthropic",
            span_type="CHAT_MODEL",
        ),
        span(4, 1, span_type="TOOL", trace_metadata={"user": "alice"}),
        span(
            5,
            1,
            usage=TokenUsage(50, 5, 55, cache_read_input_tokens=40),
            model="gpt-4o",
            provider="openai",
            span_type="CHAT_MODEL",
            client_request_id="req-7",
        ),
    ]


def test_nested_usage_not_double_counted_and_fields() -> None:
    info = rollup(agent_trace())
    assert info.token_usage.input_tokens == 150
    assert info.token_usage.output_tokens == 15
    assert info.token_usage.total_tokens == 165
    assert info.token_usage.cache_read_input_tokens == 40
    assert info.state is TraceState.OK
    assert info.name == "span-1"
    assert info.execution_time_ms == 499
    assert info.span_count == 5
    assert info.models == ["claude-sonnet-4", "claude-sonnet-4-20250514", "gpt-4o"]
    assert info.providers == ["anthropic", "openai"]
    assert info.tags == {"env": "prod"}  # the later-starting span wins
    assert info.metadata == {"user": "alice"}
    assert info.client_request_id == "req-7"
    assert info.service_name == "agent-svc"
    assert info.request_preview == '{"question": "weather?"}'
    assert info.response_preview == "sunny"
    expected = price_for("claude-sonnet-4").cost(TokenUsage(100, 10, 110))  # type: ignore[union-attr]
    expected += price_for("gpt-4o").cost(TokenUsage(50, 5, 55, cache_read_input_tokens=40))  # type: ignore[union-attr]
    assert info.cost_usd == pytest.approx(expected)


def test_in_progress_until_root_and_error_root() -> None:
    spans = agent_trace()
    assert rollup(spans[1:]).state is TraceState.IN_PROGRESS
    assert rollup(spans[1:]).name is None
    errored = [span(1, None, status="ERROR", status_message="boom"), *spans[1:]]
    assert rollup(errored).state is TraceState.ERROR
    open_root = [span(1, None, end_time_ns=None), *spans[1:]]
    assert rollup(open_root).state is TraceState.IN_PROGRESS


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=1, max_value=5))
def test_same_record_whatever_arrival_order(rnd: random.Random, batches: int) -> None:
    spans = agent_trace()
    rnd.shuffle(spans)
    cuts = sorted(rnd.sample(range(1, len(spans)), min(batches - 1, len(spans) - 1)))
    chunks = [spans[i:j] for i, j in zip([0, *cuts], [*cuts, len(spans)], strict=True)]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(f"{tmp}/s.db")
        for chunk in chunks:
            store.write_spans(chunk)
        stored = store.get_trace(T).info
        store.close()
    assert stored == rollup(agent_trace())


def test_chat_previews_pick_last_user_and_assistant_messages() -> None:
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "be nice"}]},
        {"role": "user", "parts": [{"type": "text", "content": "first"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "answer"}]},
        {"role": "user", "parts": [{"type": "text", "content": "second question"}]},
    ]
    assert preview(orjson.dumps(messages).decode(), "user") == "second question"
    openai_style = {"messages": [{"role": "user", "content": "plain content"}], "model": "x"}
    assert preview(orjson.dumps(openai_style).decode(), "user") == "plain content"
    out = [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "done"}],
            "finish_reason": "stop",
        }
    ]
    assert preview(orjson.dumps(out).decode(), "assistant") == "done"
    assert len(preview(orjson.dumps("x" * 5000).decode(), "user") or "") == PREVIEW_MAX_CHARS
    assert preview("not json {", "user") == "not json {"


def test_price_table_matches_provider_ids_and_is_extensible() -> None:
    bedrock = price_for("us.anthropic.claude-3-5-sonnet-20240620-v1:0")
    assert bedrock is not None and bedrock == price_for("claude-3-5-sonnet-latest")
    assert price_for("my-finetune-v1") is None
    register_price("my-finetune", input=1.0, output=2.0)
    price = price_for("my-finetune-v1")
    assert price is not None
    assert price.cost(TokenUsage(1_000_000, 1_000_000, 2_000_000)) == pytest.approx(3.0)
