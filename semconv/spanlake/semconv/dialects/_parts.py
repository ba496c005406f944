"""Building OTel GenAI message-parts JSON from other dialects' message shapes.

Target schema (``gen_ai.input.messages`` / ``gen_ai.output.messages``)::

    [{"role": "user", "parts": [{"type": "text", "content": "..."}]},
     {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "f",
                                      "arguments": {...}}], "finish_reason": "tool_call"}]

plus ``{"type": "tool_call_response", "id", "response"}``, ``{"type": "reasoning",
"content"}`` and ``{"type": "uri" | "blob", "modality", ...}`` parts. Also reads flattened
``prefix.N.rest`` attribute families into per-index dicts, which both OpenInference and
OpenLLMetry use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from spanlake.semconv.dialects._values import loads, maybe_json

Part = dict[str, Any]
Message = dict[str, Any]

# OTel finish reasons (``stop``, ``length``, ``content_filter``, ``tool_call``, ``error``).
_FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_call",
    "tool_use": "tool_call",
    "function_call": "tool_call",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "error": "error",
}


def finish_reason(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return _FINISH_REASONS.get(value.lower(), value.lower())


def indexed(flat: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``{prefix + "0.a": 1, prefix + "1.b": 2}`` -> ``[{"a": 1}, {"b": 2}]`` by index order."""
    return families(flat, (prefix,))[prefix]


#: Parsed flattened keys, per prefix set: attribute names repeat across every span of a
#: dialect, so parsing each name once turns the hot loop into dict lookups.
_PARSED: dict[tuple[str, ...], dict[str, tuple[str, int, str] | None]] = {}
_PARSED_MAX = 50_000


def _parse(key: str, prefixes: tuple[str, ...]) -> tuple[str, int, str] | None:
    for prefix in prefixes:
        if key.startswith(prefix):
            index, _, rest = key[len(prefix) :].partition(".")
            if rest and index.isdigit() and len(index) <= 6:
                return prefix, int(index), rest
            return None
    return None


