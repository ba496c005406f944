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
replay runs the same decode and mapping.

No acknowledged request leaves the log before it is in the store:

- an append that fails (a full or failing log disk) is cut off again (``ftruncate``) and
  the request refused with 503 / ``UNAVAILABLE``, so a torn frame is never acknowledged
  and never followed by acknowledged ones; a frame torn by a crash is at the tail, and
  replay stops there (a damaged frame further in is skipped up to the next valid one);
- a segment is deleted only once *every* request in it was reported stored, whatever
  order the writer stored them in (the store dedupes on (trace id, span id), so replaying
  a request that was in fact stored is harmless);
- a request the store refuses for good is first copied to ``quarantine-<seq>-<n>.wal``
  (written under a temporary name, fsynced, renamed), and ``spanlake serve
  --replay-quarantine`` retries those files into the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

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
QUARANTINE_PREFIX = "quarantine-"


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
    #: sequence numbers logged here and not yet reported stored
    pending: set[int] = field(default_factory=set)


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


def _frame_at(data: bytes, pos: int, after: int) -> tuple[int, bytes] | None:
    """(seq, payload) of a complete, intact frame at ``pos`` numbered above ``after``."""
    if pos + _FRAME.size > len(data):
        return None
    length, crc, seq = _FRAME.unpack_from(data, pos)
    start = pos + _FRAME.size
    if length < _META.size or start + length > len(data) or seq <= after:
        return None
    payload = data[start : start + length]
    if zlib.crc32(payload) != crc:
        return None
    return seq, payload


def _resync(data: bytes, pos: int, last: int) -> int | None:
    """The offset of the next intact frame after a damaged one at ``pos``. Numbers are
    consecutive within a segment, so it is numbered ``last + 1`` (the damaged frame was a
    failed append, retried under the same number) or ``last + 2`` (the damaged frame was
    complete once); found by its sequence field with a C-speed search."""
    found: list[int] = []
    for seq in (last + 1, last + 2):
        needle = struct.pack("<Q", seq)
        start = pos + 1 + 8
        while (hit := data.find(needle, start)) >= 0:
            if _frame_at(data, hit - 8, last) is not None:
                found.append(hit - 8)
                break
            start = hit + 1
    return min(found, default=None)


