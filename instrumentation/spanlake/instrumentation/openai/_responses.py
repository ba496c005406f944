"""The Responses API (``responses.create``) to and from the GenAI span model.

``instructions`` and system/developer input items become ``gen_ai.system_instructions``;
``function_call`` / ``function_call_output`` items become tool-call parts; the output items
fold into one assistant message whose finish reason is derived from the response status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Status, StatusCode

from spanlake.semconv import gen_ai as ga

from .._genai._invocation import Invocation, Request, Response, Usage
from .._genai._parts import (
    Message,
    Part,
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
)
from ._common import (
    as_float,
    as_int,
    as_str,
    attr,
    image_url_part,
    output_type,
    parse_arguments,
    server_and_provider,
)

_SYSTEM_ROLES = frozenset({"system", "developer"})
_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def responses_request(resource: Any, kwargs: Mapping[str, Any]) -> Request:
    """The span's request side from ``responses.create()``'s keyword arguments."""
    address, port, provider = server_and_provider(resource)
    request = Request(
        operation=ga.Operation.CHAT,
        provider=provider,
        model=as_str(attr(kwargs, "model")),
        server_address=address,
        server_port=port,
        stream=bool(attr(kwargs, "stream")),
        temperature=as_float(attr(kwargs, "temperature")),
        top_p=as_float(attr(kwargs, "top_p")),
        max_tokens=as_int(attr(kwargs, "max_output_tokens")),
    )
    text_format = attr(kwargs, "text_format")  # parse(): a pydantic model
    kind = output_type(
        text_format if text_format is not None else attr(attr(kwargs, "text"), "format")
    )
    if kind is not None:
        request.attributes[ga.OUTPUT_TYPE] = kind
    tier = as_str(attr(kwargs, "service_tier"))
    if tier is not None:
        request.attributes["openai.request.service_tier"] = tier
    previous = as_str(attr(kwargs, "previous_response_id"))
    if previous is not None:
        request.attributes["openai.request.previous_response_id"] = previous
    return request


# --- request content ------------------------------------------------------------------------
def _content_parts(content: Any, include_bytes: bool) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[Part] = []
    for item in content:
        kind = attr(item, "type")
        if kind in {"input_text", "output_text", "text"}:
            parts.append(text_part(attr(item, "text") or ""))
        elif kind == "refusal":
            parts.append(generic_part("refusal", content=attr(item, "refusal")))
        elif kind == "input_image":
            url = attr(item, "image_url")
            file_id = attr(item, "file_id")
            if url:
                parts.append(image_url_part(str(url), include_bytes=include_bytes))
            elif file_id:
                parts.append(file_part(str(file_id), "image"))
            else:
                parts.append(generic_part("input_image"))
        elif kind == "input_file":
            file_id = attr(item, "file_id")
            if file_id:
                parts.append(file_part(str(file_id)))
            elif attr(item, "file_url"):
                parts.append({"type": "uri", "modality": "file", "uri": attr(item, "file_url")})
            else:
                parts.append(
                    blob_part("file", None, attr(item, "file_data"), include_bytes=include_bytes)
                )
        elif kind == "input_audio":
            audio = attr(item, "input_audio")
            fmt = attr(audio, "format")
            parts.append(
                blob_part(
                    "audio",
                    f"audio/{fmt}" if fmt else None,
                    attr(audio, "data"),
                    include_bytes=include_bytes,
                )
            )
        else:
            parts.append(generic_part(str(kind)))
    return parts


def _item_parts(item: Any, include_bytes: bool) -> tuple[str, list[Part]]:
    """``(role, parts)`` of one input or output item."""
    kind = attr(item, "type")
    if kind == "function_call":
        args = parse_arguments(attr(item, "arguments"))
        return "assistant", [tool_call_part(attr(item, "call_id"), attr(item, "name"), args)]
    if kind == "function_call_output":
        return "tool", [tool_call_response_part(attr(item, "call_id"), attr(item, "output"))]
    if kind == "custom_tool_call":
        return "assistant", [
            tool_call_part(attr(item, "call_id"), attr(item, "name"), attr(item, "input"))
        ]
    if kind == "custom_tool_call_output":
        return "tool", [tool_call_response_part(attr(item, "call_id"), attr(item, "output"))]
    if kind == "reasoning":
        texts = [attr(s, "text") for s in attr(item, "summary") or ()]
        texts += [attr(c, "text") for c in attr(item, "content") or ()]
        joined = "\n".join(t for t in texts if isinstance(t, str))
        return "assistant", [reasoning_part(joined)] if joined else []
    if kind in (None, "message"):
        role = str(attr(item, "role") or "user")
        return role, _content_parts(attr(item, "content"), include_bytes)
    # Built-in tool calls (web_search_call, file_search_call, ...) are kept by type.
    return "assistant", [generic_part(str(kind), id=attr(item, "id"), status=attr(item, "status"))]


def input_content(
    kwargs: Mapping[str, Any], include_bytes: bool
) -> tuple[list[Message], list[Part], list[dict[str, Any]]]:
    """``(input messages, system instructions, tool definitions)`` in the parts schema."""
    system: list[Part] = []
    instructions = attr(kwargs, "instructions")
    if isinstance(instructions, str):
        system.append(text_part(instructions))
    messages: list[Message] = []
    raw = attr(kwargs, "input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or ())
    for item in items:
        role, parts = _item_parts(item, include_bytes)
        if role in _SYSTEM_ROLES:
            system.extend(parts)
        elif (
            messages
            and messages[-1]["role"] == role
            and attr(item, "type") not in (None, "message")
        ):
            messages[-1]["parts"].extend(parts)  # consecutive tool calls / results: one turn
        else:
            messages.append(message(role, parts))
    tools = [_tool_definition(t) for t in attr(kwargs, "tools") or ()]
    return messages, system, tools


def _tool_definition(tool: Any) -> dict[str, Any]:
    kind = attr(tool, "type")
    if kind == "function":
        return tool_definition(
            attr(tool, "name"), attr(tool, "description"), attr(tool, "parameters")
        )
    definition: dict[str, Any] = {"type": kind}
    name = attr(tool, "name") or attr(tool, "server_label")
    if name is not None:
        definition["name"] = name
    return definition


# --- response -------------------------------------------------------------------------------
def responses_usage(usage: Any) -> Usage | None:
    """OpenAI's ``input_tokens`` already counts cached tokens: keep it as input_tokens."""
    if usage is None:
        return None
    input_details = attr(usage, "input_tokens_details")
    output_details = attr(usage, "output_tokens_details")
    return Usage(
        input_tokens=as_int(attr(usage, "input_tokens")),
        output_tokens=as_int(attr(usage, "output_tokens")),
        cache_read_input_tokens=as_int(attr(input_details, "cached_tokens")),
        cache_creation_input_tokens=as_int(attr(input_details, "cache_write_tokens")),
        reasoning_output_tokens=as_int(attr(output_details, "reasoning_tokens")),
        input_includes_cache=True,
    )


