"""The OTel span exporter: finished spans -> tracking model -> store.

Contract (as the OTel SDK's exporters): ``export`` never raises and returns FAILURE after
shutdown or when the store fails; ``shutdown`` is idempotent and closes the store;
``force_flush`` returns True (every ``export`` call is durable when it returns). Store
errors are contained, logged (rate-limited) and counted in :attr:`stats`: tracing never
breaks the traced application. Writes run with instrumentation suppressed so our own I/O
never produces spans.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from spanlake.exporter._exit import install_sigterm_flush
from spanlake.exporter.config import default_experiment
from spanlake.exporter.errors import ConfigError, SpanlakeError, TransientStoreError
from spanlake.exporter.mapping import experiment_for, from_readable_span, map_span
from spanlake.exporter.records import SpanRecord
from spanlake.exporter.redaction import ContentRedaction, Redactor, load_redactors, unavailable
from spanlake.exporter.store import Store, open_store

_logger = logging.getLogger(__name__)
_RETRY_DELAYS_S = (0.05, 0.2, 0.5)

#: A user hook that may rewrite a whole record or drop it (return None); in process only.
#: For PII, prefer a content redactor (:mod:`spanlake.exporter.redaction`), which the
#: receiver applies too.
RecordHook = Callable[[SpanRecord], "SpanRecord | None"]


class SpanlakeSpanExporter(SpanExporter):
    """Writes spans to a spanlake store.

    Zero-code use constructs it with no arguments (``OTEL_TRACES_EXPORTER=spanlake``):
    the store comes from ``SPANLAKE_STORE`` (default ``sqlite:///spanlake.db``) and the
    experiment from ``SPANLAKE_EXPERIMENT`` (default ``Default``). A store passed as an
    argument that is invalid raises :class:`ConfigError` and one that cannot be opened
    :class:`StoreError` (both :class:`SpanlakeError`); the same faults with the store from
    the environment are logged as one clear line and the exporter is disabled, so the
    application still runs (untraced).

    ``redactors``: PII redactors applied to each span's content before it is written
    (:mod:`spanlake.exporter.redaction`); None loads the ``spanlake_redactors`` entry points
    and ``SPANLAKE_REDACTOR``. One that cannot be loaded is logged and content is dropped.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        experiment: str | None = None,
        *,
        redact: RecordHook | None = None,
        redactors: Sequence[Redactor] | None = None,
    ) -> None:
        self._experiment = experiment or default_experiment()
        self._redact = redact
        if redactors is None:
            try:
                redactors = load_redactors()
            except ConfigError as exc:
                _logger.error("spanlake: %s; span content will not be stored", exc)
                redactors = [unavailable(str(exc))]
        self._redaction = ContentRedaction(redactors) if redactors else None
        self._lock = threading.Lock()
        self._shutdown = False
        self._owns_store = not isinstance(store, Store)
        self._store: Store | None
        self.stats: dict[str, int] = {
            "exported": 0,
            "dropped": 0,
            "failed_batches": 0,
            "redaction_failures": 0,
        }
        self._resources: dict[int, tuple[Any, Mapping[str, Any]]] = {}
        if isinstance(store, Store):
            self._store = store
        elif store is not None:
            self._store = open_store(store)  # explicit: ConfigError / StoreError reach the caller
        else:
            try:
                self._store = open_store(None)
            except SpanlakeError as exc:  # zero-code: one line, never a traceback
                _logger.error("spanlake exporter disabled: %s", exc)
                self._store = None
        if self._store is not None:
            install_sigterm_flush()  # a service stopped by SIGTERM keeps its last batch

    @property
    def store(self) -> Store | None:
        """The store written to (None when disabled by a bad configuration)."""
        return self._store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown or self._store is None:
            return SpanExportResult.FAILURE
        try:
            with suppress_instrumentation():
                records = self._map(spans)
                if records:
                    self._write(records)
            self.stats["exported"] += len(records)
            return SpanExportResult.SUCCESS
        except Exception as exc:  # never raise into the SDK / the app
            self.stats["failed_batches"] += 1
            if self.stats["failed_batches"] in (1, 10) or self.stats["failed_batches"] % 100 == 0:
                _logger.warning(
                    "spanlake: could not store %d span(s) (%d failed batches so far): %s",
                    len(spans),
                    self.stats["failed_batches"],
                    exc,
                )
            return SpanExportResult.FAILURE

    def _resource(self, span: ReadableSpan) -> Mapping[str, Any]:
        """Resource attributes converted once per resource object, not once per span."""
        resource = span.resource
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1]
        converted = {
            k: list(v) if isinstance(v, tuple) else v for k, v in resource.attributes.items()
        }
        if len(self._resources) > 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, converted)
        return converted

    def _map(self, spans: Sequence[ReadableSpan]) -> list[SpanRecord]:
        records: list[SpanRecord] = []
        for span in spans:
            try:
                raw = from_readable_span(span, self._resource(span))
                record: SpanRecord | None = map_span(raw, experiment_for(raw, self._experiment))
                if self._redaction is not None:
                    assert record is not None
                    record = self._redaction.apply(record)
                    self.stats["redaction_failures"] = self._redaction.failures
                if self._redact is not None:
                    record = self._redact(record)  # type: ignore[arg-type]
            except Exception:
                _logger.debug("spanlake: dropping a span that could not be mapped", exc_info=True)
                self.stats["dropped"] += 1
                continue
            if record is not None:
                records.append(record)
        return records

    def _write(self, records: list[SpanRecord]) -> None:
        assert self._store is not None
        for delay in (*_RETRY_DELAYS_S, None):
            try:
                self._store.write_spans(records)
                return
            except TransientStoreError:
                if delay is None:
                    raise
                time.sleep(delay)

    def shutdown(self) -> None:
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        if self._owns_store and self._store is not None:
            try:
                self._store.close()
            except Exception:
                _logger.debug("spanlake: error closing store", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
