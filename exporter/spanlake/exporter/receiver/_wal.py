"""The receiver's write-ahead log: acknowledged requests on local disk until stored.

With ``spanlake serve --wal-dir DIR`` a request is acknowledged once its body is appended
to a log segment and fsynced, and a background writer commits the queued requests to the
store in large batches. A lake store's cost is per commit (a Delta commit is ~10 ms
whatever its size), so 512-span requests committed one by one ran at a third of what
8192-span commits do; the log lets a single sender get the large commits too.

Layout: ``DIR/<slot>/seg-<first seq>.wal``, one slot per running receiver, held with an
exclusive ``flock`` on ``DIR/<slot>/lock`` (a second receiver on the same directory takes
the next slot; a starting one replays its own slot and any slot whose receiver is gone).
A segment is a run of frames ``<payload length u32><crc32 u32><seq u64><payload>``, the
payload the request as received (format, content encoding, experiment header, body), so
replay runs the same decode and mapping. A frame cut short by a crash was never acknowledged; replay stops at
it. A segment is deleted once every request in it is in the store (the store dedupes on
(trace id, span id), so replaying a request that was in fact stored is harmless).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from spanlake.exporter._durable import fsync_dir
from spanlake.exporter.errors import ConfigError
from spanlake.exporter.receiver._body import Format

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("<IIQ")
_META = struct.Struct("<BBH")  # format, len(encoding), len(experiment) (0xFFFF: None)
_FORMATS: tuple[Format, ...] = ("protobuf", "json")
_NO_EXPERIMENT = 0xFFFF
#: A segment is closed (and can be deleted once stored) past this size.
SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Entry:
    """One acknowledged request, as received."""

    seq: int
    fmt: Format
    encoding: str
    experiment: str | None
    body: bytes


@dataclass(slots=True)
class _Segment:
    path: str
    last: int  # highest sequence number written to it (-1: none yet)


def _encode(fmt: Format, encoding: str, experiment: str | None, body: bytes) -> bytes:
    enc = encoding.encode("ascii", "replace")[:255]
    exp = b"" if experiment is None else experiment.encode("utf-8")[:0xFFFE]
    meta = _META.pack(
        _FORMATS.index(fmt), len(enc), _NO_EXPERIMENT if experiment is None else len(exp)
    )
    return meta + enc + exp + body


def _frame(seq: int, payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload), seq) + payload


def _decode(seq: int, payload: bytes) -> Entry:
    fmt_index, enc_len, exp_len = _META.unpack_from(payload)
    pos = _META.size
    encoding = payload[pos : pos + enc_len].decode("ascii")
    pos += enc_len
    experiment = None
    if exp_len != _NO_EXPERIMENT:
        experiment = payload[pos : pos + exp_len].decode("utf-8")
        pos += exp_len
    return Entry(seq, _FORMATS[fmt_index], encoding, experiment, payload[pos:])


def _read_segment(path: str) -> Iterator[Entry]:
    """The segment's entries up to the first incomplete or corrupt frame."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    while pos + _FRAME.size <= len(data):
        length, crc, seq = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            logger.warning("write-ahead log %s: torn frame at byte %d ignored", path, pos)
            return
        yield _decode(seq, payload)
        pos = start + length


