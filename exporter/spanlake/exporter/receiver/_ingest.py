"""The durable write path shared by both transports: admit, decode, map, write, ack.

    body --gate--> decompress (bounded) --> decode --> map_span --> writer --> store
                                                                        (group commit)

- :class:`Gate` bounds the requests and bytes being worked on; past it a request is
  refused at once with a retry delay instead of queueing (bounded memory under any load).
- :class:`Writer` is one thread that commits whatever requests are waiting in a single
  ``store.write_spans`` call, so concurrent senders share a transaction; each request is
  acknowledged only after the call that contains it returned (durable).
- :class:`Ingestor` runs the pipeline and turns every failure into a
  :class:`~spanlake.exporter.receiver._errors.ReceiverError` with the right status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from spanlake.exporter.errors import StoreError, TransientStoreError
from spanlake.exporter.mapping import experiment_for, map_span
from spanlake.exporter.receiver import _json, _protobuf
from spanlake.exporter.receiver._body import Format, decompress
from spanlake.exporter.receiver._config import ReceiverConfig
from spanlake.exporter.receiver._decoded import Decoded
from spanlake.exporter.receiver._errors import (
    BadRequest,
    InternalError,
    Overloaded,
    ReceiverError,
    TooLarge,
    Unavailable,
)
from spanlake.exporter.receiver._metrics import Metrics
from spanlake.exporter.records import SpanRecord
from spanlake.exporter.store.base import Store

logger = logging.getLogger(__name__)

MAX_EXPERIMENT_NAME = 256
_DECODERS: dict[Format, Callable[[bytes], Decoded]] = {
    "protobuf": _protobuf.decode_request,
    "json": _json.decode_request,
}


class Gate:
    """Admission control: at most ``max_requests`` requests and ``max_bytes`` bytes."""

    def __init__(self, config: ReceiverConfig, metrics: Metrics) -> None:
        self._max_requests = config.max_inflight_requests
        self._max_bytes = config.max_inflight_bytes
        self._retry_after = config.retry_after_s
        self._metrics = metrics
        self._cond = threading.Condition()
        self._closed = False

    def enter(self, nbytes: int) -> None:
        m = self._metrics
        with self._cond:
            if self._closed:
                raise Unavailable("the receiver is shutting down", self._retry_after)
            if (
                m.inflight_requests >= self._max_requests
                or m.inflight_bytes + nbytes > self._max_bytes
            ):
                raise Overloaded(
                    f"receiver busy ({m.inflight_requests} requests, {m.inflight_bytes} bytes "
                    "in flight); retry later",
                    self._retry_after,
                )
            m.inflight_requests += 1
            m.inflight_bytes += nbytes

    def grow(self, extra: int) -> None:
        """Account for a body that grew when decompressed (refused if over budget)."""
        m = self._metrics
        with self._cond:
            if m.inflight_bytes + extra > self._max_bytes:
                raise Overloaded("receiver busy (in-flight bytes); retry later", self._retry_after)
            m.inflight_bytes += extra

    def leave(self, nbytes: int) -> None:
        m = self._metrics
        with self._cond:
            m.inflight_requests -= 1
            m.inflight_bytes -= nbytes
            self._cond.notify_all()

    def close(self, timeout: float) -> bool:
        """Refuse new requests and wait for the admitted ones; False if they did not finish."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed = True
            while self._metrics.inflight_requests > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True


class _Job:
    __slots__ = ("done", "error", "records")

    def __init__(self, records: Sequence[SpanRecord]) -> None:
        self.records = records
        self.done = threading.Event()
        self.error: ReceiverError | None = None


