"""MLflow Tracing attributes as they arrive over OTLP: ``mlflow.spanType``,
``mlflow.spanInputs`` / ``mlflow.spanOutputs``, ``mlflow.chat.tokenUsage``,
``mlflow.llm.*``, and every value JSON-encoded (``'"CHAT_MODEL"'``, ``'0.2'``).

Scalar values of known keys are decoded in place; ``spanInputs``/``spanOutputs`` are
JSON text by design and become spanlake's inputs/outputs verbatim. Chat messages are
rebuilt from the request/response payloads by ``mlflow.message.format``.
"""

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
    loads,
    maybe_json,
    provider,
)
from spanlake.semconv.span_type import SpanType

SPAN_TYPE: Final = "mlflow.spanType"
SPAN_INPUTS: Final = "mlflow.spanInputs"
SPAN_OUTPUTS: Final = "mlflow.spanOutputs"
TRACE_REQUEST_ID: Final = "mlflow.traceRequestId"
TOKEN_USAGE: Final = "mlflow.chat.tokenUsage"
MESSAGE_FORMAT: Final = "mlflow.message.format"
CHAT_MESSAGES: Final = "mlflow.chat.messages"
CHAT_TOOLS: Final = "mlflow.chat.tools"

#: MLflow span types are spanlake's (same names); anything else is UNKNOWN.
SPAN_TYPES: Final[dict[str, str]] = {t.value.lower(): t.value for t in SpanType}

#: ``mlflow.chat.tokenUsage`` JSON keys -> usage attributes (input already inclusive).
TOKEN_USAGE_KEYS: Final = (
    Rename("input_tokens", g.USAGE_INPUT_TOKENS, as_int),
    Rename("output_tokens", g.USAGE_OUTPUT_TOKENS, as_int),
    Rename("cache_read_input_tokens", g.USAGE_CACHE_READ_INPUT_TOKENS, as_int),
    Rename("cache_creation_input_tokens", g.USAGE_CACHE_CREATION_INPUT_TOKENS, as_int),
    Rename("reasoning_tokens", g.USAGE_REASONING_OUTPUT_TOKENS, as_int),
)

#: Keys whose scalar value MLflow JSON-encodes; decoded in place (objects stay text).
DECODED_KEYS: Final = frozenset(
    {
        SPAN_TYPE,
        TRACE_REQUEST_ID,
        MESSAGE_FORMAT,
        "mlflow.spanFunctionName",
        "mlflow.spanLogLevel",
        "mlflow.llm.model",
        "mlflow.llm.provider",
        "mlflow.trace.user",
        "mlflow.trace.session",
        "model",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "top_k",
        "n",
        "seed",
        "stop",
        "stream",
        "frequency_penalty",
        "presence_penalty",
        s.USER_ID,
        s.SESSION_ID,
    }
)


def decode_scalar(value: Any) -> Any:
    """``'"x"'`` -> ``"x"``, ``'0.2'`` -> 0.2, ``'["a"]'`` -> ``["a"]``; objects stay text."""
    if not isinstance(value, str):
        return value
    parsed = maybe_json(value)
    if isinstance(parsed, (str, int, float, bool)):
        return parsed
    if isinstance(parsed, list) and all(isinstance(v, (str, int, float, bool)) for v in parsed):
        return parsed
    return value


