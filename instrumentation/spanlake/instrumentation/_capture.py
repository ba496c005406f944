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

Encoding works on UTF-8 bytes (so the cap is exact) appended as fragments to one list and
joined once: nested levels add no copies of the encoded text.
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
_GUESS_NODES = 48  # containers looked at to guess a value's size
_HUGE = float(sys.maxsize)
_Out = list[bytes | memoryview]  # fragments of the JSON text, joined once
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
        if _guess_size(value, [_GUESS_NODES]) * 4 < max_bytes:
            # Most values are far below the cap: one orjson call, no slicing.
            data = _plain(value)
            if len(data) <= max_bytes:
                return data.decode("utf-8"), None
        out: _Out = []
        _, full, cut = _encode(value, max_bytes, 0, out)
        data = b"".join(out)
        if len(data) > max_bytes:  # an estimate ran over (e.g. a run of "small" items)
            full, cut = max(full, len(data)), True
            data = _json.fit(data, max_bytes)
        return data.decode("utf-8"), (max(full, len(data) + 1) if cut else None)
    except Exception:  # a telemetry bug must not reach the application
        return _json.dumps(value, max_bytes)


def _plain(value: Any) -> bytes:
    """Uncapped JSON of ``value``: orjson's fast native path first (its
    ``OPT_NON_STR_KEYS`` alone doubles the cost), ``_json`` for anything it refuses."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except Exception:
        return _json.dumps(value, _NO_CAP)[0].encode("utf-8")


def _guess_size(value: Any, nodes: list[int]) -> float:
    """Encoded size guessed from a bounded sample: long containers are extrapolated from
    their first items; past the node budget, or on an unknown type, it guesses "huge"."""
    kind = type(value)
    if kind is str:
        return len(value) + 2
    if kind in _SCALARS:
        return 8
    nodes[0] -= 1
    if nodes[0] < 0:
        return _HUGE
    if kind is dict:
        total = len(value)
        items: Any = value.values()
        size = 0.0
        for key in islice(value, _PROBE) if total > _FIRST_STEP else value:
            size += (len(key) if type(key) is str else 8) + 4
        items = islice(items, _PROBE) if total > _FIRST_STEP else items
    elif kind is list or kind is tuple:
        total = len(value)
        items = value[:_PROBE] if total > _FIRST_STEP else value
        size = float(total if total <= _FIRST_STEP else _PROBE)
    else:
        return _HUGE
    for item in items:  # leaves inline: this runs on every traced call
        item_kind = type(item)
        if item_kind is str:
            size += len(item) + 2
        elif item_kind in _SCALARS:
            size += 8
        else:
            size += _guess_size(item, nodes)
    return size if total <= _FIRST_STEP else size * total / _PROBE


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


def _encode(value: Any, budget: int, depth: int, out: _Out) -> tuple[int, int, bool]:
    """Append about ``budget`` bytes of JSON for ``value`` to ``out``.

    Returns ``(bytes_written, estimated_full_size, was_cut)``.
    """
    if _is_small(value, budget):
        return _append(out, _plain(value))
    if depth >= _MAX_DEPTH:
        return _via_json(value, budget, out)
    kind = type(value)
    if isinstance(value, str):
        return _encode_str(value, budget, out)
    if kind is dict:
        if len(value) <= _FEW:
            return _encode_few(list(value.items()), budget, depth, True, out)
        return _encode_many(iter(value.items()), len(value), budget, depth, True, out)
    if kind is list or kind is tuple:
        if len(value) <= _FEW:
            return _encode_few(list(enumerate(value)), budget, depth, False, out)
        return _encode_many(iter(value), len(value), budget, depth, False, out)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        return _encode(fields, budget, depth + 1, out)
    if isinstance(value, (set, frozenset)) and len(value) > _FEW:
        return _encode_many(iter(value), len(value), budget, depth, False, out)
    nbytes = getattr(value, "nbytes", None)  # numpy arrays: keep the leading rows
    if isinstance(nbytes, int) and nbytes > budget // 4 and getattr(value, "ndim", 0) >= 1:
        rows = len(value)
        keep = max(1, rows * budget // (nbytes * 4))
        written, full, _ = _via_json(value[:keep], budget, out)
        return written, full * rows // keep, keep < rows or full > budget
    return _via_json(value, budget, out)


def _append(out: _Out, data: bytes) -> tuple[int, int, bool]:
    out.append(data)
    return len(data), len(data), False


def _via_json(value: Any, budget: int, out: _Out) -> tuple[int, int, bool]:
    text, original = _json.dumps(value, budget)
    data = text.encode("utf-8")
    out.append(data)
    return len(data), original or len(data), original is not None


def _encode_str(value: str, budget: int, out: _Out) -> tuple[int, int, bool]:
    if len(value) + 2 <= budget:
        data = _plain(value)
        if len(data) <= budget:
            return _append(out, data)
    room = max(budget - 2 - len(_MARK), 0)
    keep = room
    for attempt in range(8):
        data = _plain(value[:keep] + _MARK)
        if len(data) <= budget or keep == 0:
            out.append(data)
            return len(data), len(value) + 2, True
        # Escapes or multi-byte characters made it longer than ``keep``: scale ``keep`` by
        # the bytes a character took, so the cut still fills the budget (halving kept ~half).
        per_char = (len(data) - 2 - len(_MARK)) / keep
        scaled = int(room / per_char * (1 - 0.01 * attempt))
        keep = scaled if 0 < scaled < keep else keep // 2
    data = _plain(value[: keep // 2] + _MARK)
    if len(data) > budget:
        data = _plain(_MARK)
    out.append(data)
    return len(data), len(value) + 2, True


def _key(key: Any) -> bytes:
    return _plain(key if isinstance(key, str) else str(key)) + b":"


class _Writer:
    """One JSON array/object being written into ``out``: commas, size, rollback."""

    __slots__ = ("count", "out", "used")

    def __init__(self, out: _Out, is_dict: bool) -> None:
        self.out = out
        self.used = 2  # both brackets
        self.count = 0
        out.append(b"{" if is_dict else b"[")

    def add(self, data: bytes | memoryview) -> None:
        if not len(data):
            return
        if self.count:
            self.out.append(b",")
            self.used += 1
        self.out.append(data)
        self.used += len(data)
        self.count += 1

    def start_entry(self, key_bytes: bytes) -> int:
        """Open an entry whose value the caller appends; returns the rollback mark."""
        mark = len(self.out)
        if self.count:
            self.out.append(b",")
        if key_bytes:
            self.out.append(key_bytes)
        return mark

    def commit_entry(self, length: int) -> None:
        self.used += length + (1 if self.count else 0)
        self.count += 1

    def rollback(self, mark: int) -> None:
        del self.out[mark:]

    def close(self, is_dict: bool, rest: int) -> int:
        if rest:
            text = f"{rest} more keys" if is_dict else f"... {rest} more items"
            self.add((b'"...":' if is_dict else b"") + _plain(text))
        self.out.append(b"}" if is_dict else b"]")
        return self.used


def _encode_few(
    entries: list[tuple[Any, Any]], budget: int, depth: int, is_dict: bool, out: _Out
) -> tuple[int, int, bool]:
    """A short container, whose items may differ wildly in size (arguments, one message):
    runs of small items are encoded in one call, every other item on its own budget."""
    writer = _Writer(out, is_dict)
    full_total, done, cut = 2, 0, False
    run: list[tuple[Any, Any]] = []

    def flush() -> None:
        nonlocal full_total
        if run:
            piece = _plain(dict(run) if is_dict else [v for _, v in run])
            before = writer.used
            writer.add(memoryview(piece)[1:-1])
            full_total += writer.used - before
            run.clear()

    run_bytes = 0  # upper estimate of the run not yet encoded
    last = len(entries) - 1
    for index, (key, item) in enumerate(entries):
        # Room for a "more items" marker is only needed while items may follow; not
        # reserving it for the last one also keeps deep nesting from compounding it.
        reserve = _MARKER_ROOM if index < last else 0
        room = budget - writer.used - 1 - reserve - run_bytes
        if room <= 0:
            cut = True
            break
        size = _small_size(item, room)
        if size >= 0:
            run.append((key, item))
            run_bytes += size + 1
            if is_dict:
                run_bytes += len(key) + 3 if type(key) is str else 24
            done += 1
            continue
        flush()
        run_bytes = 0
        room = budget - writer.used - 1 - reserve
        key_bytes = _key(key) if is_dict else b""
        mark = writer.start_entry(key_bytes)
        written, full, item_cut = _encode(item, room - len(key_bytes), depth + 1, out)
        if written + len(key_bytes) > room:
            writer.rollback(mark)
            cut = True
            break
        writer.commit_entry(written + len(key_bytes))
        full_total += full + len(key_bytes) + 1
        done += 1
        cut = cut or item_cut
    flush()
    rest = len(entries) - done
    if rest:
        full_total += int(full_total / max(done, 1) * rest)
    return writer.close(is_dict, rest), full_total, cut or bool(rest)


def _encode_many(
    items: Iterator[Any], total: int, budget: int, depth: int, is_dict: bool, out: _Out
) -> tuple[int, int, bool]:
    """A long container, assumed roughly uniform: a first slice learns the item size, the
    rest goes in slices sized to fill half the remaining room; a slice over budget is
    retried smaller, and an item far over budget is encoded alone so it gets cut."""
    writer = _Writer(out, is_dict)
    done, extra = 0, 0
    pending: list[Any] = []  # pulled from ``items``, not yet written
    step = _PROBE
    average = 0.0
    while done < total:
        room = budget - writer.used - 1 - _MARKER_ROOM
        if room <= 0:
            break
        if len(pending) < step:
            pending.extend(islice(items, step - len(pending)))
        if not pending:
            break
        if step == 1:
            item = pending[0]
            key_bytes = _key(item[0]) if is_dict else b""
            mark = writer.start_entry(key_bytes)
            value = item[1] if is_dict else item
            written, full, cut = _encode(value, room - len(key_bytes), depth + 1, out)
            if written + len(key_bytes) > room:
                writer.rollback(mark)
                break
            writer.commit_entry(written + len(key_bytes))
            del pending[0]
            done += 1
            if cut:
                extra = max(full - written, 0)
                break
        else:
            piece = pending[:step]
            encoded = _plain(dict(piece) if is_dict else piece)
            inner = len(encoded) - 2
            if inner > room:
                average = max(average, inner / len(piece))
                step = 1 if inner > 4 * room else max(1, int(room // (2 * average)))
                continue
            writer.add(memoryview(encoded)[1:-1])
            del pending[: len(piece)]
            done += len(piece)
        average = max(average, writer.used / done)
        step = max(1, int((budget - writer.used - _MARKER_ROOM) // (2 * average)))
    rest = total - done
    used = writer.used
    full_total = used + extra + int((used + extra) / max(done, 1) * rest)
    return writer.close(is_dict, rest), full_total, bool(rest) or extra > 0
