"""Event-time alignment: day 0 is the first session closing at or after the event."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
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


def test_factor_alignment_compounds_the_sessions_between_two_closes() -> None:
    from impact.calendars import align_factor

    krx = sessions("XKRX", date(2025, 1, 1), date(2025, 2, 28))
    nyse = sessions("XNYS", date(2025, 1, 1), date(2025, 2, 28))
    # a distinct return per New York session: 1% times the day of the month
    rets = {d: d.day / 100 for d in nyse.dates}
    days = [date(2025, 1, 20), date(2025, 1, 21), date(2025, 1, 24), date(2025, 1, 31)]
    got = align_factor(days, krx, nyse, rets)
    # KRX Mon 01-20: since KRX's Fri 01-17 close, only NYSE Fri 01-17 closed
    assert got[0] == pytest.approx(0.17)
    # KRX Tue 01-21: NYSE was shut on Mon 01-20 (MLK day): nothing closed in between
    assert got[1] == 0.0
    # KRX Fri 01-24: NYSE Thu 01-23 (Fri 01-24 closes after KRX's close)
    assert got[2] == pytest.approx(0.23)
    # KRX Fri 01-31 after the closure: NYSE 01-24, 27, 28, 29, 30 compounded
    expected = (1.24 * 1.27 * 1.28 * 1.29 * 1.30) - 1
    assert got[3] == pytest.approx(expected)
    # lag 1 moves the New York sessions back by one
    lagged = align_factor(days, krx, nyse, rets, lag=1)
    assert lagged[0] == pytest.approx(0.16)
    assert lagged[3] == pytest.approx(1.23 * 1.24 * 1.27 * 1.28 * 1.29 - 1)
    # a missing factor return is NaN, not zero
    rets.pop(date(2025, 1, 28))
    assert np.isnan(align_factor([date(2025, 1, 31)], krx, nyse, rets)[0])


def test_same_exchange_factor_is_the_same_session() -> None:
    from impact.calendars import align_factor

    nyse = sessions("XNYS", date(2025, 1, 1), date(2025, 2, 28))
    rets = {d: d.day / 100 for d in nyse.dates}
    got = align_factor([date(2025, 1, 27), date(2025, 1, 21)], nyse, nyse, rets)
    assert list(got) == pytest.approx([0.27, 0.21])