class WriteAheadLog:
    """Append-and-fsync on the request path, replay at start, delete once stored."""

    def __init__(
        self, directory: str, segment_bytes: int = SEGMENT_BYTES, *, slot: str | None = None
    ) -> None:
        self._directory = directory
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self.slot, self._lock_fd = _take_slot(directory, slot)
        # every segment still holding unstored entries, oldest first
        self._segments: list[_Segment] = []
        self._next_seq = 0
        names = sorted(
            n for n in os.listdir(self.slot) if n.startswith("seg-") and n.endswith(".wal")
        )
        for name in names:
            path = os.path.join(self.slot, name)
            last = -1
            for entry in _read_segment(path):
                last = max(last, entry.seq)
            self._segments.append(_Segment(path, last))
            self._next_seq = max(self._next_seq, last + 1)
        self._file: BinaryIO | None = None
        self._file_bytes = 0

    def orphans(self) -> list[WriteAheadLog]:
        """The other slots of the directory that hold entries and whose receiver is gone
        (their lock is free), each locked for the caller to replay and close: a receiver
        restarted alone also stores what a crashed neighbour acknowledged."""
        found: list[WriteAheadLog] = []
        for name in sorted(os.listdir(self._directory)):
            path = os.path.join(self._directory, name)
            if path == self.slot or not name.isdigit() or not _has_segments(path):
                continue
            try:
                found.append(WriteAheadLog(self._directory, self._segment_bytes, slot=name))
            except BlockingIOError:
                continue  # a live receiver's slot
        return found

    def recovered(self) -> Iterator[Entry]:
        """Entries left by a previous run (acknowledged, maybe not stored), oldest first."""
        for segment in list(self._segments):
            yield from _read_segment(segment.path)

    def append(self, fmt: Format, encoding: str, experiment: str | None, body: bytes) -> int:
        """Write one request durably; returns its sequence number."""
        payload = _encode(fmt, encoding, experiment, body)
        with self._lock:
            seq = self._next_seq
            fh = self._current(seq)
            fh.write(_frame(seq, payload))
            fh.flush()
            os.fsync(fh.fileno())
            self._next_seq = seq + 1
            self._segments[-1].last = seq
            self._file_bytes += _FRAME.size + len(payload)
            return seq

    def _current(self, seq: int) -> BinaryIO:
        if self._file is not None and self._file_bytes >= self._segment_bytes:
            self._file.close()
            self._file = None
        if self._file is None:
            path = os.path.join(self.slot, f"seg-{seq:020d}.wal")
            self._file = open(path, "ab")
            self._file_bytes = 0
            self._segments.append(_Segment(path, -1))
            fsync_dir(self.slot)
        return self._file

    def stored(self, through_seq: int) -> None:
        """Every entry up to ``through_seq`` is in the store: delete the segments that hold
        nothing newer (the open one is closed first if it is entirely stored)."""
        with self._lock:
            keep: list[_Segment] = []
            for i, segment in enumerate(self._segments):
                if segment.last > through_seq:
                    keep.append(segment)
                    continue
                if self._file is not None and i == len(self._segments) - 1:
                    self._file.close()  # the open segment is entirely stored
                    self._file = None
                try:
                    os.unlink(segment.path)
                except FileNotFoundError:
                    pass
            self._segments = keep

    def quarantine(self, entry: Entry) -> str:
        """Keep a request the store refuses for good, in the log's own format, for an
        operator to inspect or replay; returns the file."""
        path = os.path.join(self.slot, f"quarantine-{entry.seq:020d}.wal")
        payload = _encode(entry.fmt, entry.encoding, entry.experiment, entry.body)
        with open(path, "wb") as fh:
            fh.write(_frame(entry.seq, payload))
            fh.flush()
            os.fsync(fh.fileno())
        return path

    def pending_segments(self) -> int:
        with self._lock:
            return len(self._segments)

    def close(self) -> None:
        """Release the slot (idempotent)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1


def _take_slot(directory: str, only: str | None = None) -> tuple[str, int]:
    """The first slot directory whose lock is free (``DIR/0``, ``DIR/1``, ...), or just
    slot ``only`` (BlockingIOError if its receiver still holds it)."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the write-ahead log directory {directory}: {exc}"
        ) from exc
    for name in [only] if only is not None else (str(n) for n in range(1024)):
        slot = os.path.join(directory, name)
        os.makedirs(slot, exist_ok=True)
        fd = os.open(os.path.join(slot, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if only is not None:
                raise
            continue
        return slot, fd
    raise ConfigError(f"no free write-ahead log slot under {directory}")


def _has_segments(slot: str) -> bool:
    try:
        return any(n.startswith("seg-") and n.endswith(".wal") for n in os.listdir(slot))
    except OSError:
        return False
