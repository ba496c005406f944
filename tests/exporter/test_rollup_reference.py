"""The optimised roll-up equals the straightforward one it replaced, on arbitrary spans.

``rollup`` and ``preview`` run once per touched trace on every lake write, so they take
shortcuts (one gathering loop, the parent checked inline, a preview fast path that skips
parsing). The reference below is the previous, obviously-correct implementation, kept
verbatim: any input where the two differ is a bug in a shortcut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from spanlake.exporter.pricing import price_for
from spanlake.exporter.records import SpanRecord, TokenUsage, TraceInfo, TraceState
from spanlake.exporter.rollup import PREVIEW_MAX_CHARS, preview, rollup

# -- the reference (verbatim from before the optimisation) -------------------------------


def ref_rollup(
    spans: Sequence[SpanRecord],
    *,
    experiment: str | None = None,
    tag_overrides: Mapping[str, str | None] | None = None,
) -> TraceInfo:
    ordered = sorted(spans, key=lambda s: (s.start_time_ns, s.span_id))
    roots = [s for s in ordered if s.parent_span_id is None]
    root = roots[0] if roots else None
    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    client_request_id: str | None = None
    for span in ordered:
        tags.update(span.trace_tags)
        metadata.update(span.trace_metadata)
        client_request_id = span.client_request_id or client_request_id
    for key, value in (tag_overrides or {}).items():
        if value is None:
            tags.pop(key, None)
        else:
            tags[key] = value
    usage, cost, partial = _ref_usage_and_cost(ordered)
    if partial:
        metadata["spanlake.cost.partial"] = "true"
    if root is None or root.end_time_ns is None:
        state = TraceState.IN_PROGRESS
    elif root.status == "ERROR":
        state = TraceState.ERROR
    else:
        state = TraceState.OK
    start_ns = root.start_time_ns if root else ordered[0].start_time_ns
    duration_ms = (
        (root.end_time_ns - root.start_time_ns) // 1_000_000
        if root is not None and root.end_time_ns is not None
        else None
    )
    service = next(
        (s.service_name for s in ([root] if root else []) + ordered if s.service_name), None
    )
    return TraceInfo(
        trace_id=ordered[0].trace_id,
        experiment=experiment or (root or ordered[0]).experiment,
        name=root.name if root else None,
        state=state,
        request_time_ms=start_ns // 1_000_000,
        execution_time_ms=duration_ms,
        request_preview=ref_preview(root.inputs, "user") if root else None,
        response_preview=ref_preview(root.outputs, "assistant") if root else None,
        tags=tags,
        metadata=metadata,
        token_usage=usage,
        cost_usd=cost,
        span_count=len(ordered),
        models=sorted({s.model for s in ordered if s.model}),
        providers=sorted({s.provider for s in ordered if s.provider}),
        service_name=service,
        client_request_id=client_request_id,
    )


def _ref_usage_and_cost(spans: Sequence[SpanRecord]) -> tuple[TokenUsage, float | None, bool]:
    by_id = {s.span_id: s for s in spans}
    total = TokenUsage()
    cost: float | None = None
    partial = False
    for span in spans:
        if span.token_usage is None or _ref_ancestor_has_usage(span, by_id):
            continue
        total.add(span.token_usage)
        price = price_for(span.model) if span.model else None
        if price is not None:
            cost = (cost or 0.0) + price.cost(span.token_usage)
        elif span.token_usage.input_tokens or span.token_usage.output_tokens:
            partial = True
    return total, (round(cost, 10) if cost is not None else None), partial


def _ref_ancestor_has_usage(span: SpanRecord, by_id: Mapping[str, SpanRecord]) -> bool:
    seen: set[str] = set()
    parent_id = span.parent_span_id
    while parent_id is not None and parent_id in by_id and parent_id not in seen:
        seen.add(parent_id)
        parent = by_id[parent_id]
        if parent.token_usage is not None:
            return True
        parent_id = parent.parent_span_id
    return False


def ref_preview(json_text: str | None, role: str) -> str | None:
    if json_text is None:
        return None
    try:
        value = orjson.loads(json_text)
    except orjson.JSONDecodeError:
        return json_text[:PREVIEW_MAX_CHARS]
    text = _ref_chat_text(value, role)
    if text is None:
        text = value if isinstance(value, str) else json_text
    return text[:PREVIEW_MAX_CHARS]


def _ref_messages(value: Any) -> list[Any] | None:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and "role" in m for m in value)
    ):
        return value
    if isinstance(value, dict):
        for key in ("messages", "input", "output"):
            inner = value.get(key)
            if isinstance(inner, list):
                found = _ref_messages(inner)
                if found:
                    return found
        choices = value.get("choices")
        if isinstance(choices, list):
            return [
                c["message"]
                for c in choices
                if isinstance(c, dict) and isinstance(c.get("message"), dict)
            ]
    return None


def _ref_chat_text(value: Any, role: str) -> str | None:
    messages = _ref_messages(value)
    if not messages:
        return None
    for message in reversed(messages):
        if message.get("role") == role:
            return _ref_content_text(message)
    return _ref_content_text(messages[-1])


def _ref_content_text(message: dict[str, Any]) -> str:
    for key in ("parts", "content"):
        content = message.get(key)
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [
                str(p.get("content") or p.get("text") or "")
                for p in content
                if isinstance(p, dict)
                and p.get("type") in ("text", None, "input_text", "output_text")
            ]
            if any(texts):
                return "\n".join(t for t in texts if t)
    return orjson.dumps(message).decode()


# -- strategies ----------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        *("messages", "input", "output", "choices", "message", "role", "content", "parts"),
        *("type", "text", "x", "r\\u006fle", "messages2"),
    ]
)
_ROLES = st.sampled_from(["user", "assistant", "system", "tool"])
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    _ROLES,
    st.sampled_from(["text", "input_text", "output_text", "image"]),
    st.text(max_size=30),
    st.text(alphabet='{}[]":,\\u role', max_size=20),
)
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_KEYS, inner, max_size=5),
        st.fixed_dictionaries({"role": _ROLES}, optional={"content": inner, "parts": inner}),
    ),
    max_leaves=25,
)


_MESSAGE = st.fixed_dictionaries(
    {"role": _ROLES}, optional={"content": _JSON, "parts": st.lists(_JSON, max_size=3)}
)
_CHAT = st.one_of(
    st.lists(_MESSAGE, max_size=3),
    st.dictionaries(
        st.sampled_from(["messages", "input", "output", "model"]),
        st.lists(_MESSAGE, max_size=3) | _JSON,
        max_size=3,
    ),
    st.builds(
        lambda choices: {"choices": choices},
        st.lists(st.fixed_dictionaries({"message": _MESSAGE}) | _JSON, max_size=3),
    ),
)
#: Keys spelled with a \u escape: the same JSON, a different text.
_ESCAPED = {
    k: k[:2] + f"\\u{ord(k[2]):04x}" + k[3:]
    for k in ('"messages"', '"input"', '"output"', '"choices"', '"role"')
}


@st.composite
def json_texts(draw: st.DrawFn) -> str | None:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return None
    value = draw(_CHAT if draw(st.booleans()) else _JSON)
    text = orjson.dumps(value).decode()
    if kind == 1:  # truncated or otherwise broken JSON
        return text[: draw(st.integers(0, len(text)))]
    if kind == 2:  # spaces, escapes: other spellings of the same JSON
        for key, escaped in _ESCAPED.items():
            if draw(st.booleans()):
                text = text.replace(key, escaped)
        text = text.replace(":", ": ")
    if kind == 3:
        text = " " + text
    if kind == 4 and draw(st.booleans()):
        text = "x" * draw(st.integers(0, 2 * PREVIEW_MAX_CHARS)) + text
    return text


_IDS = st.sampled_from(["a", "b", "c", "d"])
_USAGE = st.one_of(st.none(), st.builds(TokenUsage, *[st.integers(0, 10**6) for _ in range(6)]))
_MAPS = st.dictionaries(st.sampled_from(["env", "user", "k"]), st.sampled_from(["1", "2", ""]))


@st.composite
def span_lists(draw: st.DrawFn) -> list[SpanRecord]:
    """Small traces with every awkward case: several roots, missing/cyclic parents,
    duplicate span ids, equal start times, nested usage, empty strings."""
    spans = []
    for _ in range(draw(st.integers(1, 7))):
        spans.append(
            SpanRecord(
                trace_id="t",
                span_id=draw(_IDS),
                parent_span_id=draw(st.one_of(st.none(), _IDS, st.just("zz"))),
                experiment=draw(st.sampled_from(["e1", "e2"])),
                name=draw(st.sampled_from(["root", "llm", ""])),
                span_type="",
                kind="INTERNAL",
                start_time_ns=draw(st.integers(0, 3)) * 1_000_000_000,
                end_time_ns=draw(st.one_of(st.none(), st.integers(0, 10**10))),
                status=draw(st.sampled_from(["OK", "ERROR", "UNSET"])),
                inputs=draw(json_texts()),
                outputs=draw(json_texts()),
                model=draw(st.sampled_from([None, "", "gpt-4o", "claude-sonnet-4", "mine"])),
                provider=draw(st.sampled_from([None, "", "openai", "anthropic"])),
                token_usage=draw(_USAGE),
                resource=draw(st.sampled_from([{}, {"service.name": "svc"}, {"service.name": ""}])),
                trace_tags=draw(_MAPS),
                trace_metadata=draw(_MAPS),
                client_request_id=draw(st.sampled_from([None, "", "r1", "r2"])),
            )
        )
    return spans


# -- the properties ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    span_lists(),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["env", "x"]), st.none() | _IDS)),
    st.sampled_from([None, "", "given"]),
)
def test_rollup_equals_reference(
    spans: list[SpanRecord], overrides: dict[str, str | None] | None, experiment: str | None
) -> None:
    got = rollup(spans, experiment=experiment, tag_overrides=overrides)
    assert got == ref_rollup(spans, experiment=experiment, tag_overrides=overrides)
    assert got.cost_usd == ref_rollup(spans, tag_overrides=overrides).cost_usd  # not approx


@settings(max_examples=1000, deadline=None)
@given(json_texts(), _ROLES)
def test_preview_equals_reference(text: str | None, role: str) -> None:
    assert preview(text, role) == ref_preview(text, role)


def test_preview_fast_path_cases() -> None:
    cases = [
        '{"role": "assistant", "content": "hi"}',  # fast path: no key _messages reads
        '{"r\\u006fle": "assistant", "m\\u0065ssages": [{"role": "user", "content": "q"}]}',
        '{"messages": [{"role": "user", "content": "q"}]}',
        '{"choices": [{"message": {"role": "assistant", "content": "a"}}]}',
        '{"output": [{"role": "assistant", "content": "a"}]}',
        '{"text": "\\"input\\" in a value"}',
        '{"broken": ',
        '"just a string"',
        "",
    ]
    for text in cases:
        for role in ("user", "assistant"):
            assert preview(text, role) == ref_preview(text, role), text


def test_usage_deep_nesting_and_cycles_match_reference() -> None:
    def s(sid: str, parent: str | None, usage: bool, start: int = 0) -> SpanRecord:
        return SpanRecord(
            trace_id="t",
            span_id=sid,
            parent_span_id=parent,
            experiment="e",
            name=sid,
            span_type="",
            kind="INTERNAL",
            start_time_ns=start,
            end_time_ns=None,
            status="OK",
            model="gpt-4o",
            token_usage=TokenUsage(10, 1, 11) if usage else None,
        )

    cases = [
        [s("r", None, False), s("a", "r", True), s("b", "a", False), s("c", "b", True)],
        [s("a", "b", True), s("b", "a", False)],  # a cycle back to a span with usage
        [s("a", "b", False), s("b", "c", False), s("c", "a", True)],
        [s("a", "a", True)],  # its own parent
        [s("a", "x", True), s("a", None, False, 1)],  # duplicate id: the later one is by_id's
    ]
    for spans in cases:
        assert rollup(spans) == ref_rollup(spans)
