"""Value transforms the dialect tables name: each takes a raw attribute value and returns
the normalized value, or None when the value is unusable (the rule then does nothing).

They never raise: attribute values come from any process on the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from spanlake.semconv.gen_ai import Provider

Transform = Callable[[Any], Any]


def identity(value: Any) -> Any:
    return value


def as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def as_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; None for bools and junk."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip().strip('"'))
        except ValueError:
            parsed = as_float(value)
            return int(parsed) if parsed is not None and parsed.is_integer() else None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = float(value.strip().strip('"'))
        except ValueError:
            return None
        return parsed if parsed == parsed and parsed not in (float("inf"), float("-inf")) else None
    return None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
    return None


def as_str_list(value: Any) -> list[str] | None:
    """A list of strings from a sequence, a JSON array text or a single string."""
    if isinstance(value, str):
        parsed = loads(value) if value[:1] == "[" else None
        if isinstance(parsed, list):
            value = parsed
        else:
            return [value] if value else None
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value if v is not None and not isinstance(v, (dict, list))]
        return items or None
    return None


_JSON_STARTS = frozenset('{["-0123456789tfn')


def loads(text: str) -> Any:
    """Parsed JSON, or None when ``text`` is not JSON."""
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError):
        return None


def maybe_json(value: Any) -> Any:
    """``value`` parsed when it is a JSON string, else ``value`` unchanged."""
    if isinstance(value, str) and value[:1] in _JSON_STARTS:
        parsed = loads(value)
        if parsed is not None or value.strip() == "null":
            return parsed
    return value


def dumps(value: Any) -> str | None:
    try:
        return orjson.dumps(value, default=_fallback, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return None


def _fallback(obj: Any) -> Any:
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", errors="replace")
    return repr(obj)


def json_text(value: Any) -> str | None:
    """JSON text for an inputs/outputs slot: JSON strings are kept verbatim (encoded once,
    by the instrumentation); plain text becomes a JSON string; other values are encoded."""
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in _JSON_STARTS and loads(value) is not None:
            return value
        if stripped == "null":
            return "null"
        return dumps(value)
    return dumps(value)


def plain_text_json(value: Any) -> str | None:
    """JSON text for a value whose producer said it is ``text/plain``."""
    if isinstance(value, str):
        return dumps(value)
    return json_text(value)


def json_object(value: Any) -> dict[str, Any] | None:
    """A dict from a JSON object text or a mapping."""
    if isinstance(value, str):
        value = loads(value) if value[:1] == "{" else None
    if isinstance(value, Mapping):
        return dict(value)
    return None


def json_decoded(value: Any) -> Any:
    """MLflow JSON-encodes every attribute value (``'"gpt-4o"'``, ``'0.2'``): decode it."""
    if isinstance(value, str):
        parsed = maybe_json(value)
        return parsed if parsed is not None else None
    return value


def enum_map(table: Mapping[str, str], *, lower: bool = True) -> Transform:
    """A transform looking the (lower-cased) string value up in ``table``."""

    def transform(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        return table.get(value.strip().lower() if lower else value)

    return transform


def then(first: Transform, second: Transform) -> Transform:
    """``second(first(value))``, stopping at None."""

    def transform(value: Any) -> Any:
        out = first(value)
        return None if out is None else second(out)

    return transform


# Provider spellings seen in the wild (OpenInference ``llm.provider``/``llm.system``,
# OpenLLMetry's capitalised ``gen_ai.system``, old OTel ``gen_ai.system`` values).
_PROVIDERS: dict[str, str] = {
    "openai": Provider.OPENAI,
    "anthropic": Provider.ANTHROPIC,
    "aws": Provider.AWS_BEDROCK,
    "bedrock": Provider.AWS_BEDROCK,
    "aws.bedrock": Provider.AWS_BEDROCK,
    "aws_bedrock": Provider.AWS_BEDROCK,
    "amazon bedrock": Provider.AWS_BEDROCK,
    "azure": Provider.AZURE_AI_OPENAI,
    "azure openai": Provider.AZURE_AI_OPENAI,
    "az.ai.openai": Provider.AZURE_AI_OPENAI,
    "azure.ai.openai": Provider.AZURE_AI_OPENAI,
    "azure.ai.inference": "azure.ai.inference",
    "az.ai.inference": "azure.ai.inference",
    "vertexai": Provider.GCP_VERTEX_AI,
    "vertex_ai": Provider.GCP_VERTEX_AI,
    "gcp.vertex_ai": Provider.GCP_VERTEX_AI,
    "google": Provider.GCP_GEMINI,
    "gemini": Provider.GCP_GEMINI,
    "gcp.gemini": Provider.GCP_GEMINI,
    "gcp.gen_ai": "gcp.gen_ai",
    "cohere": Provider.COHERE,
    "mistralai": Provider.MISTRAL_AI,
    "mistral": Provider.MISTRAL_AI,
    "mistral_ai": Provider.MISTRAL_AI,
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "x_ai": "x_ai",
    "ibm.watsonx.ai": "ibm.watsonx.ai",
    "watsonx": "ibm.watsonx.ai",
    "ollama": "ollama",
}


def provider(value: Any) -> str | None:
    """``gen_ai.provider.name`` for any spelling; unknown names pass through lower-cased."""
    if not isinstance(value, str) or not value.strip():
        return None
    key = value.strip().lower()
    return _PROVIDERS.get(key, key)
