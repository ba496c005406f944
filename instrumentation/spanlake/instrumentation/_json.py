"""Safe, fast JSON for recorded values: never raises, never hangs, respects a size cap.

Used on the traced application's thread, so the common case is one ``orjson.dumps`` call;
the slow paths (cycles, huge ints, exotic objects, over-cap values) only run when needed.
Over-cap values are shrunk *structurally* (long strings cut, long lists shortened) so the
result is still valid JSON of the same shape, never a cut-in-half document.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import orjson

#: Default cap for one recorded value (inputs, outputs, message content).
DEFAULT_MAX_BYTES = 256 * 1024
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
#: Only when a dict has non-str keys: the option roughly doubles orjson's cost.
_OPTIONS_NON_STR_KEYS = _OPTIONS | orjson.OPT_NON_STR_KEYS
_MAX_DEPTH = 64
_TRUNCATION_MARK = "...[truncated]"
_MAX_REPR = 500


def _default(obj: Any) -> Any:
    """orjson's fallback for types it does not know."""
    model_dump = getattr(obj, "model_dump", None)  # pydantic v2
    if callable(model_dump) and not isinstance(obj, type):
        return model_dump(mode="json")
    dict_method = getattr(obj, "dict", None)  # pydantic v1
    if callable(dict_method) and hasattr(obj, "__fields__") and not isinstance(obj, type):
        return dict_method()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _bytes_repr(bytes(obj))
    if isinstance(obj, enum.Enum):
        return obj.value
    tolist = getattr(obj, "tolist", None)  # numpy scalars/arrays with odd dtypes
    if callable(tolist):
        return tolist()
    if isinstance(obj, Mapping):
        return dict(obj)
    # Never walk an arbitrary object's __dict__: SDK clients, sessions and connections keep
    # API keys and auth headers there. Their (capped) repr is what MLflow records too.
    return _capped_repr(obj)


def _capped_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__qualname__}>"
    return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + _TRUNCATION_MARK


def _bytes_repr(data: bytes) -> str:
    if len(data) <= 1024:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(data).decode("ascii")
    return f"<{len(data)} bytes>"


def _sanitize(obj: Any, seen: set[int], depth: int) -> Any:
    """Plain JSON-able copy of ``obj``: cycles and depth cut, unknown types converted."""
    if isinstance(obj, str):
        # A lone surrogate makes orjson reject the whole value; keep the rest of it.
        return obj.encode("utf-8", "replace").decode("utf-8")
    if obj is None or isinstance(obj, (bool, float)):
        return obj
    if isinstance(obj, int):
        return obj if -(2**63) <= obj < 2**64 else str(obj)
    if depth > _MAX_DEPTH:
        return "<max depth>"
    oid = id(obj)
    if oid in seen:
        return "<cycle>"
    seen.add(oid)
    try:
        if isinstance(obj, Mapping):
            return {str(k): _sanitize(v, seen, depth + 1) for k, v in list(obj.items())}
        if isinstance(obj, (list, tuple, set, frozenset)):
            return [_sanitize(v, seen, depth + 1) for v in list(obj)]
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {
                f.name: _sanitize(getattr(obj, f.name, None), seen, depth + 1)
                for f in dataclasses.fields(obj)
            }
        try:
            converted = _default(obj)
        except Exception:
            converted = f"<unserializable {type(obj).__name__}>"
        if converted is obj or isinstance(converted, str):
            return converted
        return _sanitize(converted, seen, depth + 1)
    finally:
        seen.discard(oid)


def _encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except Exception:
        pass
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS_NON_STR_KEYS)
    except Exception:
        try:
            return orjson.dumps(_sanitize(value, set(), 0), option=_OPTIONS_NON_STR_KEYS)
        except Exception:
            return orjson.dumps(f"<unserializable {type(value).__name__}>")


def _shrink(obj: Any, max_str: int, max_items: int) -> Any:
    if isinstance(obj, str):
        return obj if len(obj) <= max_str else obj[:max_str] + _TRUNCATION_MARK
    if isinstance(obj, dict):
        items = list(obj.items())
        out = {k: _shrink(v, max_str, max_items) for k, v in items[:max_items]}
        if len(items) > max_items:
            out["..."] = f"{len(items) - max_items} more keys"
        return out
    if isinstance(obj, list):
        out_list = [_shrink(v, max_str, max_items) for v in obj[:max_items]]
        if len(obj) > max_items:
            out_list.append(f"... {len(obj) - max_items} more items")
        return out_list
    return obj


def fit(encoded: bytes, max_bytes: int) -> bytes:
    """``encoded`` JSON shrunk to at most ``max_bytes`` while staying valid JSON.

    The whole value gets the budget: strings are cut to the longest common length (found by
    bisection) at which the value still fits, so one 400 KB prompt under a 128 KiB cap keeps
    ~128 KiB of its text rather than a fixed fraction; containers are shortened only when
    even short strings do not fit.
    """
    if len(encoded) <= max_bytes:
        return encoded
    parsed = orjson.loads(encoded)

    def attempt(max_str: int, max_items: int) -> bytes | None:
        data = orjson.dumps(_shrink(parsed, max_str, max_items), option=_OPTIONS_NON_STR_KEYS)
        return data if len(data) <= max_bytes else None

    max_items = max(max_bytes // 16, 1)
    best = attempt(16, max_items)
    while best is None and max_items > 1:
        max_items = max(max_items // 2, 1)
        best = attempt(16, max_items)
    if best is None:
        preview = encoded[: max(max_bytes // 2, 0)].decode("utf-8", errors="ignore")
        return orjson.dumps(preview[: max(max_bytes // 2 - 32, 0)] + _TRUNCATION_MARK)
    low, high = 16, max_bytes  # ``low`` fits; find the longest string length that does
    while high - low > max(low // 64, 8):
        middle = (low + high) // 2
        candidate = attempt(middle, max_items)
        if candidate is None:
            high = middle
        else:
            low, best = middle, candidate
    return best


def dumps(value: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, int | None]:
    """JSON text of ``value`` capped at ``max_bytes``.

    Returns ``(json_text, original_size)``; ``original_size`` is None when nothing was cut,
    else the encoded size before truncation (for the ``spanlake.truncated`` marker).
    """
    encoded = _encode(value)
    if len(encoded) <= max_bytes:
        return encoded.decode("utf-8"), None
    return fit(encoded, max_bytes).decode("utf-8"), len(encoded)
