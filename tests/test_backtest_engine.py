"""The backtest engine (impact.backtest): timing without look-ahead, exits, P&L, FX, equity.

Prices are tiny synthetic frames on the real XKRX and XNYS calendars, chosen so
that using a wrong session's price would change the numbers; every expectation
is computed by hand in the test.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from impact.backtest import (
    BacktestResult,
    Candidate,
    Rules,
    Skipped,
    Trade,
    run_backtest,
    trade_pnl,
)
from impact.calendars import Sessions, sessions
from impact.errors import InputError

SEOUL = ZoneInfo("Asia/Seoul")
NY = ZoneInfo("America/New_York")
KRX = sessions("XKRX", date(2025, 1, 2), date(2025, 2, 28))
NYSE = sessions("XNYS", date(2025, 1, 2), date(2025, 2, 28))
PRICES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "prices"

BASE = Rules(
    direction="long",
    entry="open",
    holding=1,
    stop=None,
    cost_bps=0.0,
    sizing="fixed",
    notional=1000.0,
    currency="USD",
)


def frame(sess: Sessions,
          overrides: Mapping[date, tuple[float | None, float | None]] | None = None
          ) -> pl.DataFrame:
    """Prices on every session: open 100 + 2i, close 101 + 2i, unless overridden."""
    rows = []
    for i, d in enumerate(sess.dates):
        o, c = (overrides or {}).get(d, (100.0 + 2 * i, 101.0 + 2 * i))
        rows.append({"date": d, "open": o, "close": c})
    return pl.DataFrame(rows, schema={"date": pl.Date, "open": pl.Float64, "close": pl.Float64})


def px(sess: Sessions, d: date, col: str) -> float:
    i = sess.index_of(d)
    assert i is not None
    return 100.0 + 2 * i + (1.0 if col == "close" else 0.0)


def cand(ts: datetime, ticker: str = "K", exchange: str = "XKRX", currency: str = "USD",
         **kw: object) -> Candidate:
    return Candidate(event_id=kw.pop("event_id", "ev"), ticker=ticker,  # type: ignore[arg-type]
                     exchange=exchange, currency=currency, news_ts=ts, **kw)  # type: ignore[arg-type]


def run(rules: Rules, cands: list[Candidate], prices: Mapping[str, pl.DataFrame] | None = None,
        **kw: object) -> BacktestResult:
    prices = prices if prices is not None else {"K": frame(KRX), "N": frame(NYSE)}
    return run_backtest(rules, cands, sessions_of={"K": KRX, "N": NYSE}, prices=prices,
                        **kw)  # type: ignore[arg-type]


def one(res: BacktestResult) -> Trade:
    assert not res.skipped, res.skipped
    assert len(res.trades) == 1
    return res.trades[0]


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi)  # UTC naive, as the engine reports


# --------------------------------------------------------------------------- look-ahead


@pytest.mark.parametrize(("entry", "expected_time"), [
    ("open", utc(2025, 1, 31, 0, 0)),    # 09:00 KST
    ("close", utc(2025, 1, 31, 6, 30)),  # 15:30 KST
])
def test_news_after_close_during_krx_closure(entry: str, expected_time: datetime) -> None:
    # 18:22 KST on 2025-01-30: KRX closed 27..30 January; never that day's close
    t = one(run(replace(BASE, entry=entry), [cand(datetime(2025, 1, 30, 18, 22, tzinfo=SEOUL))]))
    assert t.allowed_at == utc(2025, 1, 30, 9, 22)
    assert t.entry_date == date(2025, 1, 31)
    assert t.entry_time == expected_time
    assert t.entry_price == px(KRX, date(2025, 1, 31), entry)


@pytest.mark.parametrize("entry", ["open", "close"])
def test_news_after_close_on_a_normal_wednesday_enters_next_day(entry: str) -> None:
    # Wednesday 2025-01-22, 18:22 KST: after that day's 15:30 close
    t = one(run(replace(BASE, entry=entry), [cand(datetime(2025, 1, 22, 18, 22, tzinfo=SEOUL))]))
    assert t.entry_date == date(2025, 1, 23)
    assert t.entry_price == px(KRX, date(2025, 1, 23), entry)
    assert t.entry_price != px(KRX, date(2025, 1, 22), "close")


def test_news_during_session() -> None:
    ts = datetime(2025, 1, 22, 10, 0, tzinfo=SEOUL)
    # the 09:00 open has passed: next day's open; the 15:30 close is still ahead: today's close
    assert one(run(BASE, [cand(ts)])).entry_date == date(2025, 1, 23)
    t = one(run(replace(BASE, entry="close"), [cand(ts)]))
    assert (t.entry_date, t.entry_time) == (date(2025, 1, 22), utc(2025, 1, 22, 6, 30))


def test_news_exactly_at_the_open_is_not_strictly_before_it() -> None:
    t = one(run(BASE, [cand(datetime(2025, 1, 22, 9, 0, tzinfo=SEOUL))]))
    assert t.entry_date == date(2025, 1, 23)


@pytest.mark.parametrize(("ts", "ticker", "exchange", "expected"), [
    # Martin Luther King Jr. Day, NYSE closed
    (datetime(2025, 1, 20, 12, 0, tzinfo=NY), "N", "XNYS", date(2025, 1, 21)),
    # Saturday in Seoul; KRX then closed until 31 January
    (datetime(2025, 1, 25, 12, 0, tzinfo=SEOUL), "K", "XKRX", date(2025, 1, 31)),
    # Seollal holiday itself
    (datetime(2025, 1, 29, 11, 0, tzinfo=SEOUL), "K", "XKRX", date(2025, 1, 31)),
])
def test_holiday_or_weekend_news_enters_at_next_session_open(
    ts: datetime, ticker: str, exchange: str, expected: date
) -> None:
    sess = NYSE if ticker == "N" else KRX
    t = one(run(BASE, [cand(ts, ticker=ticker, exchange=exchange)]))
    assert t.entry_date == expected
    i = sess.index_of(expected)
    assert i is not None
    assert t.entry_time == sess.opens[i].astype("datetime64[us]").astype(datetime)
    assert t.entry_price == px(sess, expected, "open")


def test_signal_known_at_nyse_close_enters_at_next_krx_open() -> None:
    # news before the KRX open of 01-21 (08:00 KST), but the signal is NVDA's
    # 2025-01-21 close (16:00 New York = 21:00 UTC): the KRX 01-21 session ended
    # before the signal was known; the next KRX open is 01-22 00:00 UTC.
    news = datetime(2025, 1, 21, 8, 0, tzinfo=SEOUL)
    known = datetime(2025, 1, 21, 16, 0, tzinfo=NY)
    # prices where the 01-21 session would give a very different P&L
    prices = {"K": frame(KRX, {date(2025, 1, 21): (50.0, 60.0),
                               date(2025, 1, 22): (200.0, 210.0)})}
    rules = replace(BASE, direction="signal")
    t = one(run(rules, [cand(news, signal=-0.08, signal_known_at=known)], prices))
    assert t.allowed_at == utc(2025, 1, 21, 21, 0)
    assert (t.entry_date, t.entry_time) == (date(2025, 1, 22), utc(2025, 1, 22, 0, 0))
    assert (t.entry_price, t.exit_price, t.exit_date) == (200.0, 210.0, date(2025, 1, 22))
    assert t.direction == -1
    assert t.pnl == pytest.approx(-1000.0 * (210 / 200 - 1), rel=1e-12)
    # close entry: not the KRX close of 01-21 (06:30 UTC, before the signal)
    t = one(run(replace(rules, entry="close"),
                [cand(news, signal=-0.08, signal_known_at=known)], prices))
    assert (t.entry_date, t.entry_price) == (date(2025, 1, 22), 210.0)
    # without the signal time the same news would have entered at the 01-21 open
    t = one(run(rules, [cand(news, signal=-0.08)], prices))
    assert (t.entry_date, t.entry_price) == (date(2025, 1, 21), 50.0)


def test_never_a_price_dated_before_allowed_at() -> None:
    # every session up to and including the news day carries a huge price; only the
    # sessions after it are normal: any earlier price would blow up the P&L
    news = datetime(2025, 1, 23, 16, 0, tzinfo=SEOUL)
    over = {d: (1e6, 1e6) for d in KRX.dates if d <= date(2025, 1, 23)}
    over[date(2025, 1, 24)] = (100.0, 104.0)
    over[date(2025, 1, 31)] = (90.0, 110.0)
    for entry, holding, exp in [("open", 2, (100.0, 110.0, date(2025, 1, 31))),
                                ("close", 1, (104.0, 110.0, date(2025, 1, 31)))]:
        rules = replace(BASE, entry=entry, holding=holding)
        res = run(rules, [cand(news)], {"K": frame(KRX, over)})
        t = one(res)
        assert t.entry_date == date(2025, 1, 24)
        assert (t.entry_price, t.exit_price, t.exit_date) == exp
        assert t.entry_time > t.allowed_at
        assert t.pnl == pytest.approx(1000.0 * (exp[1] / exp[0] - 1), rel=1e-12)


# --------------------------------------------------------------------------- exits


@pytest.mark.parametrize(("entry", "holding", "exit_date"), [
    ("open", 1, date(2025, 1, 13)),   # same session's close
    ("open", 3, date(2025, 1, 15)),   # s0 + holding - 1
    ("close", 1, date(2025, 1, 14)),  # s0 + holding
    ("close", 3, date(2025, 1, 16)),
    ("open", 5, date(2025, 1, 17)),
    ("close", 5, date(2025, 1, 20)),  # crosses a weekend: counted in sessions
])
def test_exit_timing(entry: str, holding: int, exit_date: date) -> None:
    news = datetime(2025, 1, 12, 20, 0, tzinfo=SEOUL)  # Sunday -> s0 = Monday 01-13
    t = one(run(replace(BASE, entry=entry, holding=holding), [cand(news)]))
    assert t.entry_date == date(2025, 1, 13)
    assert t.exit_date == exit_date
    assert t.exit_time == utc(exit_date.year, exit_date.month, exit_date.day, 6, 30)
    assert t.exit_price == px(KRX, exit_date, "close")
    assert t.sessions_held == holding
    assert t.exit_reason == "holding"


def test_exit_across_the_krx_closure_counts_sessions() -> None:
    news = datetime(2025, 1, 23, 18, 0, tzinfo=SEOUL)
    t = one(run(replace(BASE, holding=2), [cand(news)]))
    assert (t.entry_date, t.exit_date) == (date(2025, 1, 24), date(2025, 1, 31))


def _stop_prices(closes: list[float]) -> dict[str, pl.DataFrame]:
    days = [date(2025, 1, 13), date(2025, 1, 14), date(2025, 1, 15), date(2025, 1, 16)]
    over = {d: (100.0, c) for d, c in zip(days, closes, strict=False)}
    return {"K": frame(KRX, over)}


NEWS_SUN = datetime(2025, 1, 12, 20, 0, tzinfo=SEOUL)


def test_stop_hit_on_a_later_close() -> None:
    rules = replace(BASE, holding=4, stop=0.05)
    t = one(run(rules, [cand(NEWS_SUN)], _stop_prices([98.0, 96.0, 94.0, 120.0])))
    assert (t.exit_reason, t.exit_date, t.exit_price, t.sessions_held) == (
        "stop", date(2025, 1, 15), 94.0, 3)


def test_stop_checks_the_entry_sessions_close_for_an_open_entry() -> None:
    rules = replace(BASE, holding=4, stop=0.05)
    t = one(run(rules, [cand(NEWS_SUN)], _stop_prices([95.0, 200.0, 200.0, 200.0])))
    # exactly 5 % against: the stop is reached
    assert (t.exit_reason, t.exit_date, t.sessions_held) == ("stop", date(2025, 1, 13), 1)


def test_stop_for_close_entry_starts_at_the_next_close() -> None:
    rules = replace(BASE, entry="close", holding=2, stop=0.05)
    prices = {"K": frame(KRX, {date(2025, 1, 13): (100.0, 100.0), date(2025, 1, 14): (1.0, 97.0),
                               date(2025, 1, 15): (1.0, 90.0)})}
    t = one(run(rules, [cand(NEWS_SUN)], prices))
    assert (t.entry_price, t.exit_reason, t.exit_date, t.exit_price, t.sessions_held) == (
        100.0, "stop", date(2025, 1, 15), 90.0, 2)


def test_stop_not_hit_and_short_stop() -> None:
    prices = _stop_prices([97.0, 103.0, 96.0, 99.0])
    t = one(run(replace(BASE, holding=4, stop=0.05), [cand(NEWS_SUN)], prices))
    assert (t.exit_reason, t.exit_date, t.exit_price) == ("holding", date(2025, 1, 16), 99.0)
    # a short is stopped by a rise
    prices = _stop_prices([103.0, 106.0, 90.0, 80.0])
    t = one(run(replace(BASE, direction="short", holding=4, stop=0.05), [cand(NEWS_SUN)], prices))
    assert (t.exit_reason, t.exit_date, t.exit_price, t.direction) == (
        "stop", date(2025, 1, 14), 106.0, -1)
    assert t.gross_return == pytest.approx(-0.06, rel=1e-12)


# --------------------------------------------------------------------------- P&L and FX


def test_short_trade_with_costs_same_currency() -> None:
    prices = _stop_prices([92.0])
    rules = replace(BASE, direction="short", cost_bps=10.0, notional=5000.0)
    t = one(run(rules, [cand(NEWS_SUN)], prices))
    n, e, x, c = 5000.0, 100.0, 92.0, 10e-4
    assert t.gross_return == pytest.approx(0.08, rel=1e-12)
    assert t.pnl == pytest.approx(-n * (x / e - 1) - c * n * (1 + x / e), rel=1e-12)
    assert t.pnl == pytest.approx(400.0 - 9.6, rel=1e-12)
    assert t.cost == pytest.approx(9.6, rel=1e-12)
    assert t.net_return == pytest.approx(390.4 / 5000.0, rel=1e-12)
    assert (t.fx_entry, t.fx_exit, t.notional) == (1.0, 1.0, 5000.0)


def _fx(rows: list[tuple[datetime, float]], tz: bool = False) -> pl.DataFrame:
    df = pl.DataFrame({"date": [r[0].date() for r in rows], "rate": [r[1] for r in rows],
                       "fixing_utc": [r[0] for r in rows]},
                      schema={"date": pl.Date, "rate": pl.Float64, "fixing_utc": pl.Datetime("us")})
    if tz:
        df = df.with_columns(pl.col("fixing_utc").dt.replace_time_zone("UTC")
                             .dt.convert_time_zone("America/New_York"))
    return df


FX_ROWS = [
    (utc(2025, 1, 20, 17, 0), 1430.0),
    (utc(2025, 1, 21, 17, 0), 1440.0),  # latest at or before the 01-22 00:00 UTC entry
    (utc(2025, 1, 22, 17, 0), 1500.0),  # after the entry: not for it; latest before the exit
    (utc(2025, 1, 23, 17, 0), 2000.0),  # after the exit (01-23 06:30 UTC): never used
]


@pytest.mark.parametrize("tz", [False, True])
def test_krw_trade_converted_with_fixings_known_at_the_time(tz: bool) -> None:
    prices = {"K": frame(KRX, {date(2025, 1, 22): (200000.0, 1.0),
                               date(2025, 1, 23): (1.0, 210000.0)})}
    rules = replace(BASE, holding=2, cost_bps=5.0)
    news = datetime(2025, 1, 21, 18, 0, tzinfo=SEOUL)
    t = one(run(rules, [cand(news, currency="KRW")], prices, fx=_fx(FX_ROWS, tz)))
    assert (t.entry_date, t.exit_date) == (date(2025, 1, 22), date(2025, 1, 23))
    assert (t.fx_entry, t.fx_exit) == (1440.0, 1500.0)
    n, a = 1000.0, 1000.0 * 1440.0
    q = a / 200000.0
    gross = q * (210000.0 - 200000.0)
    costs = 5e-4 * (q * 200000.0 + q * 210000.0)
    assert t.pnl == pytest.approx((a + gross - costs) / 1500.0 - n, rel=1e-12)
    assert t.cost == pytest.approx(costs / 1500.0, rel=1e-12)
    # by hand: 1,440,000 KRW + 72,000 - 1,476 = 1,510,524 KRW / 1500 = 1007.016 USD
    assert t.pnl == pytest.approx(7.016, rel=1e-12)
    assert t.gross_return == pytest.approx(0.05, rel=1e-12)


def test_fx_missing_before_entry_or_absent_skips() -> None:
    news = datetime(2025, 1, 21, 18, 0, tzinfo=SEOUL)
    late = _fx([(utc(2025, 1, 22, 17, 0), 1500.0)])  # fixed only after the entry instant
    res = run(BASE, [cand(news, currency="KRW")], fx=late)
    assert not res.trades
    assert res.skipped[0].reason.startswith("no KRW per USD rate fixed at or before the entry")
    res = run(BASE, [cand(news, currency="KRW")])
    assert res.skipped == (Skipped("ev", "K", "no KRW per USD rates given"),)


def test_trade_pnl_formula_matches_hand_computation_for_several_trades() -> None:
    cases = [  # direction, notional, entry, exit, fx_entry, fx_exit, bps
        (1, 1000.0, 100.0, 110.0, 1.0, 1.0, 0.0),
        (-1, 2500.0, 57.25, 49.5, 1.0, 1.0, 12.5),
        (1, 333.33, 199200.0, 190900.0, 1452.3, 1461.8, 7.0),
        (-1, 10000.0, 197000.0, 199200.0, 1449.1, 1430.65, 3.0),
    ]
    for d, n, e, x, fe, fx, bps in cases:
        a = n * fe
        q = a / e
        g = d * q * (x - e)
        c = bps / 1e4 * (q * e + q * x)
        pnl, cost = trade_pnl(d, n, e, x, fe, fx, bps)
        assert pnl == pytest.approx((a + g - c) / fx - n, rel=1e-12, abs=1e-12)
        assert cost == pytest.approx(c / fx, rel=1e-12)
        if fe == fx == 1.0:
            assert pnl == pytest.approx(d * n * (x / e - 1) - bps / 1e4 * n * (1 + x / e),
                                        rel=1e-12)


def test_engine_pnl_equals_hand_computation_for_several_trades() -> None:
    over_k = {date(2025, 1, 14): (200000.0, 195000.0), date(2025, 1, 15): (196000.0, 188000.0),
              date(2025, 1, 16): (187000.0, 191000.0)}
    over_n = {date(2025, 1, 14): (50.0, 51.0), date(2025, 1, 15): (51.5, 48.25)}
    prices = {"K": frame(KRX, over_k), "N": frame(NYSE, over_n)}
    fx = _fx([(utc(2025, 1, 10, 17, 0), 1460.0), (utc(2025, 1, 13, 17, 0), 1470.0),
              (utc(2025, 1, 14, 17, 0), 1465.0), (utc(2025, 1, 15, 17, 0), 1475.0)])
    rules = replace(BASE, direction="signal", entry="open", holding=2, cost_bps=8.0,
                    sizing="equal", notional=9000.0)
    cands = [
        cand(datetime(2025, 1, 13, 16, 0, tzinfo=SEOUL), currency="KRW", signal=-1.0,
             event_id="a"),
        cand(datetime(2025, 1, 13, 17, 0, tzinfo=NY), ticker="N", exchange="XNYS", signal=2.0,
             event_id="b"),
        cand(datetime(2025, 1, 14, 16, 0, tzinfo=SEOUL), currency="KRW", signal=0.5,
             event_id="c"),
        cand(datetime(2025, 1, 14, 16, 0, tzinfo=SEOUL), currency="KRW", signal=0.0,
             event_id="d"),
    ]
    res = run(rules, cands, prices, fx=fx)
    assert res.skipped == (Skipped("d", "K", "signal is zero or missing"),)
    n = 3000.0  # 9000 split over the three trades taken
    c = 8e-4
    expected = {
        # short K: entry 01-14 open (00:00 UTC, fx 1470 fixed 01-13 17:00), exit 01-15 close
        # (06:30 UTC, fx 1465 fixed 01-14 17:00)
        "a": (-1, 200000.0, 188000.0, 1470.0, 1465.0),
        # long N: entry 01-14 open (14:30 UTC), exit 01-15 close, USD
        "b": (1, 50.0, 48.25, 1.0, 1.0),
        # long K: entry 01-15 open (fx 1465), exit 01-16 close (06:30 UTC, fx 1475)
        "c": (1, 196000.0, 191000.0, 1465.0, 1475.0),
    }
    assert [t.event_id for t in res.trades] == ["a", "b", "c"]
    for t in res.trades:
        d, e, x, fe, fxx = expected[t.event_id]
        a = n * fe
        q = a / e
        pnl = (a + d * q * (x - e) - c * (q * e + q * x)) / fxx - n
        assert (t.direction, t.entry_price, t.exit_price, t.fx_entry, t.fx_exit) == (
            d, e, x, fe, fxx)
        assert t.notional == n
        assert t.pnl == pytest.approx(pnl, rel=1e-12)
        assert t.net_return == pytest.approx(pnl / n, rel=1e-12)


# --------------------------------------------------------------------------- skips


def test_skipped_with_reasons() -> None:
    over = {date(2025, 1, 15): (None, 120.0), date(2025, 1, 20): (100.0, None)}
    prices = {"K": frame(KRX, over).filter(pl.col("date") <= date(2025, 2, 20)),
              "N": frame(NYSE)}
    rules = replace(BASE, direction="signal", holding=2)
    cands = [
        cand(datetime(2025, 1, 14, 12, 0, tzinfo=SEOUL), signal=1.0, event_id="no-open"),
        cand(datetime(2025, 1, 16, 12, 0, tzinfo=SEOUL), signal=1.0, event_id="no-exit"),
        cand(datetime(2025, 1, 16, 12, 0, tzinfo=SEOUL), signal=None, event_id="no-signal"),
        cand(datetime(2025, 1, 16, 12, 0, tzinfo=SEOUL), signal=math.nan, event_id="nan"),
        cand(datetime(2025, 2, 19, 12, 0, tzinfo=SEOUL), signal=-1.0, event_id="past-price"),
        cand(datetime(2025, 2, 27, 18, 0, tzinfo=SEOUL), signal=-1.0, event_id="past-cal"),
        cand(datetime(2025, 3, 5, 12, 0, tzinfo=SEOUL), signal=-1.0, event_id="after-end"),
        cand(datetime(2024, 12, 20, 12, 0, tzinfo=SEOUL), signal=-1.0, event_id="before-cal"),
        cand(datetime(2025, 1, 16, 12, 0, tzinfo=SEOUL), ticker="Z", signal=1.0,
             event_id="no-sessions"),
    ]
    res = run(rules, cands, prices)
    assert not res.trades
    reasons = {s.event_id: s.reason for s in res.skipped}
    assert reasons == {
        "no-open": "no price on the entry session 2025-01-15",
        "no-exit": "no close on the planned exit session 2025-01-20",
        "no-signal": "signal is zero or missing",
        "nan": "signal is zero or missing",
        "past-price": "holding period runs past the last price (2025-02-20)",
        "past-cal": "no session opens after the news before the data end",
        "after-end": "no session opens after the news before the data end",
        "before-cal": "the XKRX sessions given start after the trade was allowed "
                      "(2024-12-20 03:00 UTC): extend the calendar span",
        "no-sessions": "no XKRX sessions given for Z",
    }
    assert res.stats["n_trades"] == 0
    assert res.stats["n_skipped"] == len(cands)
    assert res.equity.height == 0
    assert all(res.stats[k] is None for k in ("total_return", "sharpe", "hit_rate"))


def test_holding_past_the_calendar_end() -> None:
    res = run(replace(BASE, holding=4), [cand(datetime(2025, 2, 25, 18, 0, tzinfo=SEOUL))])
    assert res.skipped[0].reason == (
        "holding period runs past the last XKRX session given (2025-02-28)")


# --------------------------------------------------------------------------- equity, stats


def test_equity_and_stats_on_a_small_case() -> None:
    # three long 1-session trades of 1000 USD on XNYS, no costs:
    #   01-13 +10 %, 01-15 -20 %, 01-17 +5 %
    over = {date(2025, 1, 13): (100.0, 110.0), date(2025, 1, 15): (100.0, 80.0),
            date(2025, 1, 17): (100.0, 105.0)}
    prices = {"N": frame(NYSE, over)}
    cands = [cand(datetime(2025, 1, d - 1, 20, 0, tzinfo=NY), ticker="N", exchange="XNYS",
                  event_id=f"e{d}") for d in (13, 15, 17)]
    bench = pl.DataFrame({"date": [date(2025, 1, 10), date(2025, 1, 14), date(2025, 1, 16)],
                          "close": [200.0, 210.0, 190.0]})
    res = run(BASE, cands, prices, capital=10000.0, benchmark=("B", NYSE, bench))
    assert [t.pnl for t in res.trades] == pytest.approx([100.0, -200.0, 50.0], rel=1e-12)
    eq = res.equity
    assert eq["date"].to_list() == [date(2025, 1, d) for d in range(13, 18)]
    assert eq["equity"].to_list() == pytest.approx([10100, 10100, 9900, 9900, 9950], rel=1e-12)
    # benchmark bought at the 01-10 close (last close at or before the 01-13 open)
    assert eq["benchmark_equity"].to_list() == pytest.approx(
        [10000, 10500, 10500, 9500, 9500], rel=1e-12)
    s = res.stats
    assert s["total_return"] == pytest.approx(-0.005, rel=1e-12)
    assert s["max_drawdown"] == pytest.approx(9900 / 10100 - 1, rel=1e-12)
    assert s["hit_rate"] == pytest.approx(2 / 3, rel=1e-12)
    r = [0.1, -0.2, 0.05]
    mean = sum(r) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in r) / 2)
    assert s["mean_trade_return"] == pytest.approx(mean, rel=1e-12)
    assert s["mean_trade_t"] == pytest.approx(mean / (sd / math.sqrt(3)), rel=1e-12)
    daily = [0.01, 0.0, 9900 / 10100 - 1, 0.0, 9950 / 9900 - 1]
    dm = sum(daily) / 5
    dsd = math.sqrt(sum((x - dm) ** 2 for x in daily) / 4)
    assert s["volatility"] == pytest.approx(dsd * math.sqrt(252), rel=1e-12)
    assert s["sharpe"] == pytest.approx(dm / dsd * math.sqrt(252), rel=1e-12)
    assert s["annualized_return"] == pytest.approx(0.995 ** (252 / 5) - 1, rel=1e-12)
    assert (s["n_trades"], s["n_skipped"]) == (3, 0)
    assert set(s) == {"total_return", "annualized_return", "volatility", "sharpe",
                      "max_drawdown", "hit_rate", "mean_trade_return", "mean_trade_t",
                      "n_trades", "n_skipped"}


def test_equity_spans_weekends_forward_filled_and_fixed_capital_default() -> None:
    news = datetime(2025, 1, 16, 20, 0, tzinfo=NY)  # -> 01-17 (Fri) open, exit 01-21 (Tue)
    res = run(replace(BASE, holding=2), [cand(news, ticker="N", exchange="XNYS")])
    t = one(res)
    assert t.exit_date == date(2025, 1, 21)  # 01-20 is a holiday
    assert res.capital == 1000.0  # notional x 1 trade
    eq = res.equity
    assert eq.height == 5
    assert eq["equity"].to_list()[:4] == [1000.0] * 4
    assert eq["equity"][-1] == pytest.approx(1000.0 + t.pnl, rel=1e-12)
    assert eq["benchmark_equity"].null_count() == 5
    # one trade: no t statistic, and no NaN anywhere
    assert res.stats["mean_trade_t"] is None
    assert all(v is None or math.isfinite(v) for v in res.stats.values())


def test_equal_sizing_splits_capital() -> None:
    cands = [cand(datetime(2025, 1, 13, 20, 0, tzinfo=SEOUL), event_id=str(i)) for i in range(4)]
    cands.append(cand(datetime(2025, 1, 13, 20, 0, tzinfo=SEOUL), signal=None, event_id="x",
                      ticker="nope"))
    res = run(replace(BASE, sizing="equal", notional=8000.0), cands)
    assert [t.notional for t in res.trades] == [2000.0] * 4
    assert res.capital == 8000.0
    with pytest.raises(InputError, match="sizing 'equal'"):
        run(replace(BASE, sizing="equal"), cands, capital=5.0)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("field", "value"), [
    ("direction", "sideways"), ("entry", "noon"), ("holding", 0), ("stop", -0.1),
    ("cost_bps", -1.0), ("sizing", "kelly"), ("notional", 0.0),
])
def test_rules_are_validated(field: str, value: object) -> None:
    with pytest.raises(InputError, match=field):
        replace(BASE, **{field: value})  # type: ignore[arg-type]


def test_naive_timestamps_and_wrong_calendar_are_refused() -> None:
    with pytest.raises(InputError, match="no time zone"):
        run(BASE, [cand(datetime(2025, 1, 13, 10, 0))])
    with pytest.raises(InputError, match="sessions are those of XNYS"):
        run(BASE, [cand(datetime(2025, 1, 13, 10, 0, tzinfo=UTC), ticker="N")])


# --------------------------------------------------------------------------- real data


def test_deepseek_short_hynix_after_nvda_close() -> None:
    path = PRICES / "000660.KS.csv"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    with path.open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["date"] == "2025-01-31")
    o, c = float(row["open"]), float(row["close"])
    df = pl.read_csv(path, try_parse_dates=True).select("date", "open", "close")
    sess = sessions("XKRX", date(2025, 1, 2), date(2025, 2, 28))
    nvda_close = datetime(2025, 1, 27, 16, 0, tzinfo=NY)
    c0 = Candidate(event_id="deepseek-r1", ticker="000660.KS", exchange="XKRX", currency="KRW",
                   news_ts=datetime(2025, 1, 27, 9, 0, tzinfo=SEOUL), signal_known_at=nvda_close)
    rules = replace(BASE, direction="short", currency="KRW")
    res = run_backtest(rules, [c0], sessions_of={"000660.KS": sess}, prices={"000660.KS": df})
    t = one(res)
    assert t.allowed_at == utc(2025, 1, 27, 21, 0)
    assert (t.entry_date, t.entry_time) == (date(2025, 1, 31), utc(2025, 1, 31, 0, 0))
    assert (t.exit_date, t.exit_time) == (date(2025, 1, 31), utc(2025, 1, 31, 6, 30))
    assert (t.entry_price, t.exit_price) == (o, c)
    assert t.gross_return == pytest.approx(-(c / o - 1), rel=1e-12)
    assert t.pnl == pytest.approx(-1000.0 * (c / o - 1), rel=1e-12)


def test_fx_fixed_exactly_at_the_entry_instant_is_used() -> None:
    news = datetime(2025, 1, 21, 18, 0, tzinfo=SEOUL)
    fx = _fx([(utc(2025, 1, 21, 17, 0), 1440.0), (utc(2025, 1, 22, 0, 0), 1450.0),
              (utc(2025, 1, 22, 6, 30), 1460.0), (utc(2025, 1, 22, 6, 31), 9999.0)])
    t = one(run(BASE, [cand(news, currency="KRW")], fx=fx))
    assert (t.entry_time, t.exit_time) == (utc(2025, 1, 22, 0, 0), utc(2025, 1, 22, 6, 30))
    assert (t.fx_entry, t.fx_exit) == (1450.0, 1460.0)


def test_stale_fx_is_not_used() -> None:
    news = datetime(2025, 1, 21, 18, 0, tzinfo=SEOUL)
    res = run(BASE, [cand(news, currency="KRW")], fx=_fx([(utc(2025, 1, 10, 17, 0), 1440.0)]))
    assert "within 7 days" in res.skipped[0].reason
