"""Anthropic request/response shapes -> the shared core's Request, Response and message parts.

Blocks may be dicts (what apps write) or SDK pydantic models (what apps append back from a
previous response, as the seed's tool agent does), so every read goes through :func:`get`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spanlake.instrumentation._genai import (
    ContentConfig,
    Message,
    Part,
    Request,
    Response,
    Usage,
    blob_part,
    file_part,
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
from spanlake.semconv.gen_ai import Operation, Provider

#: The API's request id (``request-id`` header), as the SDK's own spans name it.
REQUEST_ID = "anthropic.request.id"
_SENTINELS = frozenset({"Omit", "NotGiven"})


_MISSING: Any = object()


def _unset(value: Any) -> bool:
    # Keyword arguments may carry the SDK's ``omit``/``NOT_GIVEN`` sentinels.
    return value is not None and type(value).__name__ in _SENTINELS


#: Value types that are never the SDK's omit/NOT_GIVEN sentinels (skip the name check).
_PLAIN = frozenset({str, int, float, bool, list, dict, tuple, type(None)})


def get(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise; ``default`` when missing/omitted."""
    if type(obj) is dict:  # the common cases first: an ABC isinstance check is slow
        value = obj.get(name, _MISSING)
        if value is _MISSING:
            return default
        if type(value) in _PLAIN:
            return value
        return default if _unset(value) else value
    value = getattr(obj, name, _MISSING)
    if value is not _MISSING:
        return value
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
        return default if _unset(value) else value
    return default


# --- request ------------------------------------------------------------------------------


def _server(client: Any) -> tuple[str | None, int | None]:
    url = getattr(client, "base_url", None)
    if url is None:
        return None, None
    host = getattr(url, "host", None)
    port = getattr(url, "port", None)
    if port is None:
        port = 80 if getattr(url, "scheme", "https") == "http" else 443
    return host, port


def _provider_of(client: Any) -> str:
    """Older SDKs do not name their platform: tell it by the client's module."""
    module = type(client).__module__
    if ".bedrock" in module:
        return Provider.AWS_BEDROCK
    if ".vertex" in module:
        return Provider.GCP_VERTEX_AI
    return Provider.ANTHROPIC


def build_request(client: Any, kwargs: Mapping[str, Any], *, stream: bool) -> Request:
    """Span start attributes from the call's keyword arguments (and ``extra_body``)."""
    extra = get(kwargs, "extra_body")
    params: Mapping[str, Any] = {**kwargs, **extra} if isinstance(extra, Mapping) else kwargs
    host, port = _server(client)
    provider = getattr(client, "_gen_ai_provider_name", None) or _provider_of(client)
    attrs: dict[str, Any] = {}
    thinking = get(params, "thinking")
    if thinking is not None:
        if (kind := get(thinking, "type")) is not None:
            attrs["anthropic.thinking.type"] = str(kind)
        if isinstance(budget := get(thinking, "budget_tokens"), int):
            attrs["anthropic.thinking.budget_tokens"] = budget
    if isinstance(tier := get(params, "service_tier"), str):
        attrs["anthropic.request.service_tier"] = tier
    model = get(params, "model")
    return Request(
        operation=Operation.CHAT,
        provider=str(provider),
        model=str(model) if model is not None else None,
        server_address=host,
        server_port=port,
        stream=stream,
        temperature=get(params, "temperature"),
        top_p=get(params, "top_p"),
        top_k=get(params, "top_k"),
        max_tokens=get(params, "max_tokens"),
        stop_sequences=get(params, "stop_sequences"),
        attributes=attrs,
    )


def _image_part(block: Any, cfg: ContentConfig, modality: str) -> Part:
    source = get(block, "source") or {}
    kind = get(source, "type")
    if kind == "base64":
        return blob_part(
            modality, get(source, "media_type"), get(source, "data"), include_bytes=cfg.binary
        )
    if kind == "url":
        return uri_part(modality, str(get(source, "url")))
    if kind == "file":
        return file_part(str(get(source, "file_id")), modality)
    if kind == "text":
        return text_part(str(get(source, "data") or ""))
    return generic_part(str(get(block, "type")), source_type=kind)


