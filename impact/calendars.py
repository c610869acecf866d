"""Event-time alignment on each exchange's own calendar.

Why this module exists
----------------------
An event has one instant but a different day 0 on every exchange. The rule used
throughout `impact`:

    day 0 of an event on an exchange is the first session of that exchange
    whose close is at or after the event's timestamp.

So news during a session belongs to that session; news after the close, on a
weekend or on a holiday belongs to the next session. The DeepSeek weekend news
(25-26 January 2025) is day 0 on 2025-01-27 on NYSE but on 2025-01-31 on KRX,
which was closed from 27 to 30 January.

Relative days count the sessions of the exchange (never calendar days), and a
session for which a security has no price stays in the frame as an explicit gap.

Sessions, opens and closes (with early closes and late opens) come from the
``exchange_calendars`` package. Calendars are built for the span a study needs,
not for the package's default span, so old events work and an event after the
calendar's end fails with a clear message instead of returning nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from impact.errors import DataError


@functools.cache
def known_exchanges() -> tuple[str, ...]:
    """Names of the exchange calendars that can be used (e.g. ``XNYS``, ``XKRX``)."""
    return tuple(sorted(xcals.get_calendar_names(include_aliases=False)))


@dataclass(frozen=True)
class Sessions:
    """An exchange's sessions over a span, with their UTC opens and closes."""

    exchange: str
    #: Session dates (exchange-local), ascending.
    dates: tuple[date, ...]
    #: Session opens, UTC, as numpy datetime64[ns].
    opens: np.ndarray
    #: Session closes, UTC, as numpy datetime64[ns].
    closes: np.ndarray

    def index_of(self, d: date) -> int | None:
        """Position of a session date, or None if ``d`` is not a session."""
        return self._index.get(d)

    @functools.cached_property
    def _index(self) -> dict[date, int]:
        return {d: i for i, d in enumerate(self.dates)}

    def __len__(self) -> int:
        return len(self.dates)


@functools.lru_cache(maxsize=64)
def sessions(exchange: str, start: date, end: date) -> Sessions:
    """Sessions of an exchange between two dates (both included).

    Parameters
    ----------
    exchange
        An exchange_calendars name such as ``XNYS`` or ``XKRX``.
    start, end
        The span.

    Returns
    -------
    Sessions

    Raises
    ------
    DataError
        If the calendar does not cover the span.
    """
    try:
        cal = xcals.get_calendar(
            exchange, start=pd.Timestamp(start), end=pd.Timestamp(end)
        )
    except Exception as exc:  # exchange_calendars raises several types for bad bounds
        raise DataError(
            f"the {exchange} calendar cannot cover {start} to {end}: {exc}. "
            f"Narrow the price range or the windows."
        ) from None
    sess = cal.sessions  # exactly the sessions in [start, end]
    opens = cal.opens.loc[sess].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    closes = cal.closes.loc[sess].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    return Sessions(
        exchange=exchange,
        dates=tuple(ts.date() for ts in sess),
        opens=opens,
        closes=closes,
    )


def _utc64(ts: datetime) -> np.datetime64:
    if ts.tzinfo is None:
        raise ValueError("an event timestamp must be time-zone aware")
    return np.datetime64(pd.Timestamp(ts).tz_convert("UTC").tz_localize(None), "ns")


@dataclass(frozen=True)
class Alignment:
    """Where an event falls on one exchange."""

    event_id: str
    exchange: str
    #: The event's instant (aware).
    ts: datetime
    #: Day 0: the first session closing at or after ``ts``.
    day0: date
    #: That session's open and close, UTC (naive datetimes).
    day0_open_utc: datetime
    day0_close_utc: datetime
    #: Hours from the event to day 0's close (>= 0).
    hours_to_close: float
    #: True when the event falls while day 0's session is open.
    during_session: bool
    #: Weekdays between the event's local date on this exchange and day 0 that were not sessions.
    closed_weekdays: int
    #: Calendar days from the event's local date on this exchange to day 0.
    calendar_days: int


