"""OpenLLMetry (Traceloop) legacy attributes: flattened ``gen_ai.prompt.N.*`` /
``gen_ai.completion.N.*``, ``llm.usage.*``, ``llm.request.type``, ``traceloop.*``.

Token names shared with old OTel (``gen_ai.usage.prompt_tokens``) and the capitalised
``gen_ai.system`` live in :mod:`.otel_genai`, which runs for both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from spanlake.semconv import gen_ai as g
from spanlake.semconv import spanlake_attrs as s
from spanlake.semconv.dialects import _parts
from spanlake.semconv.dialects._table import Dialect, PrefixRename, Rename, put
from spanlake.semconv.dialects._values import (
    as_bool,
    as_float,
    as_int,
    as_str,
    as_str_list,
    dumps,
    enum_map,
    json_text,
)
from spanlake.semconv.span_type import SpanType

PROMPTS: Final = "gen_ai.prompt."
COMPLETIONS: Final = "gen_ai.completion."
FUNCTIONS: Final = "llm.request.functions."
REQUEST_TYPE: Final = "llm.request.type"
SPAN_KIND: Final = "traceloop.span.kind"
ASSOCIATION_PROPERTIES: Final = "traceloop.association.properties."

#: ``llm.request.type`` -> (span type, gen_ai.operation.name)
REQUEST_TYPES: Final[dict[str, tuple[str, str]]] = {
    "chat": (SpanType.CHAT_MODEL.value, g.Operation.CHAT),
    "completion": (SpanType.LLM.value, g.Operation.TEXT_COMPLETION),
    "embedding": (SpanType.EMBEDDING.value, g.Operation.EMBEDDINGS),
    "rerank": (SpanType.RERANKER.value, ""),
}

#: ``traceloop.span.kind`` (set by the SDK's @workflow/@task/@agent/@tool decorators).
SPAN_KINDS: Final[dict[str, str]] = {
    "workflow": SpanType.CHAIN.value,
    "task": SpanType.CHAIN.value,
    "agent": SpanType.AGENT.value,
    "tool": SpanType.TOOL.value,
}

#: Association properties that are standard OTel keys rather than free-form metadata.
_ASSOCIATION_KEYS: Final = {"user_id": s.USER_ID, "session_id": s.SESSION_ID}


def _request_type(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    kind = src.get(REQUEST_TYPE)
    if not isinstance(kind, str):
        return
    kind = kind.lower()
    if kind == "completion" and PROMPTS + "0.role" in src:
        # The Anthropic instrumentation labels Messages calls "completion"; role-tagged
        # prompts show it is a chat call.
        kind = "chat"
    if kind in REQUEST_TYPES:
        span_type, operation = REQUEST_TYPES[kind]
        put(out, s.SPAN_TYPE, span_type)
        put(out, g.OPERATION_NAME, operation or None)


def _tool_calls(flat: Mapping[str, Any]) -> list[_parts.Part]:
    return [
        _parts.tool_call_part(c.get("id"), c.get("name"), c.get("arguments"))
        for c in _parts.indexed(flat, "tool_calls.")
        if c.get("name") is not None
    ]


def _message(flat: Mapping[str, Any], output: bool) -> _parts.Message:
    role = flat.get("role")
    if role == "tool" and "tool_call_id" in flat:
        parts = [_parts.tool_response_part(flat["tool_call_id"], flat.get("content"))]
    else:
        parts = _parts.content_to_parts(flat.get("content"))
    _parts.merge_tool_calls(parts, _tool_calls(flat))
    if output and role == "thinking":  # Anthropic extended thinking, recorded as a "role"
        role, parts = "assistant", [{"type": "reasoning", "content": flat.get("content", "")}]
    return _parts.message(role, parts, finish=flat.get("finish_reason"), output=output)


def _messages(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    flat = _parts.families(src, (PROMPTS, COMPLETIONS, FUNCTIONS))
    if g.INPUT_MESSAGES not in out:
        prompts = flat[PROMPTS]
        if prompts:
            put(out, g.INPUT_MESSAGES, dumps([_message(m, False) for m in prompts]))
    if g.OUTPUT_MESSAGES not in out:
        completions = flat[COMPLETIONS]
        if completions:
            messages = [_message(m, True) for m in completions]
            put(out, g.OUTPUT_MESSAGES, dumps(messages))
            reasons = [m["finish_reason"] for m in messages if "finish_reason" in m]
            if any(c.get("finish_reason") for c in completions):
                put(out, g.RESPONSE_FINISH_REASONS, reasons)
    if g.TOOL_DEFINITIONS not in out:
        tools = [
            _parts.tool_definition(
                {
                    "name": f.get("name"),
                    "description": f.get("description"),
                    "parameters": f.get("parameters", f.get("input_schema")),
                }
            )
            for f in flat[FUNCTIONS]
        ]
        defs = [t for t in tools if t is not None]
        if defs:
            put(out, g.TOOL_DEFINITIONS, dumps(defs))


def _association(value: Any) -> str | None:
    return value if isinstance(value, str) else dumps(value)


def _association_ids(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    for name, target in _ASSOCIATION_KEYS.items():
        value = src.get(ASSOCIATION_PROPERTIES + name)
        if value is not None:
            put(out, target, str(value))


DIALECT: Final = Dialect(
    name="openllmetry",
    markers=frozenset(
        {
            REQUEST_TYPE,
            SPAN_KIND,
            "traceloop.entity.input",
            "traceloop.entity.output",
            "traceloop.entity.name",
            "traceloop.workflow.name",
            "llm.usage.total_tokens",
            "llm.is_streaming",
            "gen_ai.is_streaming",
            "gen_ai.usage.reasoning_tokens",
            "llm.usage.reasoning_tokens",
            PROMPTS + "0.role",
            PROMPTS + "0.content",
            COMPLETIONS + "0.role",
            COMPLETIONS + "0.content",
            COMPLETIONS + "0.finish_reason",
            FUNCTIONS + "0.name",
        }
    ),
    renames=(
        Rename(SPAN_KIND, s.SPAN_TYPE, enum_map(SPAN_KINDS)),
        Rename("traceloop.entity.input", s.SPAN_INPUTS, json_text),
        Rename("traceloop.entity.output", s.SPAN_OUTPUTS, json_text),
        Rename("llm.frequency_penalty", g.REQUEST_FREQUENCY_PENALTY, as_float),
        Rename("llm.presence_penalty", g.REQUEST_PRESENCE_PENALTY, as_float),
        Rename("llm.top_k", g.REQUEST_TOP_K, as_float),
        Rename("llm.chat.stop_sequences", g.REQUEST_STOP_SEQUENCES, as_str_list),
        Rename("llm.is_streaming", g.REQUEST_STREAM, as_bool),
        Rename("gen_ai.is_streaming", g.REQUEST_STREAM, as_bool),
        Rename("gen_ai.request.n", g.REQUEST_CHOICE_COUNT, as_int),
        Rename("gen_ai.request.max_completion_tokens", g.REQUEST_MAX_TOKENS, as_int),
        Rename("gen_ai.usage.reasoning_tokens", g.USAGE_REASONING_OUTPUT_TOKENS, as_int),
        Rename("llm.usage.reasoning_tokens", g.USAGE_REASONING_OUTPUT_TOKENS, as_int),
        Rename("llm.user", s.USER_ID, as_str),
        Rename("gen_ai.user", s.USER_ID, as_str),
    ),
    prefix_renames=(
        PrefixRename(
            ASSOCIATION_PROPERTIES,
            s.TRACE_METADATA_PREFIX,
            _association,
            skip=frozenset(_ASSOCIATION_KEYS),
        ),
    ),
    builders=(_request_type, _messages, _association_ids),
)