def _tool_result_response(content: Any, cfg: ContentConfig) -> Any:
    if content is None or isinstance(content, str):
        return content
    try:
        parts = [block_part(b, cfg) for b in content]
    except TypeError:
        return content
    if all(p.get("type") == "text" for p in parts):
        return "".join(str(p.get("content", "")) for p in parts)
    return parts


def block_part(block: Any, cfg: ContentConfig) -> Part:
    """One Anthropic content block as an OTel message part."""
    if isinstance(block, str):
        return text_part(block)
    kind = get(block, "type")
    if kind == "text":
        return text_part(str(get(block, "text") or ""))
    if kind == "image":
        return _image_part(block, cfg, "image")
    if kind == "document":
        return _image_part(block, cfg, "document")
    if kind in ("tool_use", "server_tool_use"):
        return tool_call_part(get(block, "id"), get(block, "name"), get(block, "input"))
    if kind == "tool_result":
        part = tool_call_response_part(
            get(block, "tool_use_id"), _tool_result_response(get(block, "content"), cfg)
        )
        if get(block, "is_error"):
            part["is_error"] = True
        return part
    if kind == "thinking":
        return reasoning_part(str(get(block, "thinking") or ""))
    if kind == "redacted_thinking":
        return generic_part("redacted_thinking")
    return generic_part(str(kind))


def _parts(content: Any, cfg: ContentConfig) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    return [block_part(b, cfg) for b in content]


def input_messages(kwargs: Mapping[str, Any], cfg: ContentConfig) -> list[Message]:
    return [
        message(str(get(m, "role") or "user"), _parts(get(m, "content"), cfg))
        for m in get(kwargs, "messages") or ()
    ]


def system_instructions(kwargs: Mapping[str, Any], cfg: ContentConfig) -> list[Part] | None:
    system = get(kwargs, "system")
    return _parts(system, cfg) if system else None


def tool_definitions(kwargs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    tools = get(kwargs, "tools")
    if not tools:
        return None
    out: list[dict[str, Any]] = []
    for tool in tools:
        kind = get(tool, "type")
        if kind in (None, "custom"):
            out.append(
                tool_definition(
                    get(tool, "name"), get(tool, "description"), get(tool, "input_schema")
                )
            )
        else:  # server tools (web search, code execution, ...): keep their type
            out.append({"type": str(kind), "name": get(tool, "name")})
    return out


# --- response -----------------------------------------------------------------------------


def usage_from(usage: Any) -> Usage | None:
    if usage is None:
        return None
    details = get(usage, "output_tokens_details")
    return Usage(
        input_tokens=_int(get(usage, "input_tokens")),
        output_tokens=_int(get(usage, "output_tokens")),
        cache_read_input_tokens=_int(get(usage, "cache_read_input_tokens")),
        cache_creation_input_tokens=_int(get(usage, "cache_creation_input_tokens")),
        reasoning_output_tokens=_int(get(details, "thinking_tokens")) if details else None,
        input_includes_cache=False,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_response(msg: Any, cfg: ContentConfig) -> Response:
    """Response attributes from a ``Message`` (model or decoded JSON dict)."""
    stop = get(msg, "stop_reason")
    output = None
    if cfg.enabled:
        output = [
            output_message(
                str(get(msg, "role") or "assistant"), _parts(get(msg, "content"), cfg), stop
            )
        ]
    response = Response(
        id=get(msg, "id"),
        model=get(msg, "model"),
        finish_reasons=[str(stop)] if stop else None,
        usage=usage_from(get(msg, "usage")),
        output_messages=output,
    )
    request_id = getattr(msg, "_request_id", None)  # set by the SDK on parsed responses
    if isinstance(request_id, str):
        response.attributes[REQUEST_ID] = request_id
    return response
