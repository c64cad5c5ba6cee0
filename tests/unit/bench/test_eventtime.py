"""The day scenario's event time: the stamp map, deadlines mapped to the wall clock, speed limits,
the replayed session from the calendar, and when the last minute can close."""

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickstock.bench.eventtime import (
    DEFAULT_SPEED, EventMap, check_speed, default_speed, last_close_wall, max_speed, regular_session, ticks_per_bar,
)

OPEN = datetime(2025, 3, 12, 13, 30, tzinfo=timezone.utc).timestamp()  # 09:30 EDT
T0 = 1_796_000_000.25


def test_the_first_batch_is_stamped_at_the_open_and_event_time_runs_speed_times_faster():
    m = EventMap(OPEN, 60.0, T0)
    assert m.event_at(T0) == OPEN
    assert m.event_at(T0 + 1.0) == OPEN + 60          # one wall second: one event minute
    assert m.event_at(T0 + 390.0) == OPEN + 23_400    # 6.5 min wall: the whole session
    assert m.wall_at(OPEN + 23_400) == T0 + 390.0


@given(st.floats(0.5, 1000.0), st.floats(0.0, 30_000.0))
def test_wall_at_inverts_event_at(speed, offset):
    m = EventMap(OPEN, speed, T0)
    # Within a millisecond, the stamps' resolution (float epochs: ~0.2 us of wall time x speed).
    assert m.event_at(m.wall_at(OPEN + offset)) == pytest.approx(OPEN + offset, abs=1e-3)
    assert m.wall_at(OPEN + offset + 1) > m.wall_at(OPEN + offset)


def test_a_minute_s_deadline_is_its_end_plus_grace_of_event_time_mapped_to_the_wall():
    m = EventMap(OPEN, 60.0, T0)
    minute = OPEN + 60 * 10
    # The note's formula: t0 + (m + 60 + grace - open) / speed; grace counts in event seconds.
    assert m.wall_deadline(minute, 2.0) == pytest.approx(T0 + (minute + 62 - OPEN) / 60)
    assert m.event_at(m.wall_deadline(minute, 2.0)) == pytest.approx(minute + 62)


def test_a_speed_must_be_positive():
    with pytest.raises(ValueError):
        EventMap(OPEN, 0.0, T0)
    with pytest.raises(ValueError, match="> 0"):
        check_speed(-1.0, 2000, 500)


def test_every_symbol_ticks_every_event_minute():
    assert ticks_per_bar(2000, 500, 60) == 4.0
    assert max_speed(2000, 500) == 240.0              # the note's limit: R x 60 / N
    assert check_speed(240.0, 2000, 500) == 240.0
    with pytest.raises(ValueError, match=r"--speed <= 240"):
        check_speed(241.0, 2000, 500)


def test_the_default_speed_keeps_two_ticks_per_bar():
    assert default_speed(2000, 500) == DEFAULT_SPEED == 60.0
    assert default_speed(100, 500) == 6.0             # 100 x 60 / 500 / 2
    assert ticks_per_bar(100, 500, default_speed(100, 500)) == 2.0


def test_the_replayed_session_comes_from_the_calendar():
    day = regular_session("2025-03-12", now=OPEN + 86_400)
    assert (day.open, day.close) == (OPEN, OPEN + 23_400) and not day.early_close
    winter = regular_session("2025-01-08", now=OPEN)   # EST: 14:30Z
    assert winter.open == datetime(2025, 1, 8, 14, 30, tzinfo=timezone.utc).timestamp()
    short = regular_session("2025-11-28", now=OPEN + 365 * 86_400)  # the day after Thanksgiving
    assert short.early_close and short.close - short.open == 210 * 60


def test_a_day_without_a_session_or_not_yet_closed_is_refused():
    with pytest.raises(ValueError, match="no XNYS session"):
        regular_session("2025-03-15", now=OPEN + 30 * 86_400)      # a Saturday
    with pytest.raises(ValueError, match="no XNYS session"):
        regular_session("2025-12-25", now=OPEN + 365 * 86_400)
    with pytest.raises(ValueError, match="closes after now"):
        regular_session("2025-03-12", now=OPEN + 3600)              # still trading
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        regular_session("12/03/2025", now=OPEN)


def test_the_last_minute_closes_only_after_the_feed_s_silence():
    close = OPEN + 23_400
    # The last batch at 15:59:59.9 event time: the silence (idle_after 5 s) decides, not grace.
    assert last_close_wall(1000.0, close - 0.1, close, 2.0, 5.0) == 1005.0
    # A replay that stopped far short of its close: event time runs on with the silence.
    assert last_close_wall(1000.0, close - 60, close, 2.0, 5.0) == 1062.0
