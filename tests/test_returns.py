"""Returns: the basis rule per row, dividends on ex-dates, explicit gaps."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from impact.calendars import sessions
from impact.frames import DIVIDENDS_SCHEMA, PRICES_SCHEMA
from impact.returns import compute_returns

SESS = sessions("XKRX", date(2025, 1, 1), date(2025, 2, 28))
DAYS = [d for d in SESS.dates if date(2025, 1, 20) <= d <= date(2025, 2, 7)]


def prices(ticker: str, closes: list[float | None], adj: list[float | None] | None = None,
           days: list[date] | None = None) -> pl.DataFrame:
    days = days or DAYS[: len(closes)]
    adj = adj or [None] * len(closes)
    return pl.DataFrame({
        "ticker": [ticker] * len(days), "date": days, "open": [None] * len(days),
        "high": [None] * len(days), "low": [None] * len(days), "close": closes,
        "adj_close": adj, "volume": [None] * len(days)}, schema=PRICES_SCHEMA)


def test_geometric_prices_give_exact_returns_on_sessions() -> None:
    closes = [100 * 1.01**i for i in range(8)]
    out = compute_returns(prices("A", closes), None, {"A": SESS}).returns
    assert out.height == 7
    assert out["basis"].unique().to_list() == ["close"]
    assert out["ret"].to_list() == pytest.approx([0.01] * 7, abs=1e-12)
    # 2025-01-24 -> 2025-01-31 is one KRX session (closure 01-27..30)
    row = out.filter(pl.col("date") == date(2025, 1, 31)).row(0, named=True)
    assert row["prev_date"] == date(2025, 1, 24)


def test_adj_close_first_then_close_plus_dividends() -> None:
    closes = [100.0, 101.0, 99.0, 100.0]
    adj = [50.0, 51.0, None, None]
    divs = pl.DataFrame({"ticker": ["A"], "ex_date": [DAYS[3]], "amount": [2.0],
                         "currency": ["KRW"]}, schema=DIVIDENDS_SCHEMA)
    out = compute_returns(prices("A", closes, adj), divs, {"A": SESS}).returns
    assert out["basis"].to_list() == ["adj_close", "close+dividends", "close+dividends"]
    assert out["ret"].to_list() == pytest.approx([51 / 50 - 1, 99 / 101 - 1, (100 + 2) / 99 - 1])


def test_ticker_without_dividend_records_uses_close() -> None:
    divs = pl.DataFrame({"ticker": ["B"], "ex_date": [DAYS[1]], "amount": [1.0],
                         "currency": ["KRW"]}, schema=DIVIDENDS_SCHEMA)
    out = compute_returns(prices("A", [10.0, 11.0]), divs, {"A": SESS}).returns
    assert out["basis"].to_list() == ["close"]


def test_missing_session_is_an_explicit_gap_not_a_shift() -> None:
    days = DAYS[:5]
    p = prices("A", [100.0, 110.0, 121.0, 133.1], days=[days[0], days[1], days[3], days[4]])
    res = compute_returns(p, None, {"A": SESS})
    out = res.returns
    assert out["date"].to_list() == days[1:]
    assert out["basis"].to_list() == ["close", "gap", "gap", "close"]
    assert out["ret"].to_list()[1:3] == [None, None]
    assert out["ret"].to_list()[3] == pytest.approx(0.1)
    assert res.gaps == {"A": [str(days[2])]}
    assert any("no price on 1" in n for n in res.notes)


def test_rows_on_non_sessions_are_ignored_with_a_note() -> None:
    p = prices("A", [100.0, 105.0, 110.0], days=[DAYS[0], date(2025, 1, 28), DAYS[1]])
    res = compute_returns(p, None, {"A": SESS})
    assert res.returns["ret"].to_list() == pytest.approx([0.1])
    assert any("not XKRX sessions" in n and "2025-01-28" in n for n in res.notes)