def align(event_id: str, ts: datetime, sess: Sessions, tz: str) -> Alignment:
    """Map an event's instant to day 0 on an exchange.

    Parameters
    ----------
    event_id
        For messages.
    ts
        The event's instant, time-zone aware.
    sess
        The exchange's sessions (must extend past the event).
    tz
        The exchange's time zone (to count closed weekdays in local dates).

    Returns
    -------
    Alignment

    Raises
    ------
    DataError
        If no session of ``sess`` closes at or after ``ts``.
    """
    t = _utc64(ts)
    i = int(np.searchsorted(sess.closes, t, side="left"))
    if i >= len(sess):
        last = sess.dates[-1] if sess.dates else None
        raise DataError(
            f"event '{event_id}' at {ts.isoformat()} is after the last {sess.exchange} "
            f"session available ({last}): extend the price range or check the date"
        )
    open_utc = pd.Timestamp(sess.opens[i]).to_pydatetime()
    close_utc = pd.Timestamp(sess.closes[i]).to_pydatetime()
    hours = float((sess.closes[i] - t) / np.timedelta64(1, "h"))
    during = bool(sess.opens[i] <= t <= sess.closes[i])
    local_date = pd.Timestamp(ts).tz_convert(tz).date()
    day0 = sess.dates[i]
    closed = 0
    d = local_date
    while d < day0:
        if d.weekday() < 5 and sess.index_of(d) is None:
            closed += 1
        d += timedelta(days=1)
    return Alignment(
        event_id=event_id,
        exchange=sess.exchange,
        ts=ts,
        day0=day0,
        day0_open_utc=open_utc,
        day0_close_utc=close_utc,
        hours_to_close=hours,
        during_session=during,
        closed_weekdays=closed,
        calendar_days=(day0 - local_date).days,
    )


def exchange_tz(exchange: str) -> str:
    """The IANA time zone of an exchange."""
    return str(xcals.get_calendar(exchange).tz)


def day0(ts: datetime, exchange: str) -> date:
    """Day 0 of an instant on an exchange (convenience for one-off use).

    Parameters
    ----------
    ts
        Time-zone aware instant.
    exchange
        An exchange_calendars name.

    Returns
    -------
    date
        The first session whose close is at or after ``ts``.
    """
    d = pd.Timestamp(ts).tz_convert("UTC").date()
    # one cached calendar per year of interest
    sess = sessions(exchange, date(d.year - 1, 12, 1), date(d.year + 1, 1, 31))
    return align("-", ts, sess, exchange_tz(exchange)).day0


def align_factor(
    dates: tuple[date, ...] | list[date],
    sess: Sessions,
    factor_sess: Sessions,
    factor_returns: dict[date, float],
    lag: int = 0,
) -> np.ndarray:
    """A factor's returns aligned on a security's sessions, across calendars.

    For each security session, the factor's return compounded over the factor
    sessions that closed after the security's previous close and at or before its
    close: what the factor did between the two prices the security's return
    compares. A KRX session gets the New York session(s) that closed since the
    previous KRX close: usually the previous US day, and on 2025-01-31, after the
    Lunar New Year closure, the five New York sessions of 24 (it closed after KRX's
    close that Friday) and 27 to 30 January. A
    return not yet known at the security's close is never used. ``lag`` moves the
    factor sessions back by that many sessions. An interval in which no factor
    session closed gives 0; a missing factor return gives NaN.

    Parameters
    ----------
    dates
        Security session dates (all in ``sess``).
    sess, factor_sess
        The security's and the factor's exchange sessions.
    factor_returns
        Factor return by factor session date (missing dates give NaN).
    lag
        Factor sessions back.

    Returns
    -------
    numpy.ndarray
        One value per date.
    """
    out = np.full(len(dates), np.nan)
    for i, d in enumerate(dates):
        k = sess.index_of(d)
        if k is None or k == 0:
            continue
        lo = int(np.searchsorted(factor_sess.closes, sess.closes[k - 1], side="right")) - lag
        hi = int(np.searchsorted(factor_sess.closes, sess.closes[k], side="right")) - lag
        if lo < 0:
            continue
        level = 1.0
        for j in range(lo, hi):
            r = factor_returns.get(factor_sess.dates[j], np.nan)
            level *= 1.0 + r
        out[i] = level - 1.0
    return out
