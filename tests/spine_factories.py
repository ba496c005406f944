"""Span factories for the spine's tests (importable by spawned writer processes)."""

from __future__ import annotations

from spanlake.exporter.records import SpanRecord, TokenUsage
from spanlake.exporter.store import open_store

BASE_NS = 1_700_000_000_000_000_000


def make_trace(
    n: int,
    *,
    experiment: str = "exp",
    status: str = "OK",
    model: str = "claude-sonnet-4",
    tokens: int = 100,
    duration_ms: int = 100,
    tags: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    name: str = "agent",
) -> list[SpanRecord]:
    trace_id = f"{n:032x}"
    start = BASE_NS + n * 1_000_000_000
    root = SpanRecord(
        trace_id=trace_id,
        span_id=f"{n:08x}00000001",
        parent_span_id=None,
        experiment=experiment,
        name=name,
        span_type="AGENT",
        kind="INTERNAL",
        start_time_ns=start,
        end_time_ns=start + duration_ms * 1_000_000,
        status=status,
        inputs=f'{{"question": "q{n}"}}',
        outputs=f'"a{n}"',
        trace_tags=tags or {},
        trace_metadata=metadata or {},
    )
    llm = SpanRecord(
        trace_id=trace_id,
        span_id=f"{n:08x}00000002",
        parent_span_id=root.span_id,
        experiment=experiment,
        name=f"chat {model}",
        span_type="CHAT_MODEL",
        kind="CLIENT",
        start_time_ns=start + 1000,
        end_time_ns=start + 2000,
        status="OK",
        model=model,
        provider="anthropic" if "claude" in model else "openai",
        token_usage=TokenUsage(tokens, tokens // 10, tokens + tokens // 10),
        attributes={"gen_ai.request.temperature": 0.2, "gen_ai.response.id": f"msg_{n}"},
    )
    return [root, llm]


def write_traces(path: str, worker: int, traces: int) -> None:
    """Writer-process body: ``traces`` two-span traces into the SQLite file at ``path``."""
    store = open_store(f"sqlite:///{path}")
    for i in range(traces):
        store.write_spans(make_trace(worker * 10_000 + i, experiment=f"exp-{worker % 2}"))
    store.close()
