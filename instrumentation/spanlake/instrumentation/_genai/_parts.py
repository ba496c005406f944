"""Builders for the OTel GenAI message-parts schema (``gen_ai.input.messages`` & co).

Shapes (semconv v1.37+): a message is ``{"role", "parts": [...]}`` (output messages add
``"finish_reason"``); a part is one of ``text`` ``{content}``, ``reasoning`` ``{content}``,
``tool_call`` ``{id, name, arguments}``, ``tool_call_response`` ``{id, response}``,
``blob`` ``{modality, mime_type, content?}``, ``uri`` ``{modality, mime_type?, uri}``,
``file`` ``{modality?, file_id}``; system instructions are a list of parts; a tool
definition is ``{"type": "function", "name", "description"?, "parameters"?}``.
Providers translate their own shapes with these so every provider emits the same JSON.
"""

from __future__ import annotations

import base64
from typing import Any

Part = dict[str, Any]
Message = dict[str, Any]


def text_part(content: str) -> Part:
    return {"type": "text", "content": content}


def reasoning_part(content: str) -> Part:
    return {"type": "reasoning", "content": content}


def tool_call_part(call_id: str | None, name: str | None, arguments: Any) -> Part:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def tool_call_response_part(call_id: str | None, response: Any) -> Part:
    return {"type": "tool_call_response", "id": call_id, "response": response}


def blob_part(
    modality: str, mime_type: str | None, data: str | bytes | None, *, include_bytes: bool
) -> Part:
    """An inline binary part; the bytes (base64) only when ``include_bytes``, else their size."""
    part: Part = {"type": "blob", "modality": modality, "mime_type": mime_type}
    if data is None:
        return part
    if include_bytes:
        part["content"] = data if isinstance(data, str) else base64.b64encode(data).decode("ascii")
    else:
        # Base64 text of n chars decodes to ~3n/4 bytes; good enough to say how big it was.
        part["size_bytes"] = len(data) * 3 // 4 if isinstance(data, str) else len(data)
    return part


def uri_part(modality: str, uri: str, mime_type: str | None = None) -> Part:
    part: Part = {"type": "uri", "modality": modality, "uri": uri}
    if mime_type:
        part["mime_type"] = mime_type
    return part


def file_part(file_id: str, modality: str | None = None) -> Part:
    part: Part = {"type": "file", "file_id": file_id}
    if modality:
        part["modality"] = modality
    return part


def generic_part(kind: str, **fields: Any) -> Part:
    """A provider-specific part the schema has no name for (kept, typed by ``kind``)."""
    return {"type": kind, **fields}


def message(role: str, parts: list[Part], *, name: str | None = None) -> Message:
    msg: Message = {"role": role, "parts": parts}
    if name:
        msg["name"] = name
    return msg


def output_message(role: str, parts: list[Part], finish_reason: str | None) -> Message:
    """An output message; ``finish_reason`` only when one was received (never ``""``: a
    stream closed early has none, and ``spanlake.stream.end`` says how it ended)."""
    msg: Message = {"role": role, "parts": parts}
    if finish_reason:
        msg["finish_reason"] = finish_reason
    return msg


def tool_definition(
    name: str | None, description: str | None = None, parameters: Any = None
) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "function", "name": name}
    if description is not None:
        tool["description"] = description
    if parameters is not None:
        tool["parameters"] = parameters
    return tool
