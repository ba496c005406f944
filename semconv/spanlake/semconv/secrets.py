"""The one rule for secrets: which keys hold them, and redaction of any value by key.

Shared by the instrumentation (which never emits a secret it can see) and both front doors
of the exporter (in-process exporter and OTLP receiver, through ``mapping.map_span``), so a
key is a secret in the same way everywhere.

A key is a secret when it contains ``authorization``, ``api_key`` (``api-key``, ``apikey``,
``api.key``), ``secret``, ``password``/``passwd``/``passphrase``, ``cookie``, ``bearer``,
``credential``, ``private_key`` or ``access_key``, or when its last dotted segment ends in
``token`` (``access_token``, ``auth.bearer_token``, ``refreshToken``, a bare ``token``) or is
``auth``. Token *counts* never match: ``gen_ai.usage.input_tokens``, ``max_tokens``,
``llm.token_count.prompt`` (plural or followed by more words), nor tokenizer vocabulary
names (``eos_token``, ``pad_token``...).

Redaction is by key at every level: a secret key's value (whatever its type) becomes
``[REDACTED]``, and JSON values (dicts, lists, and strings holding JSON text) are walked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import orjson

REDACTED: Final = "[REDACTED]"

_SECRET_ANYWHERE = re.compile(
    r"authorization|api[_.-]?key|secret|passw(?:or)?d|passphrase|cookie|bearer|credential"
    r"|private[_.-]?key|access[_.-]?key",
    re.IGNORECASE,
)
#: Tokenizer vocabulary names: never secrets, common in LLM code.
_VOCAB_TOKENS: Final = frozenset(
    f"{p}{sep}token" for p in ("eos", "bos", "pad", "unk", "sep", "cls", "mask") for sep in "_-"
) | frozenset(f"{p}token" for p in ("eos", "bos", "pad", "unk", "sep", "cls", "mask"))
_MAX_DEPTH: Final = 64


@lru_cache(maxsize=8192)
def is_secret_key(key: str) -> bool:
    """True when values under ``key`` are secrets (cached: spans repeat the same keys)."""
    if _SECRET_ANYWHERE.search(key):
        return True
    last = key.rsplit(".", 1)[-1].lower()
    if last.endswith("token"):
        return last not in _VOCAB_TOKENS
    return last in ("auth", "x-auth", "http_auth")


_JSON_START: Final = frozenset("{[ \t\r\n")
_LEAVES: Final = (int, float, bool, type(None))


def redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` with every secret key's value replaced, at every level. Returns ``value``
    itself (not a copy) when nothing was secret, so callers can test ``is``."""
    kind = type(value)
    if kind is str:
        # Only text that may be JSON is looked into (tool-call arguments, bodies).
        return redact_json_text(value, depth) if value and value[0] in _JSON_START else value
    if kind in _LEAVES or depth > _MAX_DEPTH:
        return value
    if kind is dict or isinstance(value, Mapping):
        out: dict[Any, Any] | None = None
        for key, item in value.items():
            if type(key) is str and is_secret_key(key):
                new: Any = REDACTED
            elif type(item) in _LEAVES:
                continue
            else:
                new = redact_value(item, depth + 1)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out
    if kind is list or kind is tuple:
        items: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in _LEAVES:
                continue
            new = redact_value(item, depth + 1)
            if new is not item:
                if items is None:
                    items = list(value)
                items[index] = new
        return value if items is None else items
    if isinstance(value, str):
        return redact_json_text(value, depth)
    return value


def redact_json_text(text: str, depth: int = 0) -> str:
    """JSON text (an object or array) with its secret keys redacted; any other text,
    and JSON without a secret key, is returned as it is.

    Parsed rather than scanned for key-like text: orjson decodes 10 KB in ~5 µs, less than
    one case-insensitive search of it, and walking the result visits keys, not bytes."""
    head = text[:64].lstrip()  # not text.lstrip(): that copies a large value
    if not head or head[0] not in "{[":
        return text
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    redacted = redact_value(parsed, depth + 1)
    if redacted is parsed:
        return text
    return orjson.dumps(redacted).decode()


def redact_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """An attribute set (span, event, resource) with secret keys, and secrets inside JSON
    values, redacted. Returns ``attributes`` itself when nothing was secret."""
    out: dict[str, Any] | None = None
    for key, value in attributes.items():
        new = REDACTED if is_secret_key(key) else redact_value(value)
        if new is not value:
            if out is None:
                out = dict(attributes)
            out[key] = new
    return attributes if out is None else out
