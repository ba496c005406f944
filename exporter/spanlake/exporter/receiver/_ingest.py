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
from spanlake.exporter.receiver._wal import Entry, WriteAheadLog
from spanlake.exporter.records import SpanRecord
from spanlake.exporter.redaction import ContentRedaction, load_redactors
from spanlake.exporter.store.base import Store

logger = logging.getLogger(__name__)

MAX_EXPERIMENT_NAME = 256
#: Non-transient refusals in a row, of a request written alone, before it is quarantined.
PERMANENT_ATTEMPTS = 3
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
    __slots__ = ("done", "entry", "error", "queued_at", "records")

    def __init__(self, records: Sequence[SpanRecord], entry: Entry | None = None) -> None:
        self.records = records
        self.entry = entry  # the request in the write-ahead log (log mode)
        self.queued_at = time.monotonic()
        self.done = threading.Event()
        self.error: ReceiverError | None = None


class Writer:
    """One thread committing the waiting requests together (group commit).

    Without a write-ahead log a request waits in :meth:`write` until the store call that
    holds it returned. With one (:meth:`enqueue`) the request was acknowledged when logged;
    the thread lingers up to ``wal_linger_s`` to fill a large batch, retries transient
    store failures until they pass (the log keeps the data meanwhile), and then lets the
    log drop what is stored.
    """

    def __init__(
        self,
        store: Store,
        config: ReceiverConfig,
        metrics: Metrics,
        wal: WriteAheadLog | None = None,
        replay: Callable[[Entry], list[SpanRecord]] | None = None,
    ) -> None:
        self._store = store
        self._max_batch = config.max_write_batch_spans
        self._retry_after = config.retry_after_s
        self._linger = config.wal_linger_s
        self._max_queued = config.wal_max_queued_spans
        self._metrics = metrics
        self._wal = wal
        self._replay = replay
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
        self._put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error

    def reserve(self, spans: int) -> None:
        """Refuse (Overloaded) a request the in-memory queue has no room for (log mode),
        before anything is logged."""
        queued = self._metrics.write_queue_spans
        if queued and queued + spans > self._max_queued:
            raise Overloaded(
                f"receiver busy ({queued} spans waiting for the store); retry later",
                self._retry_after,
            )

    def enqueue(self, records: Sequence[SpanRecord], entry: Entry) -> None:
        """Queue a request already durable in the write-ahead log (returns at once)."""
        self._put(_Job(records, entry))

    def _put(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                raise Unavailable("the receiver is shutting down", self._retry_after)
            self._jobs.append(job)
            self._metrics.write_queue_spans += len(job.records)
            self._cond.notify()

    def close(self, timeout: float) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
        if self._wal is not None and not self._thread.is_alive():
            self._wal.close()

    def _run(self) -> None:
        if self._wal is not None and not self._replay_log():
            return
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if not self._jobs:
                    return
                if self._wal is not None:
                    self._linger_for_batch()
                batch = [self._jobs.popleft()]
                size = len(batch[0].records)
                while self._jobs and size + len(self._jobs[0].records) <= self._max_batch:
                    job = self._jobs.popleft()
                    batch.append(job)
                    size += len(job.records)
            if self._wal is None:
                self._commit(batch)
            elif not self._store_logged(batch):
                return  # closing with the store still failing: the log keeps the rest
            with self._cond:
                self._metrics.write_queue_spans -= size

    def _linger_for_batch(self) -> None:
        """(Lock held.) Wait, up to the linger from the oldest request, for a full batch."""
        deadline = self._jobs[0].queued_at + self._linger
        while not self._closed and self._metrics.write_queue_spans < self._max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._cond.wait(remaining)

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

    # -- write-ahead log mode -------------------------------------------------------------
    def _replay_log(self) -> bool:
        """Store what a previous run acknowledged, in any slot a crashed neighbour left and
        in ours; False if closing interrupted it."""
        assert self._wal is not None
        for orphan in self._wal.orphans():
            try:
                if not self._replay_slot(orphan):
                    return False
            finally:
                orphan.close()
        return self._replay_slot(self._wal)

    def _replay_slot(self, wal: WriteAheadLog) -> bool:
        assert self._replay is not None
        batch: list[_Job] = []
        size = replayed = 0
        for entry in wal.recovered():
            try:
                records = self._replay(entry)
            except Exception as exc:
                job = _Job([], entry)
                while not self._quarantine(job, exc, wal):
                    with self._cond:
                        if self._closed:
                            return False
                        self._cond.wait(1.0)
                continue
            batch.append(_Job(records, entry))
            size += len(records)
            replayed += 1
            if size >= self._max_batch:
                if not self._store_logged(batch, wal):
                    return False
                batch, size = [], 0
        if batch and not self._store_logged(batch, wal):
            return False
        if replayed:
            logger.info(
                "write-ahead log %s: %d acknowledged request(s) replayed", wal.slot, replayed
            )
        return True

    def _store_logged(self, batch: list[_Job], wal: WriteAheadLog | None = None) -> bool:
        """Write logged requests to the store; the log lets a request go only once it is
        stored. Transient faults (TransientStoreError, OSError: a full or locked store)
        keep it and are retried with backoff, however long they last. Any other error
        splits a batch into its requests; a request that alone fails that way
        ``PERMANENT_ATTEMPTS`` times in a row is one the store can never accept: it is
        quarantined (kept on disk, counted, logged with the reason) and the log moves on.
        False only when closing while the store still fails (the log keeps the rest)."""
        wal = wal or self._wal
        assert wal is not None
        records = [r for job in batch for r in job.records]
        delay = 0.05
        refusals = 0
        while True:
            try:
                new = self._store.write_spans(records) if records else 0
            except (TransientStoreError, OSError) as exc:
                self._metrics.count_store_error()
                refusals = 0
                logger.warning("transient store error, retrying in %.2fs: %s", delay, exc)
            except Exception as exc:
                self._metrics.count_store_error()
                if len(batch) > 1:
                    # Isolate the request(s) that made the shared commit fail.
                    return all(self._store_logged([job], wal) for job in batch)
                refusals += 1
                if refusals >= PERMANENT_ATTEMPTS and self._quarantine(batch[0], exc, wal):
                    return True
                logger.warning(
                    "store refused %d logged spans (%d/%d), retrying in %.2fs: %s",
                    len(records), refusals, PERMANENT_ATTEMPTS, delay, exc,
                )  # fmt: skip
            else:
                self._metrics.count_write(len(records), new)
                wal.stored(job.entry.seq for job in batch if job.entry is not None)
                return True
            with self._cond:
                if self._closed:
                    return False
                self._cond.wait(delay)
            delay = min(delay * 2, 5.0)

    def _quarantine(self, job: _Job, reason: Exception, wal: WriteAheadLog) -> bool:
        """Keep a request the store refuses for good beside the log, then let the log drop
        it; False (the log keeps it, the caller retries) if it cannot be kept."""
        entry = job.entry
        assert entry is not None
        try:
            path = wal.quarantine(entry)
        except OSError as exc:
            logger.warning("cannot quarantine logged request %d yet: %s", entry.seq, exc)
            return False
        self._metrics.count_quarantined(len(job.records))
        logger.error(
            "the store refused logged request %d (%d spans) for good: %s: %s; kept in %s "
            "(retry with `spanlake serve --replay-quarantine`)",
            entry.seq, len(job.records), type(reason).__name__, reason, path,
        )  # fmt: skip
        wal.stored([entry.seq])
        return True


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
        self.redaction = redaction_from(config)
        self.wal = WriteAheadLog(config.wal_dir) if config.wal_dir else None
        self.writer = Writer(store, config, metrics, self.wal, self._replay)

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
        if self.wal is None:
            self.writer.write(records)
        elif records:
            self.writer.reserve(len(records))
            try:
                seq = self.wal.append(fmt, encoding, experiment, body)
            except OSError as exc:
                raise Unavailable(
                    f"write-ahead log unavailable: {exc}", self.config.retry_after_s
                ) from exc
            self.writer.enqueue(records, Entry(seq, fmt, encoding, experiment, body))
        return Outcome(decoded.rejected, decoded.error_message)

    def _replay(self, entry: Entry) -> list[SpanRecord]:
        return logged_records(entry, self.config, self.redaction)

    def export(
        self, fmt: Format, body: bytes, encoding: str = "", experiment: str | None = None
    ) -> Outcome:
        """Admit and process a body already in memory (gRPC, tests)."""
        with self.admit(len(body)) as ticket:
            return self.process(ticket, fmt, body, encoding, experiment)

    def _map(self, decoded: Decoded, override: str | None) -> list[SpanRecord]:
        return _map(decoded, self.config.default_experiment, override, self.redaction)

    def close(self) -> None:
        """Stop admitting, let admitted requests finish, commit what is queued."""
        if not self.gate.close(self.config.drain_timeout_s):
            logger.warning("shutdown: in-flight requests did not finish in time")
        self.writer.close(self.config.drain_timeout_s)


def redaction_from(config: ReceiverConfig) -> ContentRedaction | None:
    """The PII redaction the config names (None: its redactors, else the installed ones)."""
    redactors = config.redactors if config.redactors is not None else load_redactors()
    return ContentRedaction(redactors) if redactors else None


def logged_records(
    entry: Entry, config: ReceiverConfig, redaction: ContentRedaction | None
) -> list[SpanRecord]:
    """A logged request's records, by the same steps as when it was received (redaction
    included: the log holds the request as sent, so replay must redact it again)."""
    override = _experiment_override(entry.experiment)
    data = decompress(entry.body, entry.encoding, config.max_request_bytes)
    return _map(_DECODERS[entry.fmt](data), config.default_experiment, override, redaction)


def _map(
    decoded: Decoded, default: str, override: str | None, redaction: ContentRedaction | None
) -> list[SpanRecord]:
    records: list[SpanRecord] = []
    append = records.append
    for span in decoded.spans:
        try:
            record = map_span(span, experiment_for(span, default, override))
            append(record if redaction is None else redaction.apply(record))
        except Exception as exc:  # a span the mapping cannot handle is rejected alone
            decoded.reject(f"span {span.span_id}: {type(exc).__name__}: {exc}")
    return records


def _experiment_override(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_EXPERIMENT_NAME or not value.isprintable():
        raise BadRequest("invalid x-spanlake-experiment header: printable, at most 256 characters")
    return value
