"""The Converse shape (``converse`` / ``converse_stream``, and Amazon Nova's invoke body)
read into the neutral records, content in the OTel parts schema."""

from __future__ import annotations

from typing import Any

from spanlake.instrumentation._genai._parts import (
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
)
from spanlake.semconv import gen_ai

from ._types import Request, Response, StreamAggregator, Usage, as_int

#: inferenceConfig key -> semconv key (converse uses camelCase, Nova's invoke body snake_case).
_PARAMS: dict[str, str] = {
    "maxTokens": "max_tokens",
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "topP": "top_p",
    "top_p": "top_p",
    "topK": "top_k",
    "top_k": "top_k",
    "stopSequences": "stop_sequences",
}
_MEDIA = ("image", "document", "video", "audio")


def params(config: Any, extra: Any = None) -> dict[str, Any]:
    """Request parameters from ``inferenceConfig`` (+ ``additionalModelRequestFields``)."""
    out: dict[str, Any] = {}
    for source in (extra, config):  # inferenceConfig wins over the model-specific extras
        if isinstance(source, dict):
            for key, value in source.items():
                attr = _PARAMS.get(key)
                if attr is not None and value is not None:
                    out[attr] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _media_part(kind: str, block: dict[str, Any], binary: bool) -> Part:
    fmt = block.get("format")
    source = block.get("source") or {}
    data = source.get("bytes") if isinstance(source, dict) else None
    if isinstance(source, dict) and isinstance(source.get("s3Location"), dict):
        uri = source["s3Location"].get("uri")
        return {"type": "uri", "modality": kind, "uri": uri, "mime_type": fmt}
    part = blob_part(kind, f"{kind}/{fmt}" if fmt else None, data, include_bytes=binary)
    if block.get("name"):
        part["name"] = block["name"]
    return part


def content_part(block: Any, binary: bool) -> Part | None:
    """One Converse content block as an OTel part (None for cache points)."""
    if not isinstance(block, dict):
        return None
    if "text" in block:
        return text_part(str(block["text"]))
    if "toolUse" in block:
        use = block["toolUse"] or {}
        return tool_call_part(use.get("toolUseId"), use.get("name"), use.get("input"))
    if "toolResult" in block:
        result = block["toolResult"] or {}
        response = [_tool_result_item(item) for item in result.get("content") or []]
        part = tool_call_response_part(
            result.get("toolUseId"), response[0] if len(response) == 1 else response
        )
        if result.get("status"):
            part["status"] = result["status"]
        return part
    if "reasoningContent" in block:
        reasoning = block["reasoningContent"] or {}
        text = (reasoning.get("reasoningText") or {}).get("text")
        return reasoning_part(str(text or ""))
    for kind in _MEDIA:
        if kind in block:
            return _media_part(kind, block[kind] or {}, binary)
    if "cachePoint" in block:
        return None
    key = next(iter(block), "unknown")
    return generic_part(str(key), value=block[key])


def _tool_result_item(item: Any) -> Any:
    if isinstance(item, dict):
        if "text" in item:
            return item["text"]
        if "json" in item:
            return item["json"]
    return item


def _parts(content: Any, binary: bool) -> list[Part]:
    if isinstance(content, str):
        return [text_part(content)]
    parts = (content_part(block, binary) for block in content or [])
    return [p for p in parts if p is not None]


def messages(raw: Any, binary: bool) -> list[Message]:
    """Converse ``messages`` as OTel input messages."""
    out: list[Message] = []
    for item in raw or []:
        if not isinstance(item, dict):
            continue
        parts = _parts(item.get("content"), binary)
        # A user turn that only carries tool results is the "tool" role in the schema.
        role = str(item.get("role", "user"))
        if parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"
        out.append(message(role, parts))
    return out


def tools(tool_config: Any) -> list[dict[str, Any]] | None:
    """``toolConfig.tools`` as OTel tool definitions."""
    if not isinstance(tool_config, dict):
        return None
    out = []
    for item in tool_config.get("tools") or []:
        spec = item.get("toolSpec") if isinstance(item, dict) else None
        if isinstance(spec, dict):
            schema = spec.get("inputSchema")
            parameters = schema.get("json") if isinstance(schema, dict) else None
            out.append(tool_definition(spec.get("name"), spec.get("description"), parameters))
    return out or None


def request(kwargs: dict[str, Any], binary: bool, *, content: bool) -> Request:
    """A converse / converse_stream call (or a Nova invoke body) as a :class:`Request`."""
    config = kwargs.get("inferenceConfig")
    req = Request(gen_ai.Operation.CHAT, params(config, kwargs.get("additionalModelRequestFields")))
    if content:
        system = _parts(kwargs.get("system"), binary)
        req.system = system or None
        req.messages = messages(kwargs.get("messages"), binary)
        req.tools = tools(kwargs.get("toolConfig"))
    return req


def usage(raw: Any) -> Usage:
    """Converse ``usage`` (Nova's invoke body names the cache counts ``...TokenCount``)."""
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=as_int(raw.get("inputTokens")),
        output_tokens=as_int(raw.get("outputTokens")),
        cache_read=as_int(raw.get("cacheReadInputTokens", raw.get("cacheReadInputTokenCount"))),
        cache_write=as_int(raw.get("cacheWriteInputTokens", raw.get("cacheWriteInputTokenCount"))),
    )


def response(result: dict[str, Any], binary: bool, *, content: bool) -> Response:
    """A converse result (or a Nova invoke body) as a :class:`Response`."""
    resp = Response(usage=usage(result.get("usage")))
    reason = result.get("stopReason")
    if isinstance(reason, str):
        resp.finish_reasons = [reason]
    if content:
        output = result.get("output")
        msg = output.get("message") if isinstance(output, dict) else None
        if isinstance(msg, dict):
            parts = _parts(msg.get("content"), binary)
            resp.output = [output_message(str(msg.get("role", "assistant")), parts, reason)]
    return resp


def on_stream_event(agg: StreamAggregator, event: dict[str, Any]) -> bool:
    """Fold one Converse stream event into ``agg``; True when the event carried output."""
    if "contentBlockDelta" in event:
        body = event["contentBlockDelta"] or {}
        index = body.get("contentBlockIndex", 0)
        delta = body.get("delta") or {}
        if "text" in delta:
            agg.add_text(str(delta["text"]), index)
        elif "toolUse" in delta:
            agg.add_tool_arguments(index, str((delta["toolUse"] or {}).get("input", "")))
        elif "reasoningContent" in delta:
            agg.add_reasoning(str((delta["reasoningContent"] or {}).get("text", "")), index)
        return True
    if "contentBlockStart" in event:
        body = event["contentBlockStart"] or {}
        start = (body.get("start") or {}).get("toolUse")
        if isinstance(start, dict):
            agg.start_tool_call(
                body.get("contentBlockIndex", 0), start.get("toolUseId"), start.get("name")
            )
        return True
    if "messageStop" in event:
        agg.finish((event["messageStop"] or {}).get("stopReason"))
    elif "metadata" in event:
        agg.response.usage = usage((event["metadata"] or {}).get("usage"))
    return False
