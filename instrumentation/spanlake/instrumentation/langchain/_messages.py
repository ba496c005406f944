"""LangChain messages, generations and tool schemas in the OTel GenAI message-parts schema.

LangChain normalises every provider into ``BaseMessage`` objects (``type`` human / ai /
system / tool / function / chat, ``content`` a string or a list of content blocks,
``AIMessage.tool_calls``, ``usage_metadata``), so one converter serves every chat model.
Only duck-typed attribute reads: nothing here imports LangChain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._genai._invocation import Response, Usage
from .._genai._parts import (
    Message,
    Part,
    blob_part,
    generic_part,
    message,
    output_message,
    reasoning_part,
    text_part,
    tool_call_part,
    tool_call_response_part,
    tool_definition,
    uri_part,
)

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_FINISH_KEYS = ("finish_reason", "stop_reason", "stopReason")
_MODEL_KEYS = ("model_name", "model", "model_id")


def _block_parts(block: Any, binary: bool) -> list[Part]:
    if isinstance(block, str):
        return [text_part(block)]
    if not isinstance(block, Mapping):
        return [generic_part(type(block).__name__)]
    kind = block.get("type")
    if kind == "text":
        return [text_part(str(block.get("text", "")))]
    if kind in ("reasoning", "thinking"):
        return [reasoning_part(str(block.get("reasoning") or block.get("thinking") or ""))]
    if kind in ("tool_use", "tool_call"):
        return [
            tool_call_part(
                block.get("id"), block.get("name"), block.get("input", block.get("args"))
            )
        ]
    if kind == "image_url":
        url = block.get("image_url")
        url = url.get("url") if isinstance(url, Mapping) else url
        if isinstance(url, str) and url.startswith("data:"):
            mime = url[5:].split(";", 1)[0] or None
            return [blob_part("image", mime, url.split(",", 1)[-1], include_bytes=binary)]
        return [uri_part("image", str(url))]
    if kind == "image":
        data = block.get("base64") or block.get("data")
        if data is not None:
            return [blob_part("image", block.get("mime_type"), data, include_bytes=binary)]
        return [uri_part("image", str(block.get("url")), block.get("mime_type"))]
    return [generic_part(str(kind or "unknown"))]


def _content_parts(content: Any, binary: bool) -> list[Part]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [text_part(content)]
    if isinstance(content, Sequence):
        return [part for block in content for part in _block_parts(block, binary)]
    return [text_part(str(content))]


def to_message(msg: Any, binary: bool = False) -> Message:
    """One ``BaseMessage`` as ``{"role", "parts"}`` (tool calls and results as parts)."""
    kind = getattr(msg, "type", None)
    if kind == "chat":
        role = str(getattr(msg, "role", "user"))
    elif kind == "function":
        role = "tool"
    else:
        role = _ROLES.get(str(kind), str(kind))
    content = getattr(msg, "content", None)
    if role == "tool":
        parts = [tool_call_response_part(getattr(msg, "tool_call_id", None), content)]
        return message(role, parts)
    parts = _content_parts(content, binary)
    if role == "assistant":
        already = {p.get("id") for p in parts if p.get("type") == "tool_call"}
        for call in getattr(msg, "tool_calls", None) or ():
            if call.get("id") not in already:
                parts.append(tool_call_part(call.get("id"), call.get("name"), call.get("args")))
    return message(role, parts, name=getattr(msg, "name", None))


def input_messages(batch: Sequence[Sequence[Any]], binary: bool) -> list[Message]:
    """The first prompt of an ``on_chat_model_start`` batch (one run per prompt)."""
    if not batch:
        return []
    return [to_message(m, binary) for m in batch[0]]


def prompt_messages(prompts: Sequence[str]) -> list[Message]:
    """``on_llm_start`` prompts (completion models) as user messages."""
    return [message("user", [text_part(p)]) for p in prompts[:1]]


def tool_definitions(tools: Any) -> list[dict[str, Any]] | None:
    """Bound tools from invocation params, in OpenAI, Anthropic or Bedrock shape."""
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        return None
    out = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        spec = tool.get("function") or tool.get("toolSpec") or tool
        if not isinstance(spec, Mapping):
            continue
        schema = spec.get("parameters") or spec.get("input_schema") or spec.get("inputSchema")
        out.append(tool_definition(spec.get("name"), spec.get("description"), schema))
    return out or None


def _usage(message_obj: Any, llm_output: Any) -> Usage | None:
    meta = getattr(message_obj, "usage_metadata", None)
    if isinstance(meta, Mapping) and meta:
        inputs = meta.get("input_token_details") or {}
        outputs = meta.get("output_token_details") or {}
        # LangChain's input_tokens already include cache reads and writes.
        return Usage(
            input_tokens=meta.get("input_tokens"),
            output_tokens=meta.get("output_tokens"),
            cache_read_input_tokens=inputs.get("cache_read"),
            cache_creation_input_tokens=inputs.get("cache_creation"),
            reasoning_output_tokens=outputs.get("reasoning"),
            input_includes_cache=True,
        )
    if isinstance(llm_output, Mapping):
        usage = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(usage, Mapping):
            return Usage(
                input_tokens=usage.get("prompt_tokens", usage.get("input_tokens")),
                output_tokens=usage.get("completion_tokens", usage.get("output_tokens")),
            )
    return None


def _first(mapping: Any, keys: Sequence[str]) -> Any:
    if isinstance(mapping, Mapping):
        for key in keys:
            value = mapping.get(key)
            if value:
                return value
    return None


def llm_response(result: Any, with_content: bool, binary: bool) -> Response:
    """An ``LLMResult`` (first prompt's generations) as our ``Response``."""
    generations = (getattr(result, "generations", None) or [[]])[0]
    llm_output = getattr(result, "llm_output", None)
    outputs: list[Message] = []
    reasons: list[str] = []
    response = Response()
    first_message = None
    for gen in generations:
        msg = getattr(gen, "message", None)
        meta = getattr(msg, "response_metadata", None)
        reason = _first(getattr(gen, "generation_info", None), _FINISH_KEYS) or _first(
            meta, _FINISH_KEYS
        )
        if reason:
            reasons.append(str(reason))
        if msg is not None:
            if first_message is None:
                first_message = msg
            if with_content:
                converted = to_message(msg, binary)
                outputs.append(output_message("assistant", converted["parts"], reason))
        elif with_content:
            outputs.append(output_message("assistant", [text_part(str(gen.text))], reason))
    meta = getattr(first_message, "response_metadata", None)
    response.model = _first(meta, _MODEL_KEYS) or _first(llm_output, _MODEL_KEYS)
    response.id = _first(meta, ("id",)) or None
    response.finish_reasons = reasons or None
    response.usage = _usage(first_message, llm_output)
    if with_content:
        response.output_messages = outputs
    return response
