"""A write-ahead log for rows on their way to the database: append first, delete when done.

The directory holds segment files ``wal-<seq>.jsonl`` (one row per line, format in
``tickstock.messages.spill``); ``spill-*.jsonl`` files written by earlier versions at shutdown are
read as segments too. Guarantees:

- ``append`` hands every line to the operating system (one ``write`` per call) before it returns:
  a process killed afterwards (kill -9 included) loses none of them. ``sync`` fsyncs what was
  appended since the last sync (the caller calls it in batches, e.g. every second, and at close), so
  a crash of the machine loses at most what came after the last ``sync``.
- Each row gets a ``Position``. ``done(positions)`` marks rows as finished with (committed, or
  refused and reported). A segment file is deleted only when it is no longer appended to and every
  row in it is done; ``close`` keeps every segment that still holds a row not done.
- ``open`` reads the segments left by earlier processes: their rows are pending again, in order
  (older segments first, lines in file order), and their files stay until those rows are done. A
  line that cannot be read is skipped, never the segment: a torn last line (a process killed
  mid-write) with a warning; a bad line elsewhere with an error, and that segment is then kept as
  ``<name>.damaged`` instead of being deleted once its readable rows are done.
- New rows always go to a new segment, never after an earlier process's (possibly torn) tail.
  Segments rotate when they reach ``max_segment_rows`` rows, ``max_segment_bytes`` bytes or
  ``max_segment_age`` seconds.
- Memory is one byte per row of the segments on disk: rows are read back from the file
  (``scan``, ``rows``), not kept.

Not thread-safe: one owner (the persistence actor) calls it. One process per directory: ``open``
takes an exclusive lock on ``<directory>/.lock`` for this process (released at ``close`` of the last
log of this process on that directory, or when the process dies, kill -9 included) and raises
``WalInUse`` if another process holds it, so two services never replay each other's rows. Logs
of the same process share the lock (a restarted actor replays what its dead predecessor left).
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from loguru import logger

from tickstock.messages.spill import decode_line, encode_row

_SEGMENT_NAME = re.compile(r"^wal-(\d{1,18})\.jsonl$")
_LEGACY_GLOB = "spill-*.jsonl"


class WalInUse(OSError):
    """Another process holds the directory's lock."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a row is: segment ordinal (replay order), line index in it, byte offset of the line."""

    segment: int
    line: int
    offset: int


@dataclass(frozen=True, slots=True)
class WalStats:
    segments: int   # segment files on disk
    bytes: int      # their total size
    pending: int    # rows in them not yet done


class _Segment:
    __slots__ = ("ordinal", "path", "done", "pending", "size", "created", "fd", "damaged", "dirty")

    def __init__(self, ordinal: int, path: Path, created: float) -> None:
        self.ordinal = ordinal
        self.path = path
        self.done = bytearray()  # one byte per line: 1 = done (or unreadable)
        self.pending = 0
        self.size = 0
        self.created = created
        self.fd: int | None = None  # open for appending: this is the current segment
        self.damaged = False
        self.dirty = False  # appended since the last fsync


