"""Request-path capture of inputs/outputs as capped JSON text, in time bounded by the cap.

Why not call ``_json.dumps(value)`` on the whole value: it encodes everything and, when the
result is over the cap, parses it back to shrink it, so a 10 MB argument costs tens of
milliseconds on the application's thread. Here containers are encoded in growing slices and
encoding stops once the cap is filled, so a 10 MB argument costs about what the cap does.
Slices and leaves still go through ``_json.dumps``: its handling of dataclasses, pydantic,
numpy, bytes, sets and cycles applies unchanged.

Why eager rather than lazy (serialising at export time, off-thread): a traced agent very
often mutates its arguments after the call (``messages.append(reply)``), and a lazy
reference would then record the later state. Encoding at once, bounded by the cap, records
what the function actually received and keeps the caller's cost flat.

The shape of a cut value follows ``_json``: long strings end with ``...[truncated]``, long
lists end with ``"... N more items"``, long objects get a ``"...": "N more keys"`` entry.
For a cut value the original size is an estimate (extrapolated from the encoded part),
since measuring it exactly would mean encoding all of it.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from itertools import islice
from typing import Any

import orjson

from spanlake.instrumentation import _json

#: Default cap for one recorded value, shared with the provider instrumentations.
DEFAULT_MAX_BYTES = _json.DEFAULT_MAX_BYTES

_NO_CAP = sys.maxsize
_MARK = "...[truncated]"
_MARKER_ROOM = 40  # room kept for a '"... N more items"' marker at each level
_FIRST_STEP = 8
_FEW = 16  # up to this many items, a container's items are sized one by one
_PROBE = 4  # items of a long container encoded alone before slicing
_MAX_DEPTH = 32
_SMALL_NODES = 16  # containers a value may have and still count as small
_END = object()
_SCALARS = (int, float, bool, type(None))


def capture(value: Any, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, int | None]:
    """JSON text of ``value`` of at most ``max_bytes`` UTF-8 bytes; never raises.

    Returns ``(json_text, original_size)``; ``original_size`` is None when nothing was cut,
    else the (estimated) size of the full encoding, for the ``spanlake.truncated`` marker.
    """
    kind = type(value)
    if kind is bool or kind is int or kind is float or value is None:
        try:
            return orjson.dumps(value).decode(), None
        except Exception:
            return _json.dumps(value, max_bytes)
    try:
        text, full, cut = _encode(value, max_bytes, 0)
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if size > max_bytes:
            # Non-ASCII text measured in characters above; rare, so let _json shrink it.
            text = _json.fit(text.encode("utf-8"), max_bytes).decode("utf-8")
            cut, full = True, max(full, size)
        return text, (max(full, size + 1) if cut else None)
    except Exception:  # a telemetry bug must not reach the application
        return _json.dumps(value, max_bytes)


def _plain(value: Any) -> str:
    """Uncapped JSON text of ``value``: orjson's fast native path first (its
    ``OPT_NON_STR_KEYS`` alone doubles the cost), ``_json`` for anything it refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode("utf-8")
    except Exception:
        return _json.dumps(value, _NO_CAP)[0]


def _is_small(value: Any, budget: int) -> bool:
    """True when ``value`` is certainly far below ``budget``: a short, bounded look that
    accepts scalars, short strings and small nested containers (one chat message, say)."""
    return _small_size(value, budget) >= 0


def _small_size(value: Any, budget: int) -> int:
    """Rough encoded size of a value that :func:`_is_small` accepts, else -1."""
    allowed = budget // 8
    left = _small(value, allowed, [_SMALL_NODES])
    return -1 if left < 0 else allowed - left


def _small(value: Any, chars: int, nodes: list[int]) -> int:
    """``chars`` left after ``value`` (negative: not small); ``nodes`` is the node budget."""
    kind = type(value)
    if kind is str:
        return chars - len(value)
    if kind in _SCALARS:
        return chars - 8
    nodes[0] -= 1
    if nodes[0] < 0:
        return -1
    if kind is dict:
        if len(value) > _FIRST_STEP:
            return -1
        for key, item in value.items():
            chars = _small(item, chars - 8 - (len(key) if type(key) is str else 8), nodes)
            if chars < 0:
                return -1
        return chars
    if kind is list or kind is tuple:
        if len(value) > _FIRST_STEP:
            return -1
        for item in value:
            chars = _small(item, chars - 2, nodes)
            if chars < 0:
                return -1
        return chars
    return -1


