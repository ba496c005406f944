"""Small readers shared by the chat, responses and embeddings translators.

The SDK hands us a mix of plain dicts (request params), pydantic models (responses) and
its ``omit`` / ``NOT_GIVEN`` sentinels; these helpers read all of them the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from spanlake.semconv.gen_ai import Provider

from .._genai._parts import Part, blob_part, uri_part

_SENTINELS = frozenset({"Omit", "NotGiven"})
_MISSING = object()
#: Value types that are never the SDK's sentinels: no class-name check for them.
_PLAIN = frozenset({str, int, float, bool, list, dict, tuple})


def given(value: Any) -> bool:
    """False for None and the SDK's "argument not given" sentinels."""
    return value is not None and type(value).__name__ not in _SENTINELS


def attr(obj: Any, name: str) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise; None when absent or not given."""
    if type(obj) is dict:  # request params: plain dicts
        value = obj.get(name)
        if value is None or type(value) in _PLAIN:
            return value
    elif obj is None:
        return None
    else:  # SDK models first; the slow ABC check only when the attribute is missing
        value = getattr(obj, name, _MISSING)
        if value is _MISSING:
            value = obj.get(name) if isinstance(obj, Mapping) else None
    if value is None or type(value).__name__ in _SENTINELS:
        return None
    return value


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_arguments(arguments: Any) -> Any:
    """Tool-call arguments as JSON when they parse (the parts schema prefers objects)."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def server_and_provider(resource: Any) -> tuple[str | None, int | None, str]:
    """``server.address``, ``server.port`` and ``gen_ai.provider.name`` of a resource's client."""
    client = getattr(resource, "_client", None)
    provider = Provider.OPENAI
    if client is not None and type(client).__name__ in {"AzureOpenAI", "AsyncAzureOpenAI"}:
        provider = Provider.AZURE_AI_OPENAI
    base_url = getattr(client, "base_url", None)
    if base_url is None:
        return None, None, provider
    host = getattr(base_url, "host", None)  # httpx URL: already parsed, no work per call
    if isinstance(host, str):
        port = getattr(base_url, "port", None)
        if not isinstance(port, int):
            port = 443 if getattr(base_url, "scheme", "") == "https" else 80
        return host or None, port, provider
    try:
        parts = urlsplit(str(base_url))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname, port, provider
    except ValueError:
        return None, None, provider


def image_url_part(url: str, *, include_bytes: bool) -> Part:
    """An image given by URL: a ``data:`` URL becomes a blob (bytes only if asked)."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = header[5:].split(";", 1)[0] or None
        return blob_part("image", mime, data, include_bytes=include_bytes)
    return uri_part("image", url)


def output_type(response_format: Any) -> str | None:
    """``gen_ai.output.type`` from chat ``response_format`` / responses ``text.format``."""
    if isinstance(response_format, type):  # a pydantic model given to parse()
        return "json"
    kind = attr(response_format, "type")
    if kind == "json_object" or kind == "json_schema":
        return "json"
    if kind == "text":
        return "text"
    return None