class Writer:
    """One thread committing the waiting requests together (group commit)."""

    def __init__(self, store: Store, config: ReceiverConfig, metrics: Metrics) -> None:
        self._store = store
        self._max_batch = config.max_write_batch_spans
        self._retry_after = config.retry_after_s
        self._metrics = metrics
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="spanlake-writer", daemon=True)
        self._thread.start()

    def write(self, records: Sequence[SpanRecord]) -> None:
        """Return once ``records`` are durable; raise a ReceiverError otherwise."""
        if not records:
            return
        job = _Job(records)
        with self._cond:
            if self._closed:
                raise Unavailable("the receiver is shutting down", self._retry_after)
            self._jobs.append(job)
            self._metrics.write_queue_spans += len(records)
            self._cond.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error

    def close(self, timeout: float) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                batch = [self._jobs.popleft()]
                size = len(batch[0].records)
                while self._jobs and size + len(self._jobs[0].records) <= self._max_batch:
                    job = self._jobs.popleft()
                    batch.append(job)
                    size += len(job.records)
                self._metrics.write_queue_spans -= size
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        records = batch[0].records if len(batch) == 1 else [r for j in batch for r in j.records]
        error: ReceiverError | None = None
        try:
            new = self._store.write_spans(records)
        except (TransientStoreError, OSError) as exc:
            self._metrics.count_store_error()
            logger.warning("transient store error, clients will retry: %s", exc)
            error = Unavailable(f"store temporarily unavailable: {exc}", self._retry_after)
        except Exception as exc:
            if len(batch) > 1:
                # Isolate the request that made the shared commit fail.
                for job in batch:
                    self._commit([job])
                return
            self._metrics.count_store_error()
            kind = "store error" if isinstance(exc, StoreError) else "unexpected store failure"
            logger.exception("%s while writing %d spans", kind, len(records))
            error = InternalError(f"{kind}: {exc}")
        else:
            self._metrics.count_write(len(records), new)
        for job in batch:
            job.error = error
            job.done.set()


@dataclass(slots=True)
class Ticket:
    """A request's place in the gate: the bytes it is accounted for."""

    nbytes: int


@dataclass(frozen=True, slots=True)
class Outcome:
    """An accepted request: how many of its spans were rejected, and why."""

    rejected: int
    message: str


class Ingestor:
    """Everything between a transport's raw body and the store."""

    def __init__(self, store: Store, config: ReceiverConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.gate = Gate(config, metrics)
        self.writer = Writer(store, config, metrics)

    @contextmanager
    def admit(self, nbytes: int) -> Iterator[Ticket]:
        """Hold a place in the gate for a request of ``nbytes`` (Overloaded when full).
        Transports admit *before* reading a body, so refused bodies never take memory."""
        limit = self.config.max_request_bytes
        if nbytes > limit:
            raise TooLarge(f"request body of {nbytes} bytes exceeds the {limit}-byte limit")
        self.gate.enter(nbytes)
        ticket = Ticket(nbytes)
        try:
            yield ticket
        finally:
            self.gate.leave(ticket.nbytes)

    def process(
        self,
        ticket: Ticket,
        fmt: Format,
        body: bytes,
        encoding: str = "",
        experiment: str | None = None,
    ) -> Outcome:
        """Decode, map and durably store one admitted request."""
        override = _experiment_override(experiment)
        data = decompress(body, encoding, self.config.max_request_bytes)
        if data is not body:
            self.gate.grow(len(data))
            ticket.nbytes += len(data)
        decoded = _DECODERS[fmt](data)
        del data
        seen = len(decoded.spans) + decoded.rejected
        records = self._map(decoded, override)
        self.metrics.count_spans(seen, decoded.rejected)
        self.writer.write(records)
        return Outcome(decoded.rejected, decoded.error_message)

    def export(
        self, fmt: Format, body: bytes, encoding: str = "", experiment: str | None = None
    ) -> Outcome:
        """Admit and process a body already in memory (gRPC, tests)."""
        with self.admit(len(body)) as ticket:
            return self.process(ticket, fmt, body, encoding, experiment)

    def _map(self, decoded: Decoded, override: str | None) -> list[SpanRecord]:
        default = self.config.default_experiment
        records: list[SpanRecord] = []
        append = records.append
        for span in decoded.spans:
            try:
                append(map_span(span, experiment_for(span, default, override)))
            except Exception as exc:  # a span the mapping cannot handle is rejected alone
                decoded.reject(f"span {span.span_id}: {type(exc).__name__}: {exc}")
        return records

    def close(self) -> None:
        """Stop admitting, let admitted requests finish, commit what is queued."""
        if not self.gate.close(self.config.drain_timeout_s):
            logger.warning("shutdown: in-flight requests did not finish in time")
        self.writer.close(self.config.drain_timeout_s)


def _experiment_override(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_EXPERIMENT_NAME or not value.isprintable():
        raise BadRequest("invalid x-spanlake-experiment header: printable, at most 256 characters")
    return value