def _encode(value: Any, budget: int, depth: int) -> tuple[str, int, bool]:
    """``(json, estimated_full_size, was_cut)`` with ``json`` about ``budget`` chars at most."""
    if _is_small(value, budget):
        text = _plain(value)
        return text, len(text), False
    if depth >= _MAX_DEPTH:
        return _via_json(value, budget)
    kind = type(value)
    if isinstance(value, str):
        return _encode_str(value, budget)
    if kind is dict:
        if len(value) <= _FEW:
            return _encode_few(list(value.items()), budget, depth, True)
        return _encode_many(iter(value.items()), len(value), budget, depth, True)
    if kind is list or kind is tuple:
        if len(value) <= _FEW:
            return _encode_few(list(enumerate(value)), budget, depth, False)
        return _encode_many(iter(value), len(value), budget, depth, False)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        return _encode(fields, budget, depth + 1)
    if isinstance(value, (set, frozenset)) and len(value) > _FEW:
        return _encode_many(iter(value), len(value), budget, depth, False)
    nbytes = getattr(value, "nbytes", None)  # numpy arrays: keep the leading rows
    if isinstance(nbytes, int) and nbytes > budget // 4 and getattr(value, "ndim", 0) >= 1:
        rows = len(value)
        keep = max(1, rows * budget // (nbytes * 4))
        text, full, _ = _via_json(value[:keep], budget)
        return text, full * rows // keep, keep < rows or full > budget
    return _via_json(value, budget)


def _via_json(value: Any, budget: int) -> tuple[str, int, bool]:
    text, original = _json.dumps(value, budget)
    return text, original or len(text), original is not None


def _encode_str(value: str, budget: int) -> tuple[str, int, bool]:
    if len(value) + 2 <= budget:
        text = _plain(value)
        if len(text) <= budget:
            return text, len(text), False
    keep = max(budget - 2 - len(_MARK), 0)
    while True:
        text = _plain(value[:keep] + _MARK)
        if len(text) <= budget or keep == 0:
            return text, len(value) + 2, True
        keep //= 2  # escapes made it longer than its character count


def _entry(key: Any, text: str, is_dict: bool) -> str:
    if not is_dict:
        return text
    return _plain(key if isinstance(key, str) else str(key)) + ":" + text


def _encode_few(
    entries: list[tuple[Any, Any]], budget: int, depth: int, is_dict: bool
) -> tuple[str, int, bool]:
    """A short container, whose items may differ wildly in size (arguments, one message):
    runs of small items are encoded in one call, every other item on its own budget."""
    parts: list[str] = []
    used, full_total, done, cut = 2, 2, 0, False
    run: list[tuple[Any, Any]] = []

    def flush() -> None:
        nonlocal used, full_total
        if run:
            piece = dict(run) if is_dict else [v for _, v in run]
            inner = _plain(piece)[1:-1]
            parts.append(inner)
            used += len(inner) + 1
            full_total += len(inner) + 1
            run.clear()

    run_chars = 0  # upper estimate of the run not yet encoded
    last = len(entries) - 1
    for index, (key, item) in enumerate(entries):
        # Room for a "more items" marker is only needed while items may follow; not
        # reserving it for the last one also keeps deep nesting from compounding it.
        reserve = _MARKER_ROOM if index < last else 0
        room = budget - used - 1 - reserve - run_chars
        if room <= 0:
            cut = True
            break
        size = _small_size(item, room)
        if size >= 0:
            run.append((key, item))
            run_chars += size + 1
            if is_dict:
                run_chars += len(key) + 3 if type(key) is str else 24
            done += 1
            continue
        flush()
        run_chars = 0
        room = budget - used - 1 - reserve
        key_room = len(_entry(key, "", is_dict))
        text, full, item_cut = _encode(item, room - key_room, depth + 1)
        entry = _entry(key, text, is_dict)
        if len(entry) > room:
            cut = True
            break
        parts.append(entry)
        used += len(entry) + 1
        full_total += full + key_room + 1
        done += 1
        cut = cut or item_cut
    flush()
    rest = len(entries) - done
    if rest:
        parts.append(_marker(rest, is_dict))
        full_total += int(full_total / max(done, 1) * rest)
    return _wrap(parts, is_dict), full_total, cut or bool(rest)


def _encode_many(
    items: Iterator[Any], total: int, budget: int, depth: int, is_dict: bool
) -> tuple[str, int, bool]:
    """A long container, assumed roughly uniform: a first slice learns the item size, the
    rest goes in slices sized to fill half the remaining room; a slice over budget is
    retried smaller, and an item far over budget is encoded alone so it gets cut."""
    parts: list[str] = []
    used, done, extra = 2, 0, 0
    pending: list[Any] = []  # pulled from ``items``, not yet written
    step = _PROBE
    average = 0.0
    while done < total:
        room = budget - used - 1 - _MARKER_ROOM
        if room <= 0:
            break
        if len(pending) < step:
            pending.extend(islice(items, step - len(pending)))
        if not pending:
            break
        if step == 1:
            item = pending[0]
            if is_dict:
                key_text = _entry(item[0], "", True)
                text, full, cut = _encode(item[1], room - len(key_text), depth + 1)
                text = key_text + text
            else:
                text, full, cut = _encode(item, room, depth + 1)
            if len(text) > room:
                break
            del pending[0]
            parts.append(text)
            used += len(text) + 1
            done += 1
            if cut:
                extra = max(full - len(text), 0)
                break
        else:
            piece = pending[:step]
            inner = _plain(dict(piece) if is_dict else piece)[1:-1]
            if len(inner) > room:
                average = max(average, len(inner) / len(piece))
                step = 1 if len(inner) > 4 * room else max(1, int(room // (2 * average)))
                continue
            del pending[: len(piece)]
            if inner:
                parts.append(inner)
                used += len(inner) + 1
            done += len(piece)
        average = max(average, used / done)
        step = max(1, int((budget - used - _MARKER_ROOM) // (2 * average)))
    rest = total - done
    if rest:
        parts.append(_marker(rest, is_dict))
    full_total = used + extra + int((used + extra) / max(done, 1) * rest)
    return _wrap(parts, is_dict), full_total, bool(rest) or extra > 0


def _marker(rest: int, is_dict: bool) -> str:
    if is_dict:
        return '"...":' + _plain(f"{rest} more keys")
    return _plain(f"... {rest} more items")


def _wrap(parts: list[str], is_dict: bool) -> str:
    body = ",".join(p for p in parts if p)
    return "{" + body + "}" if is_dict else "[" + body + "]"
