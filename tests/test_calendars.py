"""Event-time alignment: day 0 is the first session closing at or after the event."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from impact.calendars import align, day0, exchange_tz, sessions

NY = ZoneInfo("America/New_York")
SEOUL = ZoneInfo("Asia/Seoul")


def _d0(ts: datetime, exchange: str) -> date:
    return day0(ts, exchange)


@pytest.mark.parametrize(
    ("ts", "exchange", "expected"),
    [
        # inside a session: that session
        (datetime(2025, 1, 27, 11, 0, tzinfo=NY), "XNYS", date(2025, 1, 27)),
        (datetime(2025, 1, 31, 10, 0, tzinfo=SEOUL), "XKRX", date(2025, 1, 31)),
        # exactly at the close: that session (close at or after)
        (datetime(2025, 1, 27, 16, 0, tzinfo=NY), "XNYS", date(2025, 1, 27)),
        (datetime(2025, 1, 31, 15, 30, tzinfo=SEOUL), "XKRX", date(2025, 1, 31)),
        # one minute after the close: the next session
        (datetime(2025, 1, 27, 16, 1, tzinfo=NY), "XNYS", date(2025, 1, 28)),
        (datetime(2025, 1, 24, 15, 31, tzinfo=SEOUL), "XKRX", date(2025, 1, 31)),
        # before the open: the same day's session
        (datetime(2025, 1, 28, 7, 0, tzinfo=NY), "XNYS", date(2025, 1, 28)),
        # weekend: the next session
        (datetime(2025, 1, 25, 12, 0, tzinfo=NY), "XNYS", date(2025, 1, 27)),
        (datetime(2025, 1, 26, 9, 0, tzinfo=SEOUL), "XKRX", date(2025, 1, 31)),
        # holiday: Martin Luther King Jr. Day 2025-01-20
        (datetime(2025, 1, 20, 12, 0, tzinfo=NY), "XNYS", date(2025, 1, 21)),
        # the KRX closure 2025-01-27..30 (temporary holiday + Seollal)
        (datetime(2025, 1, 27, 10, 0, tzinfo=SEOUL), "XKRX", date(2025, 1, 31)),
        (datetime(2025, 1, 29, 12, 0, tzinfo=SEOUL), "XKRX", date(2025, 1, 31)),
        (datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL), "XKRX", date(2025, 1, 31)),
        # another time zone: 18:22 KST on 01-30 is 04:22 in New York, before NYSE opens
        (datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL), "XNYS", date(2025, 1, 30)),
        # Beijing noon on 2025-01-20 is Sunday night in New York -> Tuesday (Monday holiday)
        (datetime(2025, 1, 20, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai")), "XNYS",
         date(2025, 1, 21)),
        # New York afternoon is the next morning in Seoul: same KRX calendar day session
        (datetime(2025, 1, 21, 15, 0, tzinfo=NY), "XKRX", date(2025, 1, 22)),
        # early close: NYSE closed at 13:00 on 2024-11-29 (day after Thanksgiving)
        (datetime(2024, 11, 29, 13, 30, tzinfo=NY), "XNYS", date(2024, 12, 2)),
        (datetime(2024, 11, 29, 12, 30, tzinfo=NY), "XNYS", date(2024, 11, 29)),
    ],
)
def test_day0(ts: datetime, exchange: str, expected: date) -> None:
    assert _d0(ts, exchange) == expected


def test_alignment_details_for_the_krx_closure() -> None:
    sess = sessions("XKRX", date(2025, 1, 1), date(2025, 2, 28))
    ts = datetime(2025, 1, 25, 12, 0, tzinfo=NY)  # the weekend news
    a = align("shock", ts, sess, exchange_tz("XKRX"))
    assert a.day0 == date(2025, 1, 31)
    assert not a.during_session
    # Sunday 2025-01-26 02:00 KST -> Friday 2025-01-31 15:30 KST: 5 days and 13.5 hours
    assert a.hours_to_close == pytest.approx(5 * 24 + 13.5)
    # Monday 27 .. Thursday 30 were weekdays without a session
    assert a.closed_weekdays == 4


def test_relative_days_count_sessions_not_calendar_days() -> None:
    sess = sessions("XKRX", date(2025, 1, 1), date(2025, 2, 28))
    i24 = sess.index_of(date(2025, 1, 24))
    i31 = sess.index_of(date(2025, 1, 31))
    assert i24 is not None and i31 is not None
    assert i31 - i24 == 1  # seven calendar days, one session
    assert sess.index_of(date(2025, 1, 28)) is None


def test_event_after_the_last_session_fails_clearly() -> None:
    from impact.errors import DataError

    sess = sessions("XNYS", date(2025, 1, 2), date(2025, 1, 10))
    with pytest.raises(DataError, match="after the last XNYS session"):
        align("late", datetime(2025, 1, 20, tzinfo=NY), sess, "America/New_York")


def test_naive_timestamp_is_refused() -> None:
    sess = sessions("XNYS", date(2025, 1, 2), date(2025, 1, 31))
    with pytest.raises(ValueError, match="time-zone aware"):
        align("naive", datetime(2025, 1, 6, 12), sess, "America/New_York")