class WriteAheadLog:
    def __init__(
        self,
        directory: str | Path,
        *,
        max_segment_rows: int = 20_000,
        max_segment_bytes: int = 32 * 2**20,
        max_segment_age: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        log: Any = logger,
    ) -> None:
        self.directory = Path(directory)
        self.max_segment_rows = max_segment_rows
        self.max_segment_bytes = max_segment_bytes
        self.max_segment_age = max_segment_age
        self._clock = clock
        self._log = log
        self._segments: dict[int, _Segment] = {}  # ordinal -> segment, ascending
        self._current: _Segment | None = None
        self._next_seq = 1
        self._dir_dirty = False
        self._opened = False
        self._closed = False
        self._lock_key: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> int:
        """Create the directory if needed and take over the segments in it. Returns the number of
        rows pending from earlier processes (read them with ``rows()``). OSError if the directory
        cannot be created or listed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_key = _acquire_directory(self.directory)
        try:
            legacy = sorted(p for p in self.directory.glob(_LEGACY_GLOB) if p.is_file())
            numbered = []
            for path in self.directory.iterdir():
                match = _SEGMENT_NAME.match(path.name)
                if match and path.is_file():
                    numbered.append((int(match.group(1)), path))
            numbered.sort()
        except BaseException:
            _release_directory(self._lock_key)
            self._lock_key = None
            raise
        # Legacy spill files predate every numbered segment: replay them first.
        for ordinal, path in [(i - len(legacy), p) for i, p in enumerate(legacy)] + numbered:
            self._load(ordinal, path)
        self._next_seq = (numbered[-1][0] + 1) if numbered else 1
        self._opened = True
        return self.pending

    def _load(self, ordinal: int, path: Path) -> None:
        segment = _Segment(ordinal, path, self._clock())
        try:
            with open(path, "rb") as handle:
                previous: bytes | None = None
                for line in handle:
                    if previous is not None:
                        self._check_line(segment, previous, last=False)
                    previous = line
                if previous is not None:
                    self._check_line(segment, previous, last=True)
                segment.size = handle.tell()
        except OSError as exc:
            self._log.error("write-ahead log segment {} cannot be read, left in place: {!r}", path, exc)
            return
        self._segments[ordinal] = segment
        if segment.pending == 0:
            self._retire(segment)
        else:
            self._log.info("write-ahead log: {} rows to replay from {}", segment.pending, path.name)

    def _check_line(self, segment: _Segment, line: bytes, last: bool) -> None:
        try:
            decode_line(line)
        except ValueError as exc:
            segment.done.append(1)
            if not line.strip():
                return  # an empty line holds nothing
            if last:
                self._log.warning("{}: last line torn (a write cut short), skipped: {}", segment.path.name, exc)
            else:
                segment.damaged = True
                self._log.error("{}: line {} unreadable, skipped; the file will be kept as .damaged: {}",
                                segment.path.name, len(segment.done), exc)
        else:
            segment.done.append(0)
            segment.pending += 1

    def close(self) -> None:
        """Fsync and close the current segment; delete it if every row in it is done. Segments
        holding rows not done stay for the next process. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._current is not None:
                self._seal(self._current)
        finally:
            if self._lock_key is not None:
                _release_directory(self._lock_key)
                self._lock_key = None

    # -- writing ------------------------------------------------------------------------------

    def append(self, rows: Sequence[Any]) -> list[Position | None]:
        """Write ``rows`` to the current segment (one ``write``); their positions, in order.

        A row that cannot be encoded gets ``None`` (it is not in the log; the caller keeps it).
        OSError if the write fails: then none of the rows count as logged, and the next append
        starts a new segment (a half-written line never gets another line glued to it).
        """
        if self._closed or not self._opened:
            raise OSError("write-ahead log is not open")
        encoded: list[bytes | None] = []
        for row in rows:
            try:
                encoded.append(encode_row(row))
            except (TypeError, ValueError) as exc:
                self._log.error("row cannot be written to the write-ahead log (kept in memory only): {!r}: {}",
                                row, exc)
                encoded.append(None)
        data = b"".join(line for line in encoded if line is not None)
        if not data:
            return [None] * len(encoded)
        segment = self._current or self._new_segment()
        try:
            _write_all(segment.fd, data)
        except OSError:
            self._abandon(segment)
            raise
        positions: list[Position | None] = []
        offset = segment.size
        for line in encoded:
            if line is None:
                positions.append(None)
                continue
            positions.append(Position(segment.ordinal, len(segment.done), offset))
            segment.done.append(0)
            offset += len(line)
        segment.pending += sum(1 for p in positions if p is not None)
        segment.size = offset
        segment.dirty = True
        if len(segment.done) >= self.max_segment_rows or segment.size >= self.max_segment_bytes:
            self._seal(segment)
        return positions

    def sync(self) -> None:
        """Fsync everything appended since the last sync (and new segment files' directory entries).
        OSError if the disk refuses."""
        segment = self._current
        if segment is not None and segment.dirty and segment.fd is not None:
            os.fsync(segment.fd)
            segment.dirty = False
        if self._dir_dirty:
            _fsync_directory(self.directory)
            self._dir_dirty = False

    def rotate_if_old(self) -> None:
        """Seal the current segment if it is older than ``max_segment_age`` (call it on a timer): a
        quiet log does not keep one file open, and finished rows get their file deleted."""
        segment = self._current
        if segment is not None and self._clock() - segment.created >= self.max_segment_age:
            self._seal(segment)

    def done(self, positions: Iterator[Position | None] | Sequence[Position | None]) -> None:
        """Mark rows as finished with (committed or refused). Idempotent per row; ``None`` ignored.
        Deletes every segment no longer appended to whose rows are all done."""
        touched: dict[int, _Segment] = {}
        for position in positions:
            if position is None:
                continue
            segment = self._segments.get(position.segment)
            if segment is None or position.line >= len(segment.done) or segment.done[position.line]:
                continue
            segment.done[position.line] = 1
            segment.pending -= 1
            touched[segment.ordinal] = segment
        for segment in touched.values():
            if segment.pending == 0 and segment is not self._current:
                self._retire(segment)

    # -- reading --------------------------------------------------------------------------------

    def rows(self, start: Position | None = None) -> Iterator[tuple[Position, Any]]:
        """Every row not yet done from ``start`` on (from the oldest segment when None), in order.
        Reads the files; do not append or mark rows done while iterating."""
        for position, row, _ in self._iterate(start):
            yield position, row

    def scan(self, start: Position | None, accept: Callable[[Any], bool], limit: int
             ) -> tuple[list[tuple[Position, Any]], Position | None]:
        """Up to ``limit`` rows not done, from ``start`` on, for which ``accept(row)`` is true, and
        where to continue: the position after the last row returned, or None if the log was read to
        its end (every such row is in the result)."""
        found: list[tuple[Position, Any]] = []
        if limit <= 0:
            return found, start
        iterator = self._iterate(start)
        try:
            for position, row, length in iterator:
                if accept(row):
                    found.append((position, row))
                    if len(found) >= limit:
                        return found, Position(position.segment, position.line + 1, position.offset + length)
        finally:
            iterator.close()
        return found, None

    def _iterate(self, start: Position | None) -> Iterator[tuple[Position, Any, int]]:
        for segment in list(self._segments.values()):
            if start is not None and segment.ordinal < start.segment:
                continue
            if segment.ordinal not in self._segments:
                continue  # retired meanwhile
            if start is not None and segment.ordinal == start.segment:
                yield from self._segment_rows(segment, start.line, start.offset)
            else:
                yield from self._segment_rows(segment, 0, 0)

    def _segment_rows(self, segment: _Segment, line: int, offset: int) -> Iterator[tuple[Position, Any, int]]:
        try:
            handle = open(segment.path, "rb")
        except FileNotFoundError:
            self._log.error("write-ahead log segment {} vanished; {} rows in it were not done",
                            segment.path, segment.pending)
            return
        with handle:
            handle.seek(offset)
            tracked = len(segment.done)
            for raw in handle:
                if line >= tracked:
                    break  # bytes of a failed append: not rows of this log
                if not segment.done[line]:
                    try:
                        row = decode_line(raw)
                    except ValueError:
                        pass  # reported when the segment was loaded
                    else:
                        yield Position(segment.ordinal, line, offset), row, len(raw)
                line += 1
                offset += len(raw)

    # -- figures ------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self._segments.values())

    def stats(self) -> WalStats:
        return WalStats(len(self._segments), sum(s.size for s in self._segments.values()), self.pending)

    # -- segments -----------------------------------------------------------------------------

    def _new_segment(self) -> _Segment:
        seq = self._next_seq
        path = self.directory / f"wal-{seq:012d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._next_seq = seq + 1
        segment = _Segment(seq, path, self._clock())
        segment.fd = fd
        self._segments[seq] = segment
        self._current = segment
        self._dir_dirty = True
        return segment

    def _seal(self, segment: _Segment) -> None:
        """No more appends to ``segment``: fsync, close; delete it if all its rows are done."""
        if segment is self._current:
            self._current = None
        fd, segment.fd = segment.fd, None
        if fd is not None:
            try:
                if segment.dirty:
                    os.fsync(fd)
                    segment.dirty = False
                if self._dir_dirty:
                    _fsync_directory(self.directory)
                    self._dir_dirty = False
            except OSError as exc:
                self._log.error("write-ahead log: fsync of {} failed: {!r}", segment.path.name, exc)
            finally:
                os.close(fd)
        if segment.pending == 0:
            self._retire(segment)

    def _abandon(self, segment: _Segment) -> None:
        """A write to ``segment`` failed: appends go to a new segment from now on."""
        self._log.error("write-ahead log: write to {} failed; continuing in a new segment", segment.path.name)
        self._seal(segment)

    def _retire(self, segment: _Segment) -> None:
        """Every row of ``segment`` is done: delete its file (keep it as .damaged if a line was bad)."""
        self._segments.pop(segment.ordinal, None)
        try:
            if segment.damaged:
                target = segment.path.with_name(segment.path.name + ".damaged")
                os.replace(segment.path, target)
                self._log.error("write-ahead log: {} had unreadable lines; kept as {}", segment.path.name, target.name)
            else:
                segment.path.unlink(missing_ok=True)
        except OSError as exc:
            self._log.error("write-ahead log: cannot remove finished segment {}: {!r}", segment.path, exc)



def _write_all(fd: int | None, data: bytes) -> None:
    if fd is None:
        raise OSError("segment is not open")
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Directory locks held by this process: realpath -> [fd of the lock file, logs using it].
_LOCKS: dict[str, list[int]] = {}
_LOCKS_GUARD = threading.Lock()


def _acquire_directory(directory: Path) -> str:
    key = os.path.realpath(directory)
    with _LOCKS_GUARD:
        entry = _LOCKS.get(key)
        if entry is not None:
            entry[1] += 1
            return key
        fd = os.open(os.path.join(key, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WalInUse(f"write-ahead log directory {directory} is in use by another process (pid {holder})") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _LOCKS[key] = [fd, 1]
        return key


def _release_directory(key: str) -> None:
    with _LOCKS_GUARD:
        entry = _LOCKS.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _LOCKS[key]
            os.close(entry[0])  # releases the lock; the file stays (deleting it would race)