def _read_segment(path: str) -> Iterator[Entry]:
    """The segment's intact entries. A torn tail (a crash or a full disk during an
    append, never acknowledged) ends it; a damaged frame followed by intact ones (left by
    an older version that appended after a failed write) is skipped up to the next one."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos, last = 0, _seq_of(os.path.basename(path)) - 1
    while pos < len(data):
        found = _frame_at(data, pos, last)
        if found is None:
            resume = _resync(data, pos, last)
            if resume is None:
                logger.warning(
                    "write-ahead log %s: torn tail of %d byte(s) at byte %d ignored (never "
                    "acknowledged)", path, len(data) - pos, pos,
                )  # fmt: skip
                return
            logger.warning(
                "write-ahead log %s: %d damaged byte(s) at byte %d skipped",
                path, resume - pos, pos,
            )  # fmt: skip
            pos = resume
            continue
        seq, payload = found
        try:
            entry = _decode(seq, payload)
        except (struct.error, IndexError, UnicodeDecodeError):
            logger.warning("write-ahead log %s: undecodable frame %d skipped", path, seq)
        else:
            yield entry
        last = seq
        pos += _FRAME.size + len(payload)


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
            segment = _Segment(path, -1)
            for entry in _read_segment(path):
                segment.last = max(segment.last, entry.seq)
                segment.pending.add(entry.seq)
            self._segments.append(segment)
            self._next_seq = max(self._next_seq, segment.last + 1, _seq_of(name) + 1)
        self._fd = -1  # the segment being appended to (the last one), or -1
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
        """Write one request durably; returns its sequence number. On OSError (full or
        failing disk) nothing of the frame is left behind and the caller must refuse the
        request: it was not logged."""
        payload = _encode(fmt, encoding, experiment, body)
        with self._lock:
            seq = self._next_seq
            fd = self._current(seq)
            frame = _frame(seq, payload)
            size = self._file_bytes
            try:
                view = memoryview(frame)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                self._cut(size)
                raise
            self._next_seq = seq + 1
            segment = self._segments[-1]
            segment.last = seq
            segment.pending.add(seq)
            self._file_bytes = size + len(frame)
            return seq

    def _cut(self, size: int) -> None:
        """(Lock held.) Take a failed append back off the open segment; if even that
        fails, leave the segment (its torn tail ends it at replay) and start a new one."""
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError:
            logger.warning("write-ahead log: could not cut a failed append; next segment")
            self._close_file()

    def _current(self, seq: int) -> int:
        if self._fd >= 0 and self._file_bytes >= self._segment_bytes:
            self._close_file()
        if self._fd < 0:
            path, fd = _create(os.path.join(self.slot, f"seg-{seq:020d}"))
            try:
                fsync_dir(self.slot)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
            self._file_bytes = 0
            self._segments.append(_Segment(path, -1))
        return self._fd

    def _close_file(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def stored(self, seqs: Iterable[int]) -> None:
        """These entries are in the store (or quarantined): delete every segment none of
        whose entries is still waiting (the open one is closed first)."""
        with self._lock:
            done = set(seqs)
            keep: list[_Segment] = []
            for i, segment in enumerate(self._segments):
                segment.pending -= done
                if segment.pending:
                    keep.append(segment)
                    continue
                if i == len(self._segments) - 1:
                    if self._fd >= 0 and segment.last < 0:
                        keep.append(segment)  # just opened, nothing in it yet
                        continue
                    self._close_file()  # the open segment is entirely stored
                try:
                    os.unlink(segment.path)
                except FileNotFoundError:
                    pass
            self._segments = keep

    def quarantine(self, entry: Entry) -> str:
        """Keep a request the store refuses for good, in the log's own format, for an
        operator to inspect or replay (``spanlake serve --replay-quarantine``); returns the
        file. Complete or absent: written under a temporary name, fsynced, renamed. Raises
        OSError if it cannot be kept (the caller then keeps the segment)."""
        payload = _encode(entry.fmt, entry.encoding, entry.experiment, entry.body)
        for n in range(1_000_000):
            path = os.path.join(self.slot, f"{QUARANTINE_PREFIX}{entry.seq:020d}-{n}.wal")
            if not os.path.exists(path):
                break
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(_frame(entry.seq, payload))
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, path)
            fsync_dir(self.slot)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return path

    def pending_segments(self) -> int:
        with self._lock:
            return len(self._segments)

    def close(self) -> None:
        """Release the slot (idempotent)."""
        with self._lock:
            self._close_file()
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


def _create(stem: str) -> tuple[str, int]:
    """A new, empty ``stem[-n].wal`` for appending (never reopens a torn segment)."""
    for n in range(1_000_000):
        path = f"{stem}.wal" if n == 0 else f"{stem}-{n}.wal"
        try:
            return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            continue
    raise OSError(f"no free write-ahead log segment name for {stem}")


def _seq_of(name: str) -> int:
    """The sequence number in a log file's name (-1 if none)."""
    digits = name.split("-", 1)[-1].split("-", 1)[0].split(".", 1)[0]
    return int(digits) if digits.isdigit() else -1


def quarantined(directory: str) -> list[str]:
    """Every quarantined request file under a log directory (all slots), oldest first."""
    found: list[tuple[int, str]] = []
    try:
        slots = [os.path.join(directory, n) for n in os.listdir(directory) if n.isdigit()]
    except FileNotFoundError:
        return []
    for slot in slots:
        for name in os.listdir(slot):
            if name.startswith(QUARANTINE_PREFIX) and name.endswith(".wal"):
                found.append((_seq_of(name), os.path.join(slot, name)))
    return [path for _, path in sorted(found)]


def read_quarantined(path: str) -> list[Entry]:
    """The request(s) kept in one quarantine file."""
    return list(_read_segment(path))


def _has_segments(slot: str) -> bool:
    try:
        return any(n.startswith("seg-") and n.endswith(".wal") for n in os.listdir(slot))
    except OSError:
        return False