def _token_usage(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    usage = json_object(src.get(TOKEN_USAGE))
    if usage:
        for rule in TOKEN_USAGE_KEYS:
            if rule.source in usage:
                put(out, rule.target, rule.transform(usage[rule.source]))


def _openai_messages(inputs: Mapping[str, Any], outputs: Any) -> tuple[list[Any], list[Any]]:
    sent = _parts.openai_messages_to_parts(inputs.get("messages"))
    received: list[Any] = []
    if isinstance(outputs, Mapping):
        for choice in outputs.get("choices") or ():
            if isinstance(choice, Mapping) and isinstance(choice.get("message"), Mapping):
                msg = dict(choice["message"])
                msg["finish_reason"] = choice.get("finish_reason")
                received.extend(_parts.openai_messages_to_parts([msg], output=True))
    return sent, received


def _anthropic_messages(inputs: Mapping[str, Any], outputs: Any) -> tuple[list[Any], list[Any]]:
    sent: list[Any] = []
    for raw in inputs.get("messages") or ():
        if isinstance(raw, Mapping):
            sent.append(
                _parts.message(raw.get("role"), _parts.content_to_parts(raw.get("content")))
            )
    received: list[Any] = []
    if isinstance(outputs, Mapping) and "content" in outputs:
        parts = _parts.content_to_parts(outputs.get("content"))
        received.append(
            _parts.message(
                outputs.get("role", "assistant"),
                parts,
                finish=outputs.get("stop_reason"),
                output=True,
            )
        )
    return sent, received


#: ``mlflow.message.format`` -> how to read messages out of the request/response payloads.
MESSAGE_FORMATS: Final = {"openai": _openai_messages, "anthropic": _anthropic_messages}


def _messages(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    _tools(src, out)
    _chat_messages(src, out)
    reader = MESSAGE_FORMATS.get(str(src.get(MESSAGE_FORMAT, "")).lower())
    if reader is None:
        return
    inputs = json_object(src.get(SPAN_INPUTS)) or {}
    raw_outputs = src.get(SPAN_OUTPUTS)
    outputs = loads(raw_outputs) if isinstance(raw_outputs, str) else None
    if isinstance(outputs, Mapping):
        put(out, g.RESPONSE_MODEL, as_str(outputs.get("model")))
        put(out, g.RESPONSE_ID, as_str(outputs.get("id")))
    sent, received = reader(inputs, outputs)
    if sent:
        put(out, g.INPUT_MESSAGES, dumps(sent))
    if received:
        put(out, g.OUTPUT_MESSAGES, dumps(received))
        put(out, g.RESPONSE_FINISH_REASONS, [m["finish_reason"] for m in received])
    system = inputs.get("system")
    if system:
        put(out, g.SYSTEM_INSTRUCTIONS, dumps(_parts.content_to_parts(system)))
    put(out, g.PROVIDER_NAME, provider(src.get(MESSAGE_FORMAT)))


def _tools(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    if g.TOOL_DEFINITIONS in out or not isinstance(src.get(CHAT_TOOLS), str):
        return
    tools = loads(src[CHAT_TOOLS])
    if isinstance(tools, list):
        defs = [d for d in map(_parts.tool_definition, tools) if d is not None]
        if defs:
            put(out, g.TOOL_DEFINITIONS, dumps(defs))


def _chat_messages(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    """MLflow 2.x ``mlflow.chat.messages``: the whole conversation, the model's answer last."""
    raw = src.get(CHAT_MESSAGES)
    chat = loads(raw) if isinstance(raw, str) else None
    if not isinstance(chat, list) or not chat:
        return
    answer: list[Any] = []
    last = chat[-1]
    if isinstance(last, Mapping) and last.get("role") == "assistant" and len(chat) > 1:
        chat, answer = chat[:-1], [last]
    sent = _parts.openai_messages_to_parts(chat)
    if sent:
        put(out, g.INPUT_MESSAGES, dumps(sent))
    if answer:
        put(out, g.OUTPUT_MESSAGES, dumps(_parts.openai_messages_to_parts(answer, output=True)))


def _operation(src: Mapping[str, Any], out: dict[str, Any]) -> None:
    span_type = out.get(s.SPAN_TYPE)
    if span_type == SpanType.CHAT_MODEL.value:
        put(out, g.OPERATION_NAME, g.Operation.CHAT)
    elif span_type == SpanType.EMBEDDING.value:
        put(out, g.OPERATION_NAME, g.Operation.EMBEDDINGS)


DIALECT: Final = Dialect(
    name="mlflow",
    markers=frozenset(
        {SPAN_TYPE, SPAN_INPUTS, SPAN_OUTPUTS, TRACE_REQUEST_ID, TOKEN_USAGE, CHAT_MESSAGES}
    ),
    decode_keys=DECODED_KEYS,
    decode=decode_scalar,
    renames=(
        Rename(SPAN_TYPE, s.SPAN_TYPE, enum_map(SPAN_TYPES)),
        Rename(SPAN_INPUTS, s.SPAN_INPUTS, json_text),
        Rename(SPAN_OUTPUTS, s.SPAN_OUTPUTS, json_text),
        Rename("mlflow.llm.provider", g.PROVIDER_NAME, provider),
        Rename("model", g.REQUEST_MODEL, as_str),
        Rename("mlflow.llm.model", g.REQUEST_MODEL, as_str),
        Rename("temperature", g.REQUEST_TEMPERATURE, as_float),
        Rename("top_p", g.REQUEST_TOP_P, as_float),
        Rename("top_k", g.REQUEST_TOP_K, as_float),
        Rename("max_tokens", g.REQUEST_MAX_TOKENS, as_int),
        Rename("max_completion_tokens", g.REQUEST_MAX_TOKENS, as_int),
        Rename("seed", g.REQUEST_SEED, as_int),
        Rename("n", g.REQUEST_CHOICE_COUNT, as_int),
        Rename("stop", g.REQUEST_STOP_SEQUENCES, as_str_list),
        Rename("frequency_penalty", g.REQUEST_FREQUENCY_PENALTY, as_float),
        Rename("presence_penalty", g.REQUEST_PRESENCE_PENALTY, as_float),
        Rename("stream", g.REQUEST_STREAM, lambda v: v if isinstance(v, bool) else None),
        Rename("mlflow.trace.user", s.USER_ID, as_str),
        Rename("mlflow.trace.session", s.SESSION_ID, as_str),
        Rename(TRACE_REQUEST_ID, s.TRACE_METADATA_PREFIX + "mlflow.trace_id", as_str),
    ),
    builders=(_token_usage, _messages, _operation),
)