def _finish_reason(status: str | None, incomplete: Any, has_tool_call: bool) -> str:
    if status == "incomplete":
        return _INCOMPLETE_REASONS.get(str(attr(incomplete, "reason")), "incomplete")
    if status == "failed":
        return "error"
    if status in {"in_progress", "queued"}:
        return ""
    return "tool_calls" if has_tool_call else "stop"


def _output(items: list[Any], finish: str) -> list[Message]:
    parts: list[Part] = []
    for item in items:
        parts.extend(_item_parts(item, include_bytes=False)[1])
    return [output_message("assistant", parts, finish)]


def responses_response(result: Any, capture: bool) -> Response:
    """The span's response side from a ``Response`` object."""
    items = list(attr(result, "output") or ())
    has_call = any(attr(i, "type") in {"function_call", "custom_tool_call"} for i in items)
    finish = _finish_reason(
        as_str(attr(result, "status")), attr(result, "incomplete_details"), has_call
    )
    attributes: dict[str, Any] = {}
    tier = as_str(attr(result, "service_tier"))
    if tier is not None:
        attributes["openai.response.service_tier"] = tier
    return Response(
        id=as_str(attr(result, "id")),
        model=as_str(attr(result, "model")),
        finish_reasons=[finish] if finish else [],
        usage=responses_usage(attr(result, "usage")),
        output_messages=_output(items, finish) if capture else None,
        attributes=attributes,
    )


