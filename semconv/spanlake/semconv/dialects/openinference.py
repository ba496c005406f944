"""OpenInference (Arize Phoenix) attributes: ``openinference.span.kind``, ``input.value``,
``llm.*`` and the flattened ``llm.input_messages.N.message.*`` families."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from spanlake.semconv import gen_ai as g
from spanlake.semconv import spanlake_attrs as s
from spanlake.semconv.dialects import _parts
from spanlake.semconv.dialects._table import Dialect, Rename, put
from spanlake.semconv.dialects._values import (
    as_float,
    as_int,
    as_str,
    as_str_list,
    dumps,
    enum_map,
    json_object,
    json_text,
    plain_text_json,
    provider,
)
from spanlake.semconv.span_type import SpanType

SPAN_KIND: Final = "openinference.span.kind"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"
INPUT_MESSAGES: Final = "llm.input_messages."
OUTPUT_MESSAGES: Final = "llm.output_messages."
TOOLS: Final = "llm.tools."
INVOCATION_PARAMETERS: Final = "llm.invocation_parameters"
METADATA: Final = "metadata"
TAGS: Final = "tag.tags"

SPAN_KINDS: Final[dict[str, str]] = {
    "llm": SpanType.LLM.value,
    "chain": SpanType.CHAIN.value,
    "tool": SpanType.TOOL.value,
    "agent": SpanType.AGENT.value,
    "retriever": SpanType.RETRIEVER.value,
    "embedding": SpanType.EMBEDDING.value,
    "reranker": SpanType.RERANKER.value,
    "guardrail": SpanType.GUARDRAIL.value,
    "evaluator": SpanType.EVALUATOR.value,
    "prompt": SpanType.CHAIN.value,
    "unknown": SpanType.UNKNOWN.value,
}

#: ``llm.invocation_parameters`` JSON keys -> request attributes.
INVOCATION_PARAMS: Final = (
    Rename("temperature", g.REQUEST_TEMPERATURE, as_float),
    Rename("top_p", g.REQUEST_TOP_P, as_float),
    Rename("top_k", g.REQUEST_TOP_K, as_float),
    Rename("max_tokens", g.REQUEST_MAX_TOKENS, as_int),
    Rename("max_completion_tokens", g.REQUEST_MAX_TOKENS, as_int),
    Rename("max_output_tokens", g.REQUEST_MAX_TOKENS, as_int),
    Rename("stop", g.REQUEST_STOP_SEQUENCES, as_str_list),
    Rename("stop_sequences", g.REQUEST_STOP_SEQUENCES, as_str_list),
    Rename("seed", g.REQUEST_SEED, as_int),
    Rename("frequency_penalty", g.REQUEST_FREQUENCY_PENALTY, as_float),
    Rename("presence_penalty", g.REQUEST_PRESENCE_PENALTY, as_float),
    Rename("n", g.REQUEST_CHOICE_COUNT, as_int),
    Rename("stream", g.REQUEST_STREAM, lambda v: v if isinstance(v, bool) else None),
    Rename("model", g.REQUEST_MODEL, as_str),
)


def _invocation_parameters(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    params = json_object(src.get(INVOCATION_PARAMETERS))
    if params is None:
        params = json_object(src.get("embedding.invocation_parameters"))
    if params:
        for rule in INVOCATION_PARAMS:
            if rule.source in params:
                put(out, rule.target, rule.transform(params[rule.source]))
    # Only when no request model was named anywhere: the served model is the best guess.
    put(out, g.REQUEST_MODEL, as_str(src.get("llm.model_name")))


def _value(src: Mapping[str, Any], out: dict[str, Any], key: str, mime: str, target: str) -> None:
    if target in out or key not in src:
        return
    plain = src.get(mime) == "text/plain"
    put(out, target, plain_text_json(src[key]) if plain else json_text(src[key]))


def _inputs_outputs(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    _value(src, out, INPUT_VALUE, INPUT_MIME_TYPE, s.SPAN_INPUTS)
    _value(src, out, OUTPUT_VALUE, OUTPUT_MIME_TYPE, s.SPAN_OUTPUTS)


def _tool_call(flat: Mapping[str, Any]) -> _parts.Part | None:
    name = flat.get("tool_call.function.name")
    if name is None:
        return None
    return _parts.tool_call_part(
        flat.get("tool_call.id"), name, flat.get("tool_call.function.arguments")
    )


_NESTED: Final = ("message.contents.", "message.tool_calls.")
_NO_NESTED: Final[dict[str, list[dict[str, Any]]]] = {p: [] for p in _NESTED}


def _message(flat: Mapping[str, Any], output: bool, finish: Any) -> _parts.Message:
    role = flat.get("message.role")
    parts: list[_parts.Part] = []
    if role == "tool" and "message.tool_call_id" in flat:
        parts.append(
            _parts.tool_response_part(flat["message.tool_call_id"], flat.get("message.content"))
        )
    else:
        parts.extend(_parts.content_to_parts(flat.get("message.content")))
    # role + content only (the common case) has nothing nested to group
    nested = _parts.families(flat, _NESTED) if len(flat) > 2 else _NO_NESTED
    for item in nested[_NESTED[0]]:
        kind = item.get("message_content.type")
        if kind == "text" and "message_content.text" in item:
            parts.append(_parts.text_part(item["message_content.text"]))
        elif kind == "image" and "message_content.image.image.url" in item:
            url = str(item["message_content.image.image.url"])
            parts.append({"type": "uri", "modality": "image", "uri": url})
        elif (call := _tool_call(item)) is not None:  # Anthropic tool_use echoed as content
            _parts.merge_tool_calls(parts, [call])
    calls = [c for c in map(_tool_call, nested[_NESTED[1]]) if c]
    _parts.merge_tool_calls(parts, calls)
    return _parts.message(role, parts, name=flat.get("message.name"), finish=finish, output=output)


def _messages(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    finish = src.get("llm.finish_reason")
    flat = _parts.families(src, (INPUT_MESSAGES, OUTPUT_MESSAGES, TOOLS))
    for prefix, target, output in (
        (INPUT_MESSAGES, g.INPUT_MESSAGES, False),
        (OUTPUT_MESSAGES, g.OUTPUT_MESSAGES, True),
    ):
        if target not in out and flat[prefix]:
            put(out, target, dumps([_message(m, output, finish) for m in flat[prefix]]))
    if g.TOOL_DEFINITIONS not in out and flat[TOOLS]:
        tools = [_parts.tool_definition(t.get("tool.json_schema")) for t in flat[TOOLS]]
        defs = [t for t in tools if t is not None]
        if defs:
            put(out, g.TOOL_DEFINITIONS, dumps(defs))
    if out.get(s.SPAN_TYPE) == SpanType.LLM.value and (
        g.INPUT_MESSAGES in out or g.OUTPUT_MESSAGES in out
    ):
        # A chat call (it has messages): the same type our own instrumentation gives it.
        if s.SPAN_TYPE not in src:
            out[s.SPAN_TYPE] = SpanType.CHAT_MODEL.value
        put(out, g.OPERATION_NAME, g.Operation.CHAT)
    elif out.get(s.SPAN_TYPE) == SpanType.EMBEDDING.value:
        put(out, g.OPERATION_NAME, g.Operation.EMBEDDINGS)


def _trace_fields(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    metadata = json_object(src.get(METADATA))
    for key, value in (metadata or {}).items():
        text = value if isinstance(value, str) else dumps(value)
        put(out, s.TRACE_METADATA_PREFIX + str(key), text)
    for tag in as_str_list(src.get(TAGS)) or ():
        put(out, s.TRACE_TAG_PREFIX + tag, "true")


def _finish_reasons(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    reason = _parts.finish_reason(src.get("llm.finish_reason"))
    if reason:
        put(out, g.RESPONSE_FINISH_REASONS, [reason])


DIALECT: Final = Dialect(
    name="openinference",
    markers=frozenset(
        {
            SPAN_KIND,
            INPUT_VALUE,
            OUTPUT_VALUE,
            "llm.model_name",
            "llm.provider",
            "llm.system",
            "llm.token_count.prompt",
            "llm.token_count.completion",
            INVOCATION_PARAMETERS,
            INPUT_MESSAGES + "0.message.role",
            OUTPUT_MESSAGES + "0.message.role",
            TOOLS + "0.tool.json_schema",
            "embedding.model_name",
            METADATA,
            TAGS,
        }
    ),
    renames=(
        Rename(SPAN_KIND, s.SPAN_TYPE, enum_map(SPAN_KINDS)),
        # llm.provider (who hosts: aws, azure) beats llm.system (the model family).
        Rename("llm.provider", g.PROVIDER_NAME, provider),
        Rename("llm.system", g.PROVIDER_NAME, provider),
        Rename("llm.request.model_name", g.REQUEST_MODEL, as_str),
        Rename("llm.response.model_name", g.RESPONSE_MODEL, as_str),
        Rename("llm.model_name", g.RESPONSE_MODEL, as_str),
        Rename("embedding.model_name", g.REQUEST_MODEL, as_str),
        # OpenInference's prompt count already includes cache reads and writes.
        Rename("llm.token_count.prompt", g.USAGE_INPUT_TOKENS, as_int),
        Rename("llm.token_count.completion", g.USAGE_OUTPUT_TOKENS, as_int),
        Rename(
            "llm.token_count.prompt_details.cache_read", g.USAGE_CACHE_READ_INPUT_TOKENS, as_int
        ),
        Rename(
            "llm.token_count.prompt_details.cache_write",
            g.USAGE_CACHE_CREATION_INPUT_TOKENS,
            as_int,
        ),
        Rename(
            "llm.token_count.completion_details.reasoning",
            g.USAGE_REASONING_OUTPUT_TOKENS,
            as_int,
        ),
        Rename("tool.name", g.TOOL_NAME, as_str),
        Rename("tool.description", g.TOOL_DESCRIPTION, as_str),
        # (tool.parameters is the tool's JSON schema, not the call's arguments: those are
        # the TOOL span's input.value)
        Rename("tool.id", g.TOOL_CALL_ID, as_str),
        Rename("tool_call.id", g.TOOL_CALL_ID, as_str),
        Rename("reranker.model_name", g.REQUEST_MODEL, as_str),
        Rename("agent.name", g.AGENT_NAME, as_str),
    ),
    builders=(_inputs_outputs, _invocation_parameters, _messages, _trace_fields, _finish_reasons),
)
