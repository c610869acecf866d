"""Yahoo Finance through yfinance: the online source.

This is the only module of `impact` that imports yfinance. Prices are fetched
with ``auto_adjust=False`` so that both the as-traded (split-adjusted) close and
Yahoo's split- and dividend-adjusted close are kept, together with the cash
dividends. Network failures are retried with exponential backoff; when Yahoo
cannot be reached the error says so and how to work offline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

import polars as pl

from impact.errors import InputError, SourceError
from impact.frames import DIVIDENDS_SCHEMA, PRICES_SCHEMA
from impact.sources import PriceData

#: yfinance exceptions that mean "no such ticker / no prices", not "network down".
_MISSING = ("YFTickerMissingError", "YFTzMissingError", "YFPricesMissingError")


def _load_yfinance() -> Any:
    try:
        import yfinance
    except ImportError as exc:  # pragma: no cover - yfinance is a core dependency
        raise SourceError(f"yfinance is not installed ({exc}): pip install yfinance") from None
    return yfinance


class YahooSource:
    """Prices from Yahoo Finance (online).

    Parameters
    ----------
    client
        The yfinance module, or a stand-in with the same ``Ticker(...).history``
        interface (tests pass a fake). Imported on first use when None.
    retries
        Attempts per ticker before giving up.
    backoff
        Seconds before the second attempt; doubled after each failure.
    sleep
        The function that waits (tests pass a no-op).
    """

    name = "yahoo"

    def __init__(
        self,
        client: Any = None,
        *,
        retries: int = 3,
        backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def _history(self, yf: Any, ticker: str, start: date, end: date) -> Any:
        delay = self.backoff
        last: Exception | None = None
        for attempt in range(1, self.retries + 1):
            try:
                return yf.Ticker(ticker).history(
                    start=start.isoformat(),
                    end=(end + timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
                    interval="1d",
                    auto_adjust=False,
                    actions=True,
                )
            except Exception as exc:
                if type(exc).__name__ in _MISSING:
                    raise InputError(
                        f"unknown ticker '{ticker}': Yahoo Finance has no prices for it "
                        f"({exc}). Check the ticker in the study file (Yahoo spelling, e.g. "
                        f"000660.KS, ^GSPC)."
                    ) from None
                last = exc
                if attempt < self.retries:
                    self.sleep(delay)
                    delay *= 2
        raise SourceError(
            f"could not reach Yahoo Finance for '{ticker}' after {self.retries} attempts "
            f"({type(last).__name__}: {last}). Check the network, or run offline from a "
            f"snapshot directory with --prices-dir DIR."
        )

    def fetch(self, tickers: list[str], start: date, end: date, *,
              timezones: Mapping[str, str] | None = None) -> PriceData:
        """Download daily prices and dividends.

        Raises
        ------
        InputError
            If Yahoo has no prices for a ticker in the range.
        SourceError
            If Yahoo cannot be reached after the retries.
        """
        yf = self._client if self._client is not None else _load_yfinance()
        config = getattr(yf, "config", None)
        debug = getattr(config, "debug", None)
        previous = getattr(debug, "hide_exceptions", None)
        if debug is not None:
            debug.hide_exceptions = False  # let network errors reach the retry loop
        try:
            price_frames, div_frames = [], []
            for ticker in tickers:
                hist = self._history(yf, ticker, start, end)
                if hist is None or len(hist) == 0:
                    raise InputError(
                        f"unknown ticker '{ticker}': Yahoo Finance returned no prices between "
                        f"{start} and {end}. Check the ticker (Yahoo spelling) and the dates."
                    )
                prices, divs = _convert(hist, ticker, (timezones or {}).get(ticker))
                price_frames.append(prices.filter(pl.col("date").is_between(start, end)))
                div_frames.append(divs)
        finally:
            if debug is not None:
                debug.hide_exceptions = previous
        return PriceData(
            prices=pl.concat(price_frames),
            dividends=pl.concat(div_frames),
            source="yahoo",
        )


def _convert(hist: Any, ticker: str, tz: str | None = None
             ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Turn a yfinance history frame (pandas) into the canonical frames.

    Daily bars are stamped at the exchange's local midnight. A time-zone-aware
    index is converted to the exchange's zone ``tz`` before taking dates, so an
    index in UTC does not shift Korean dates back by a day; a naive index is taken
    as exchange-local dates.
    """
    idx = hist.index
    if tz is not None and getattr(idx, "tz", None) is not None:
        idx = idx.tz_convert(tz)
    dates = [ts.date() for ts in idx]

    def col(name: str) -> list[float | None]:
        if name not in hist.columns:
            return [None] * len(dates)
        out: list[float | None] = []
        for v in hist[name].tolist():
            out.append(None if v is None or v != v else float(v))
        return out

    prices = pl.DataFrame(
        {
            "ticker": [ticker] * len(dates),
            "date": dates,
            "open": col("Open"),
            "high": col("High"),
            "low": col("Low"),
            "close": col("Close"),
            "adj_close": col("Adj Close"),
            "volume": col("Volume"),
        },
        schema=PRICES_SCHEMA,
    ).unique(subset="date", keep="last").sort("date")
    amounts = col("Dividends")
    divs = pl.DataFrame(
        {
            "ticker": [ticker] * len(dates),
            "ex_date": dates,
            "amount": amounts,
            "currency": [None] * len(dates),
        },
        schema=DIVIDENDS_SCHEMA,
    ).filter(pl.col("amount").is_not_null() & (pl.col("amount") > 0))
    return prices, divs