def families(flat: Mapping[str, Any], prefixes: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """:func:`indexed` for several prefixes in ONE pass over the keys (the hot loop)."""
    parsed = _PARSED.get(prefixes)
    if parsed is None or len(parsed) > _PARSED_MAX:
        parsed = _PARSED[prefixes] = {}
    groups: dict[str, dict[int, dict[str, Any]]] = {p: {} for p in prefixes}
    for key, value in flat.items():
        try:
            hit = parsed[key]
        except KeyError:
            hit = parsed[key] = _parse(key, prefixes) if isinstance(key, str) else None
        if hit is not None:
            prefix, index, rest = hit
            group = groups[prefix]
            if index in group:
                group[index][rest] = value
            else:
                group[index] = {rest: value}
    return {p: [g[i] for i in sorted(g)] for p, g in groups.items()}


def text_part(content: Any) -> Part:
    return {"type": "text", "content": content if isinstance(content, str) else str(content)}


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> Part:
    part: Part = {"type": "tool_call", "name": name if isinstance(name, str) else str(name)}
    if call_id:
        part["id"] = str(call_id)
    if arguments is not None and arguments != "":
        part["arguments"] = maybe_json(arguments)
    return part


def tool_response_part(call_id: Any, response: Any) -> Part:
    part: Part = {"type": "tool_call_response", "response": maybe_json(response)}
    if call_id:
        part["id"] = str(call_id)
    return part


def message(
    role: Any, parts: list[Part], *, name: Any = None, finish: Any = None, output: bool = False
) -> Message:
    msg: Message = {"role": role if isinstance(role, str) and role else "user", "parts": parts}
    if isinstance(name, str) and name:
        msg["name"] = name
    if output:
        msg["finish_reason"] = finish_reason(finish) or "stop"
    return msg


#: Bedrock Converse blocks carry no "type": the single key names the kind.
_CONVERSE_KINDS: Final = frozenset(
    {"text", "toolUse", "toolResult", "image", "document", "reasoningContent"}
)


def _converse_block_to_parts(block: Mapping[str, Any]) -> list[Part]:
    if "text" in block:
        return [text_part(block["text"])]
    if isinstance(use := block.get("toolUse"), Mapping):
        return [tool_call_part(use.get("toolUseId"), use.get("name"), use.get("input"))]
    if isinstance(result := block.get("toolResult"), Mapping):
        content = result.get("content")
        if isinstance(content, list):
            texts = [str(b["text"]) for b in content if isinstance(b, Mapping) and "text" in b]
            content = "".join(texts) if texts else content
        return [tool_response_part(result.get("toolUseId"), content)]
    if isinstance(reasoning := block.get("reasoningContent"), Mapping):
        text = reasoning.get("reasoningText")
        text = text.get("text", "") if isinstance(text, Mapping) else ""
        return [{"type": "reasoning", "content": text}]
    kind = next(iter(block))
    return [{"type": str(kind), "content": block[kind]}]


def _block_to_parts(block: Mapping[str, Any]) -> list[Part]:
    """One provider content block (OpenAI, Anthropic or Bedrock shapes) as parts."""
    kind = block.get("type")
    if kind is None and len(block) == 1 and next(iter(block)) in _CONVERSE_KINDS:
        return _converse_block_to_parts(block)
    if kind in ("text", "input_text", "output_text"):
        return [text_part(block.get("text", ""))]
    if kind in ("thinking", "reasoning"):
        return [{"type": "reasoning", "content": block.get("thinking") or block.get("text") or ""}]
    if kind == "tool_use":
        return [tool_call_part(block.get("id"), block.get("name"), block.get("input"))]
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            texts = [b.get("text", "") for b in content if isinstance(b, Mapping)]
            content = "".join(texts) if texts else content
        return [tool_response_part(block.get("tool_use_id"), content)]
    if kind == "image_url":
        url = block.get("image_url")
        url = url.get("url") if isinstance(url, Mapping) else url
        return [{"type": "uri", "modality": "image", "uri": str(url)}]
    if kind == "image":
        source = block.get("source")
        if isinstance(source, Mapping) and source.get("type") == "url":
            return [{"type": "uri", "modality": "image", "uri": str(source.get("url"))}]
        if isinstance(source, Mapping):
            return [
                {
                    "type": "blob",
                    "modality": "image",
                    "mime_type": source.get("media_type"),
                    "content": source.get("data", ""),
                }
            ]
    return [{"type": str(kind or "unknown"), **{k: v for k, v in block.items() if k != "type"}}]


def content_to_parts(content: Any) -> list[Part]:
    """Message content (a string, a JSON list of blocks, or a list) as parts.

    A string is parsed only when it is a JSON list of content blocks or a JSON string
    literal (how OpenLLMetry records Anthropic and Bedrock content); any other string is
    one text part, verbatim.
    """
    if content is None or content == "":
        return []
    if isinstance(content, str):
        first = content[:1]
        if first == "[":
            parsed = loads(content)
            if _is_block_list(parsed):
                return content_to_parts(parsed)
        elif first == '"' and content[-1:] == '"' and len(content) > 1:
            decoded = loads(content)
            if isinstance(decoded, str):
                return [text_part(decoded)] if decoded else []
        return [text_part(content)]
    if isinstance(content, (list, tuple)):
        parts: list[Part] = []
        for block in content:
            if isinstance(block, Mapping):
                parts.extend(_block_to_parts(block))
            elif isinstance(block, str):
                parts.append(text_part(block))
        return parts
    if isinstance(content, Mapping):
        return _block_to_parts(content)
    return [text_part(content)]


def _is_block(block: Any) -> bool:
    if not isinstance(block, Mapping):
        return False
    if isinstance(block.get("type"), str):
        return True
    return len(block) == 1 and next(iter(block)) in _CONVERSE_KINDS


def _is_block_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(map(_is_block, value))


def merge_tool_calls(parts: list[Part], calls: Sequence[Part]) -> list[Part]:
    """``parts`` plus the tool calls whose id is not already among them."""
    if not calls:
        return parts
    seen = {p.get("id") for p in parts if p.get("type") == "tool_call" and p.get("id")}
    for call in calls:
        if not call.get("id") or call["id"] not in seen:
            parts.append(call)
    return parts


def openai_messages_to_parts(messages: Any, *, output: bool = False) -> list[Message]:
    """OpenAI-format chat messages (MLflow's ``mlflow.chat.messages``) as parts messages."""
    out: list[Message] = []
    if not isinstance(messages, list):
        return out
    for raw in messages:
        if not isinstance(raw, Mapping):
            continue
        role = raw.get("role")
        if role == "tool":
            parts = [tool_response_part(raw.get("tool_call_id"), raw.get("content"))]
        else:
            parts = content_to_parts(raw.get("content"))
        calls = []
        for call in raw.get("tool_calls") or ():
            if isinstance(call, Mapping):
                function = call.get("function")
                function = function if isinstance(function, Mapping) else {}
                calls.append(
                    tool_call_part(call.get("id"), function.get("name"), function.get("arguments"))
                )
        merge_tool_calls(parts, calls)
        out.append(
            message(
                role, parts, name=raw.get("name"), finish=raw.get("finish_reason"), output=output
            )
        )
    return out


def tool_definition(schema: Any) -> dict[str, Any] | None:
    """One tool definition (OpenAI ``{"type": "function", "function": {...}}``, Anthropic
    ``{"name", "input_schema"}`` or flat ``{"name", "parameters"}``) in OTel's flat shape."""
    schema = maybe_json(schema)
    if not isinstance(schema, Mapping):
        return None
    function = schema.get("function")
    body: Mapping[str, Any] = function if isinstance(function, Mapping) else schema
    name = body.get("name")
    if not isinstance(name, str):
        return None
    out: dict[str, Any] = {"type": "function", "name": name}
    if body.get("description"):
        out["description"] = body["description"]
    params = body.get("parameters", body.get("input_schema"))
    if params is not None:
        out["parameters"] = maybe_json(params)
    return out
