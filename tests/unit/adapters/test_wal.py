"""The write-ahead log: append, fsync in batches, rotation, deletion only when done, torn lines,
replay order. Real files in tmp_path; a fake clock for segment age."""

from __future__ import annotations

import os

import pytest

from tickstock.adapters.disk import wal as wal_module
from tickstock.adapters.disk.wal import Position, WriteAheadLog
from tickstock.messages.bars import Bar
from tickstock.messages.records import PatternRecord
from tickstock.messages.spill import decode_rows, encode_rows

M = 1_700_000_040


class Log:
    """Records what the log says, by level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str):
        return lambda message, *args: self.lines.append((level, message.format(*args)))

    def at(self, level: str) -> list[str]:
        return [text for lvl, text in self.lines if lvl == level]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def bar(i: int, symbol: str = "AAPL") -> Bar:
    return Bar(symbol, M + 60 * i, 1.0, 2.0, 0.5, 1.5, 100 + i, 3, session_id="s1")


def pattern(i: int) -> PatternRecord:
    return PatternRecord("AAPL", "Doji", 0.9, M + i, {"n": i}, None, (1.0, 2.0), row_id=f"id-{i}")


def opened(path, **kwargs) -> tuple[WriteAheadLog, Log]:
    log = Log()
    kwargs.setdefault("clock", Clock())
    wal = WriteAheadLog(path, log=log, **kwargs)
    wal.open()
    return wal, log


def segment_files(path) -> list[str]:
    """Files in the log directory but its lock file."""
    return sorted(p.name for p in path.iterdir() if p.name != ".lock")


def test_append_writes_every_row_to_disk_before_returning_in_order(tmp_path):
    wal, _ = opened(tmp_path)
    rows = [bar(0), pattern(1), bar(2)]
    positions = wal.append(rows)
    assert [p.line for p in positions] == [0, 1, 2] and len({p.segment for p in positions}) == 1
    [name] = segment_files(tmp_path)
    # On disk already (no close, no sync): another reader sees the rows, exactly.
    assert list(decode_rows(tmp_path / name)) == rows
    assert list(wal.rows()) == list(zip(positions, rows))
    assert wal.stats().pending == 3 and wal.stats().segments == 1
    assert wal.stats().bytes == (tmp_path / name).stat().st_size


def test_fsync_happens_on_sync_only_and_once_per_batch(tmp_path, monkeypatch):
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(wal_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    wal, _ = opened(tmp_path)
    for i in range(5):
        wal.append([bar(i)])
    assert synced == []  # appends do not fsync
    wal.sync()
    assert len(synced) == 2  # the segment, and the directory holding its new entry
    wal.sync()
    assert len(synced) == 2  # nothing appended since: nothing to sync
    wal.append([bar(5)])
    wal.sync()
    assert len(synced) == 3  # the segment only


def test_segments_rotate_by_row_count(tmp_path):
    wal, _ = opened(tmp_path, max_segment_rows=3)
    positions = [wal.append([bar(i)])[0] for i in range(7)]
    assert [p.segment for p in positions] == [1, 1, 1, 2, 2, 2, 3]
    assert segment_files(tmp_path) == ["wal-000000000001.jsonl", "wal-000000000002.jsonl", "wal-000000000003.jsonl"]


def test_segments_rotate_by_size(tmp_path):
    wal, _ = opened(tmp_path, max_segment_bytes=1)  # every append fills a segment
    first, second = wal.append([bar(0), bar(1)]), wal.append([bar(2)])
    assert {p.segment for p in first} == {1} and second[0].segment == 2


def test_segments_rotate_by_age(tmp_path):
    clock = Clock()
    wal, _ = opened(tmp_path, max_segment_age=60.0, clock=clock)
    a = wal.append([bar(0)])[0]
    clock.t += 59
    wal.rotate_if_old()
    b = wal.append([bar(1)])[0]
    clock.t += 1
    wal.rotate_if_old()
    c = wal.append([bar(2)])[0]
    assert (a.segment, b.segment, c.segment) == (1, 1, 2)


def test_a_segment_is_deleted_only_when_every_row_in_it_is_done(tmp_path):
    wal, _ = opened(tmp_path, max_segment_rows=3)
    p = wal.append([bar(0), bar(1), bar(2)])  # a full, sealed segment
    q = wal.append([bar(3)])                  # the current segment
    first = tmp_path / "wal-000000000001.jsonl"
    wal.done([p[0], p[2]])
    assert first.exists() and wal.stats().pending == 2
    wal.done([p[0], None])  # done twice and None: no effect
    assert first.exists() and wal.stats().pending == 2
    wal.done([p[1]])
    assert not first.exists()
    # The current segment stays while it may still be appended to, even when all of it is done...
    wal.done(q)
    assert segment_files(tmp_path) == ["wal-000000000002.jsonl"]
    # ...and goes when it is closed.
    wal.close()
    assert segment_files(tmp_path) == []


def test_close_keeps_every_segment_holding_a_row_not_done(tmp_path):
    wal, _ = opened(tmp_path, max_segment_rows=2)
    p = wal.append([bar(0), bar(1)])
    q = wal.append([bar(2), bar(3)])
    r = wal.append([bar(4)])
    wal.done(p)
    wal.done(q[:1])
    wal.close()
    assert segment_files(tmp_path) == ["wal-000000000002.jsonl", "wal-000000000003.jsonl"]
    successor, _ = opened(tmp_path)
    assert [row for _, row in successor.rows()] == [bar(2), bar(3), bar(4)]  # done-ness is not on disk
    assert r[0].segment == 3


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_rest_replayed(tmp_path):
    wal, _ = opened(tmp_path)
    wal.append([bar(0), bar(1)])
    wal.sync()
    [name] = segment_files(tmp_path)
    # kill -9 in the middle of writing the third line:
    line = encode_rows([bar(2)])
    with open(tmp_path / name, "ab") as handle:
        handle.write(line[: len(line) // 2])
    successor, log = opened(tmp_path)
    assert [row for _, row in successor.rows()] == [bar(0), bar(1)]
    assert successor.pending == 2
    assert any("torn" in text for text in log.at("warning")) and log.at("error") == []
    # Once its readable rows are done, the segment goes like any other (the torn row was never logged).
    successor.done(position for position, _ in list(successor.rows()))
    assert segment_files(tmp_path) == []


def test_a_torn_line_ending_in_a_newline_is_skipped_too(tmp_path):
    (tmp_path / "wal-000000000001.jsonl").write_bytes(encode_rows([bar(0)]) + b'{"kind": "Bar", "row": {"sym\n')
    wal, log = opened(tmp_path)
    assert [row for _, row in wal.rows()] == [bar(0)]
    assert len(log.at("warning")) == 1


def test_a_bad_line_inside_a_segment_skips_that_line_and_keeps_the_file_as_damaged(tmp_path):
    (tmp_path / "wal-000000000001.jsonl").write_bytes(encode_rows([bar(0)]) + b"garbage\n" + encode_rows([bar(1)]))
    wal, log = opened(tmp_path)
    rows = list(wal.rows())
    assert [row for _, row in rows] == [bar(0), bar(1)]
    assert any("line 2" in text for text in log.at("error"))
    wal.done(position for position, _ in rows)
    assert segment_files(tmp_path) == ["wal-000000000001.jsonl.damaged"]


def test_replay_order_is_legacy_spill_files_then_segments_by_number_then_lines_in_order(tmp_path):
    (tmp_path / "spill-1760000000.000000-a.jsonl").write_bytes(encode_rows([bar(0), bar(1)]))
    (tmp_path / "spill-1760000001.000000-b.jsonl").write_bytes(encode_rows([bar(2)]))
    (tmp_path / "wal-000000000010.jsonl").write_bytes(encode_rows([bar(5), bar(6)]))
    (tmp_path / "wal-000000000002.jsonl").write_bytes(encode_rows([bar(3), pattern(4)]))
    (tmp_path / "unrelated.txt").write_text("not ours")
    wal, _ = opened(tmp_path)
    assert wal.pending == 7
    new = wal.append([bar(7)])
    assert new[0].segment == 11  # new rows go to a new segment after every existing one
    rows = list(wal.rows())
    assert [row for _, row in rows] == [bar(0), bar(1), bar(2), bar(3), pattern(4), bar(5), bar(6), bar(7)]
    assert [p for p, _ in rows] == sorted(p for p, _ in rows)
    # Replayed files stay on disk until their rows are done.
    assert "spill-1760000000.000000-a.jsonl" in segment_files(tmp_path)
    wal.done([rows[0][0], rows[1][0]])
    assert "spill-1760000000.000000-a.jsonl" not in segment_files(tmp_path)
    assert "unrelated.txt" in segment_files(tmp_path)


def test_a_process_killed_without_close_leaves_everything_for_the_next(tmp_path):
    first, _ = opened(tmp_path)
    first.append([bar(0), bar(1)])
    first.done(first.append([bar(2)]))  # committed, but the process dies before the segment is retired
    # No close(): the process is gone. A new log on the same directory:
    second, _ = opened(tmp_path)
    assert [row for _, row in second.rows()] == [bar(0), bar(1), bar(2)]  # replay may repeat committed rows
    assert second.append([bar(3)])[0].segment == 2


def test_empty_and_fully_torn_files_are_removed_at_open(tmp_path):
    (tmp_path / "wal-000000000001.jsonl").write_bytes(b"")
    (tmp_path / "wal-000000000002.jsonl").write_bytes(b'{"kind": "Bar"')
    wal, _ = opened(tmp_path)
    assert wal.pending == 0 and segment_files(tmp_path) == []
    assert wal.append([bar(0)])[0].segment == 3  # numbers are never reused


def test_scan_filters_limits_and_says_where_to_continue(tmp_path):
    wal, _ = opened(tmp_path, max_segment_rows=4)
    rows = [bar(0), pattern(1), bar(2), pattern(3), bar(4), bar(5), pattern(6)]
    wal.append(rows)
    wal.append([bar(7)])
    is_bar = lambda row: isinstance(row, Bar)
    found, resume = wal.scan(None, is_bar, 2)
    assert [row for _, row in found] == [bar(0), bar(2)] and resume is not None
    found, resume = wal.scan(resume, is_bar, 2)
    assert [row for _, row in found] == [bar(4), bar(5)] and resume is not None
    found, resume = wal.scan(resume, is_bar, 10)
    assert [row for _, row in found] == [bar(7)] and resume is None  # read to the end


def test_scan_skips_rows_already_done(tmp_path):
    wal, _ = opened(tmp_path)
    positions = wal.append([bar(0), bar(1), bar(2)])
    wal.done([positions[1]])
    found, _ = wal.scan(None, lambda row: True, 10)
    assert [row for _, row in found] == [bar(0), bar(2)]


def test_a_failed_write_raises_and_the_next_append_starts_a_new_segment(tmp_path, monkeypatch):
    wal, _ = opened(tmp_path)
    wal.append([bar(0)])
    real_write = os.write

    def half_then_fail(fd, data):
        real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(wal_module.os, "write", half_then_fail)
    with pytest.raises(OSError):
        wal.append([bar(1)])
    monkeypatch.setattr(wal_module.os, "write", real_write)
    p = wal.append([bar(2)])
    assert p[0].segment == 2
    assert [row for _, row in wal.rows()] == [bar(0), bar(2)]  # the half line is not a row
    successor, _ = opened(tmp_path)
    assert [row for _, row in successor.rows()] == [bar(0), bar(2)]


def test_a_row_that_cannot_be_encoded_gets_no_position(tmp_path):
    wal, log = opened(tmp_path)
    bad = Bar("AAPL", M, 1.0, 1.0, 1.0, 1.0, 1, session_id=object())  # not JSON
    positions = wal.append([bar(0), bad, bar(1)])
    assert positions[1] is None and positions[0] is not None and positions[2] is not None
    assert [row for _, row in wal.rows()] == [bar(0), bar(1)]
    assert log.at("error")


def test_append_before_open_or_after_close_raises(tmp_path):
    wal = WriteAheadLog(tmp_path, log=Log())
    with pytest.raises(OSError):
        wal.append([bar(0)])
    wal.open()
    wal.close()
    with pytest.raises(OSError):
        wal.append([bar(0)])


def test_open_fails_when_the_directory_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        WriteAheadLog(blocker / "wal", log=Log()).open()


def hold_lock_elsewhere(directory):
    """The directory's lock held through another open file: as another process would hold it."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, b"4242\n", 0)
    return fd


def test_a_directory_in_use_by_another_process_is_refused(tmp_path):
    from tickstock.adapters.disk import WalInUse

    (tmp_path / "wal-000000000001.jsonl").write_bytes(encode_rows([bar(0)]))
    fd = hold_lock_elsewhere(tmp_path)
    try:
        with pytest.raises(WalInUse, match="4242"):
            WriteAheadLog(tmp_path, log=Log()).open()
        assert segment_files(tmp_path) == ["wal-000000000001.jsonl"]  # untouched
    finally:
        os.close(fd)
    wal, _ = opened(tmp_path)  # free again
    assert wal.pending == 1


def test_logs_of_one_process_share_the_directory_and_the_last_close_releases_it(tmp_path):
    import fcntl

    first, _ = opened(tmp_path)
    second, _ = opened(tmp_path)  # e.g. a restarted actor while its dead predecessor's log is open
    first.close()
    probe = os.open(tmp_path / ".lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # still held for `second`
        second.close()
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    finally:
        os.close(probe)
