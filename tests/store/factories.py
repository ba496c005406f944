"""Realistic GenAI span factories for the store suite and bench (importable by spawned
writer processes as ``store.factories``).

A trace is an agent root (chat inputs/outputs), LLM calls with ~2 KB of attributes (model,
provider, token usage, messages JSON), a tool call with an event, and optionally a framework
LLM span wrapping the SDK's (whose usage must not be counted twice).
"""

from __future__ import annotations

import random

import orjson

from spanlake.exporter.records import SpanEvent, SpanRecord, TokenUsage

BASE_NS = 1_700_000_000_000_000_000
MODELS = [
    ("gpt-4o", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("gemini-2.0-flash", "gcp.gemini"),
]
PROVIDERS = dict(MODELS)
RESOURCE = {"service.name": "support-bot", "telemetry.sdk.language": "python"}


def trace_id_for(n: int) -> str:
    return f"{n + 1:032x}"


def make_trace(
    n: int,
    *,
    experiment: str = "exp",
    llm_calls: int = 2,
    model: str | None = None,
    status: str = "OK",
    tokens: int = 1000,
    duration_ms: int | None = None,
    tags: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    name: str = "support_agent",
    nested_llm: bool = False,
    start_ns: int | None = None,
) -> list[SpanRecord]:
    """Spans of trace ``n`` (deterministic for a given ``n``), root first."""
    rng = random.Random(n)
    trace_id = trace_id_for(n)
    start = start_ns if start_ns is not None else BASE_NS + n * 1_000_000_000
    duration = duration_ms if duration_ms is not None else 200 + rng.randrange(5000)
    ids = iter(range(1, 10_000))

    def span_id() -> str:
        return f"{n & 0xFFFFFFFF:08x}{next(ids):08x}"

    question = f"Question {n}: where is my order #{rng.randrange(10**6)}?"
    answer = f"Answer {n}: it ships tomorrow."
    root = SpanRecord(
        trace_id=trace_id,
        span_id=span_id(),
        parent_span_id=None,
        experiment=experiment,
        name=name,
        span_type="AGENT",
        kind="INTERNAL",
        start_time_ns=start,
        end_time_ns=start + duration * 1_000_000,
        status=status,
        status_message="boom" if status == "ERROR" else "",
        inputs=orjson.dumps({"messages": [{"role": "user", "content": question}]}).decode(),
        outputs=orjson.dumps({"role": "assistant", "content": answer}).decode(),
        attributes={"app.version": "1.4.2"},
        resource=RESOURCE,
        scope="spanlake",
        trace_tags=dict(tags or {}),
        trace_metadata=dict(metadata or {}),
        client_request_id=f"req-{n}",
    )
    spans = [root]
    t = start + 1_000_000
    for call in range(llm_calls):
        m, provider = (
            MODELS[(n + call) % len(MODELS)]
            if model is None
            else (model, PROVIDERS.get(model, "openai"))
        )
        usage = TokenUsage(tokens, tokens // 4, tokens + tokens // 4, tokens // 10, 0, 0)
        messages = [
            {"role": "system", "content": "You are a helpful support agent. " * 8},
            {"role": "user", "content": question + " " + "context " * 90},
        ]
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": m,
            "gen_ai.provider.name": provider,
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 1024,
            "gen_ai.response.id": f"resp_{n}_{call}",
            "gen_ai.response.finish_reasons": ["stop"],
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.input.messages": orjson.dumps(messages).decode(),
            "gen_ai.output.messages": orjson.dumps(
                [{"role": "assistant", "content": answer + " details " * 30}]
            ).decode(),
        }
        chat = SpanRecord(
            trace_id=trace_id,
            span_id=span_id(),
            parent_span_id=root.span_id,
            experiment=experiment,
            name=f"chat {m}",
            span_type="CHAT_MODEL",
            kind="CLIENT",
            start_time_ns=t,
            end_time_ns=t + 50_000_000,
            status="OK",
            inputs=orjson.dumps(messages).decode(),
            outputs=orjson.dumps({"role": "assistant", "content": answer}).decode(),
            model=m,
            provider=provider,
            token_usage=usage,
            attributes=attrs,
            events=[SpanEvent("gen_ai.choice", t + 40_000_000, {"index": 0})],
            resource=RESOURCE,
            scope="spanlake.instrumentation.openai",
        )
        spans.append(chat)
        if nested_llm and call == 0:
            spans.append(
                SpanRecord(
                    trace_id=trace_id,
                    span_id=span_id(),
                    parent_span_id=chat.span_id,
                    experiment=experiment,
                    name=f"sdk {m}",
                    span_type="LLM",
                    kind="CLIENT",
                    start_time_ns=t + 1000,
                    end_time_ns=t + 40_000_000,
                    status="OK",
                    model=m,
                    provider=provider,
                    token_usage=TokenUsage(tokens, tokens // 4, tokens + tokens // 4),
                    resource=RESOURCE,
                )
            )
        t += 60_000_000
    spans.append(
        SpanRecord(
            trace_id=trace_id,
            span_id=span_id(),
            parent_span_id=root.span_id,
            experiment=experiment,
            name="lookup_order",
            span_type="TOOL",
            kind="INTERNAL",
            start_time_ns=t,
            end_time_ns=t + 5_000_000,
            status="OK",
            inputs='{"order_id": 42}',
            outputs='{"status": "shipped"}',
            attributes={"tool.name": "lookup_order", "retries": n % 3},
            events=[SpanEvent("cache.miss", t + 1000, {"key": f"order:{n}"})],
            resource=RESOURCE,
        )
    )
    return spans


def make_traces(first: int, count: int, **kwargs: object) -> list[SpanRecord]:
    out: list[SpanRecord] = []
    for n in range(first, first + count):
        out.extend(make_trace(n, **kwargs))  # type: ignore[arg-type]
    return out


def shared_trace_spans(n: int, worker: int, workers: int) -> list[SpanRecord]:
    """Worker ``worker``'s share of trace ``n``: its spans are dealt out across workers."""
    spans = make_trace(n, llm_calls=3)
    return [s for i, s in enumerate(spans) if i % workers == worker]


def writer_process(uri: str, worker: int, workers: int, own: int, shared: int) -> None:
    """Writer-process body: ``own`` whole traces of its own in small batches, its share of
    ``shared`` traces every worker contributes to, and a replay of its first batch."""
    from spanlake.exporter.store import open_store

    store = open_store(uri)
    first = 1000 * (worker + 1)
    batches = [make_traces(first + i, 2) for i in range(0, own, 2)]
    for n in range(shared):
        batches.insert(n % len(batches), shared_trace_spans(n, worker, workers))
    for batch in [*batches, batches[0]]:  # ends with a replay of the first batch
        _write_retrying(store, batch)
    store.close()


def _write_retrying(store: object, batch: list[SpanRecord]) -> None:
    """What the exporter does with a TransientStoreError: try the same batch again."""
    import time

    from spanlake.exporter.errors import TransientStoreError

    for attempt in range(30):
        try:
            store.write_spans(batch)  # type: ignore[attr-defined]
            return
        except TransientStoreError:
            if attempt == 29:
                raise
            time.sleep(0.05 * (attempt + 1))
