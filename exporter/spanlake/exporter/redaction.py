"""PII redaction hooks: user callables that rewrite each span's recorded content before it
is written, in the in-process exporter and in the OTLP receiver alike.

A redactor is ``Callable[[str], str]``: it gets one recorded string and returns it with
whatever must not be stored masked (``re.sub(EMAIL, "[EMAIL]", text)``). It is called on
every string of a span's content, after the built-in secret redaction
(:mod:`spanlake.semconv.secrets`): each string inside the inputs and outputs JSON (the
JSON is decoded, its strings passed one by one, and encoded again, so it stays valid),
each string attribute value (and each string in a list value), each string of every
event's attributes, the status message, and the values of trace tags and metadata.
Names, ids, times, the resource, model and provider are not content and are not passed.

Redactors come from the entry point group ``spanlake_redactors`` (every installed one, in
name order) and from ``SPANLAKE_REDACTOR=module:function`` (comma-separated for several),
applied in that order.

Failures are contained and fail closed: a string the redactor raised on (or returned a
non-string for) is stored as ``[REDACTION FAILED]`` rather than unredacted; the span is
still stored. A redactor that cannot be loaded is a :class:`ConfigError` for
``spanlake serve`` (it refuses to start); the in-process exporter logs the error and drops
all content (every string becomes ``[REDACTION FAILED]``) so the application keeps running.
"""

from __future__ import annotations

import logging
import os
import pkgutil
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any, Final

import orjson

from spanlake.exporter.errors import ConfigError
from spanlake.exporter.records import SpanEvent, SpanRecord

#: A PII redactor: one recorded string in, the string to store out.
Redactor = Callable[[str], str]

ENTRY_POINT_GROUP: Final = "spanlake_redactors"
ENV_REDACTOR: Final = "SPANLAKE_REDACTOR"
REDACTION_FAILED: Final = "[REDACTION FAILED]"
_MAX_DEPTH: Final = 64

_logger = logging.getLogger(__name__)


def load_redactors() -> list[Redactor]:
    """The installed (entry point) and configured (``SPANLAKE_REDACTOR``) redactors.

    Raises :class:`ConfigError` naming the redactor that cannot be loaded or is not callable.
    """
    found: list[Redactor] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(
                f"redactor entry point {ep.name!r} ({ep.value}) cannot be loaded: {exc}"
            ) from exc
        found.append(_callable(obj, f"entry point {ep.name!r} ({ep.value})"))
    for spec in (os.environ.get(ENV_REDACTOR) or "").split(","):
        spec = spec.strip()
        if not spec:
            continue
        if ":" not in spec:
            raise ConfigError(f"{ENV_REDACTOR}={spec!r}: expected module:function")
        try:
            obj = pkgutil.resolve_name(spec)
        except Exception as exc:
            raise ConfigError(f"{ENV_REDACTOR}={spec!r} cannot be loaded: {exc}") from exc
        found.append(_callable(obj, f"{ENV_REDACTOR}={spec!r}"))
    return found


def _callable(obj: Any, where: str) -> Redactor:
    if not callable(obj):
        raise ConfigError(f"redactor {where} is not callable")
    redactor: Redactor = obj
    return redactor


def unavailable(reason: str) -> Redactor:
    """A redactor that always fails: used when the configured ones cannot be loaded, so
    content is dropped rather than stored unredacted."""

    def refuse(text: str) -> str:
        raise RuntimeError(reason)

    return refuse


class ContentRedaction:
    """Applies redactors to one record's content; counts the strings that failed."""

    __slots__ = ("_redactors", "failed_spans", "failures")

    def __init__(self, redactors: Sequence[Redactor]) -> None:
        self._redactors = tuple(redactors)
        #: Strings stored as ``[REDACTION FAILED]`` / spans that had any (approximate under
        #: concurrent receivers' threads: only logging and stats read them).
        self.failures = 0
        self.failed_spans = 0

    def apply(self, record: SpanRecord) -> SpanRecord:
        """``record`` with its content redacted (rewritten in place; returned for chaining)."""
        before = self.failures
        record.inputs = self._json_text(record.inputs)
        record.outputs = self._json_text(record.outputs)
        if record.status_message:
            record.status_message = self._text(record.status_message)
        record.attributes = {k: self._value(v, 0) for k, v in record.attributes.items()}
        record.events = [
            SpanEvent(e.name, e.time_ns, {k: self._value(v, 0) for k, v in e.attributes.items()})
            for e in record.events
        ]
        record.trace_tags = {k: self._text(v) for k, v in record.trace_tags.items()}
        record.trace_metadata = {k: self._text(v) for k, v in record.trace_metadata.items()}
        if self.failures > before:
            self.failed_spans += 1
            if self.failed_spans in (1, 10) or self.failed_spans % 1000 == 0:  # rate-limited
                _logger.warning(
                    "spanlake: a redactor failed on %d span(s) so far (last: %s); the strings "
                    "it failed on are stored as %s",
                    self.failed_spans,
                    record.span_id,
                    REDACTION_FAILED,
                )
        return record

    def _text(self, text: str) -> str:
        for redactor in self._redactors:
            try:
                result = redactor(text)
            except Exception:
                result = None
            if not isinstance(result, str):
                self.failures += 1
                return REDACTION_FAILED
            text = result
        return text

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {k: self._value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._value(v, depth + 1) for v in value]
        return value

    def _json_text(self, text: str | None) -> str | None:
        if text is None:
            return None
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self._text(text)  # not JSON (e.g. another instrumentation's plain text)
        return orjson.dumps(self._value(parsed, 0)).decode()