def failure(result: Any) -> tuple[str, str] | None:
    """``(error.type, message)`` when a returned response has status ``failed``."""
    if attr(result, "status") != "failed":
        return None
    error = attr(result, "error")
    return str(attr(error, "code") or "failed"), str(attr(error, "message") or "response failed")


def mark_failed(inv: Invocation, error_type: str, description: str) -> None:
    """Status ERROR without an exception: the API reported the failure in-band."""
    inv.span.set_attribute(ga.ERROR_TYPE, error_type)
    inv.span.set_status(Status(StatusCode.ERROR, description[:1024]))


class ResponsesAccumulator:
    """Folds typed ``response.*`` stream events into the final response (or a partial one)."""

    __slots__ = ("_capture", "_inv", "error", "final", "id", "items", "model", "pieces")

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        self._capture = inv.captures_content
        self.final: Any = None
        self.id: str | None = None
        self.model: str | None = None
        self.items: dict[int, Any] = {}  # output_index -> finished or started item
        self.pieces: dict[int, list[str]] = {}  # output_index -> text / argument deltas
        self.error: tuple[str, str] | None = None

    def add(self, event: Any) -> str | None:
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            delta = getattr(event, "delta", None)
            if self._capture and isinstance(delta, str):
                self.pieces.setdefault(as_int(getattr(event, "output_index", 0)) or 0, []).append(
                    delta
                )
            return delta if isinstance(delta, str) else None
        if kind == "response.function_call_arguments.delta":
            delta = getattr(event, "delta", None)
            if self._capture and isinstance(delta, str):
                self.pieces.setdefault(as_int(getattr(event, "output_index", 0)) or 0, []).append(
                    delta
                )
            return None
        if kind in {"response.output_item.added", "response.output_item.done"}:
            self.items[as_int(getattr(event, "output_index", 0)) or 0] = getattr(
                event, "item", None
            )
        elif kind in {"response.created", "response.in_progress"}:
            response = getattr(event, "response", None)
            self.id = as_str(attr(response, "id"))
            self.model = as_str(attr(response, "model"))
        elif kind in {"response.completed", "response.incomplete", "response.failed"}:
            self.final = getattr(event, "response", None)
            self.error = failure(self.final)
        elif kind == "error":
            self.error = (
                str(getattr(event, "code", None) or "error"),
                str(getattr(event, "message", None) or ""),
            )
        return None

    def response(self) -> Response:
        if self.error is not None:
            mark_failed(self._inv, *self.error)
        if self.final is not None:
            return responses_response(self.final, self._capture)
        outputs = None
        if self._capture:
            items = [self._partial_item(i) for i in sorted(self.items)]
            outputs = _output(items, "")
        return Response(id=self.id, model=self.model, output_messages=outputs)

    def _partial_item(self, index: int) -> Any:
        """An output item as far as it streamed (the stream stopped before it was done)."""
        item = self.items[index]
        if attr(item, "status") == "completed" or index not in self.pieces:
            return item
        joined = "".join(self.pieces[index])
        if attr(item, "type") == "function_call":
            return {
                "type": "function_call",
                "call_id": attr(item, "call_id"),
                "name": attr(item, "name"),
                "arguments": joined,
            }
        return {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": joined}],
        }
