"""A pure event-driven backtest: trade the securities an event should move.

Why this module exists
----------------------
An event study measures how prices moved around an event; a backtest asks what a
trader could have earned from it, which adds one constraint the study does not
have: a trade may only use what was known when it was placed. Everything here is
built around that rule (see ``docs/backtest.md``):

* a trade is allowed at ``allowed_at = max(news_ts, signal_known_at)``;
* it enters at the first session of the security's own exchange whose open
  (``entry="open"``) or close (``entry="close"``) instant is *strictly after*
  ``allowed_at``; prices are those of that session, never an earlier one;
* it exits at the close of the session ``holding`` sessions later (counted on the
  same exchange calendar), or earlier at a daily close that hits the stop;
* an FX rate is the latest one *fixed* at or before the entry (or exit) instant.

A candidate that cannot be traded under these rules (no session after the news,
no price on the entry or exit session, no FX rate yet, a zero signal) is never
shifted to another day: it is listed in :attr:`BacktestResult.skipped` with the
reason.

The module is pure: numpy, polars and the standard library; no files, no
database, no network. Storage, the command line and reports call
:func:`run_backtest`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from impact.calendars import Sessions
from impact.errors import InputError

#: Trading days per year used to annualize.
PERIODS_PER_YEAR = 252

#: An FX rate fixed longer than this before the instant it converts is not used
#: (the trade is skipped): a series that stopped long ago is not silently reused.
FX_MAX_AGE = timedelta(days=7)

#: Tolerance of the stop comparison, so that a move of exactly ``stop`` counts as
#: reaching it despite floating-point rounding.
STOP_TOLERANCE = 1e-12

DIRECTIONS = ("long", "short", "signal")
ENTRIES = ("open", "close")
SIZINGS = ("equal", "fixed")

STAT_KEYS = (
    "total_return",
    "annualized_return",
    "volatility",
    "sharpe",
    "max_drawdown",
    "hit_rate",
    "mean_trade_return",
    "mean_trade_t",
    "n_trades",
    "n_skipped",
)


@dataclass(frozen=True)
class Rules:
    """How candidates are traded.

    Raises
    ------
    InputError
        If a field is out of range (the message names the field and the fix).
    """

    #: ``"long"``, ``"short"`` or ``"signal"`` (the sign of
    #: :attr:`Candidate.signal`: > 0 long, < 0 short, 0 or missing: skipped).
    direction: str
    #: ``"open"`` or ``"close"``: enter at the first session open (close) of the
    #: security's exchange strictly after the moment the trade is allowed.
    entry: str
    #: Sessions held (>= 1); the entry session counts for an open entry.
    holding: int
    #: Stop loss as a fraction (0.05: 5 %), checked on daily closes only; None: no stop.
    stop: float | None
    #: Cost per side in basis points of the traded value.
    cost_bps: float
    #: ``"equal"`` (``notional`` is the capital, split equally across the trades
    #: taken) or ``"fixed"`` (each trade gets ``notional``).
    sizing: str
    #: Reporting-currency amount per trade (``fixed``) or total capital (``equal``).
    notional: float
    #: Reporting currency, e.g. ``"USD"``.
    currency: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise InputError(
                f"backtest rule 'direction' is {self.direction!r}: use one of "
                f"{', '.join(DIRECTIONS)}"
            )
        if self.entry not in ENTRIES:
            raise InputError(
                f"backtest rule 'entry' is {self.entry!r}: use one of {', '.join(ENTRIES)}"
            )
        if isinstance(self.holding, bool) or not isinstance(self.holding, int) or self.holding < 1:
            raise InputError(
                f"backtest rule 'holding' is {self.holding!r}: give a whole number of "
                f"sessions, 1 or more"
            )
        if self.stop is not None and not (math.isfinite(self.stop) and self.stop > 0):
            raise InputError(
                f"backtest rule 'stop' is {self.stop!r}: give a positive fraction "
                f"(0.05 for 5 %) or leave it out"
            )
        if not (math.isfinite(self.cost_bps) and self.cost_bps >= 0):
            raise InputError(
                f"backtest rule 'cost_bps' is {self.cost_bps!r}: give basis points per side, "
                f"0 or more"
            )
        if self.sizing not in SIZINGS:
            raise InputError(
                f"backtest rule 'sizing' is {self.sizing!r}: use one of {', '.join(SIZINGS)}"
            )
        if not (math.isfinite(self.notional) and self.notional > 0):
            raise InputError(
                f"backtest rule 'notional' is {self.notional!r}: give a positive amount "
                f"in {self.currency or 'the reporting currency'}"
            )
        if not self.currency:
            raise InputError(
                "backtest rule 'currency' is empty: give the reporting currency, e.g. USD"
            )


@dataclass(frozen=True)
class Candidate:
    """One (event, security) the strategy wants to trade."""

    event_id: str
    ticker: str
    #: Exchange calendar name (must be that of the ticker's :class:`Sessions`).
    exchange: str
    #: The security's price currency.
    currency: str
    #: When the news was public (time-zone aware).
    news_ts: datetime
    #: Signal value for ``direction="signal"``.
    signal: float | None = None
    #: When the signal value was known (aware), e.g. another market's day-0 close.
    signal_known_at: datetime | None = None


@dataclass(frozen=True)
class Trade:
    """A trade taken. Instants are UTC naive datetimes; dates are exchange-local."""

    event_id: str
    ticker: str
    #: +1 long, -1 short.
    direction: int
    #: The moment trading was allowed: max(news_ts, signal_known_at).
    allowed_at: datetime
    #: Entry session date and instant (its open or close).
    entry_date: date
    entry_time: datetime
    #: As-traded price, in the price currency.
    entry_price: float
    exit_date: date
    #: The exit session's close instant.
    exit_time: datetime
    exit_price: float
    #: ``"holding"`` or ``"stop"``.
    exit_reason: str
    #: Sessions from entry to exit (the entry session counts for an open entry).
    sessions_held: int
    #: direction * (exit_price / entry_price - 1), in the price currency, before costs.
    gross_return: float
    #: Costs of both sides, in the reporting currency.
    cost: float
    #: Reporting-currency amount put in the trade.
    notional: float
    #: Price-currency units per reporting-currency unit at entry and exit (1.0 if same).
    fx_entry: float
    fx_exit: float
    #: Profit in the reporting currency, net of costs, FX moves included.
    pnl: float
    #: pnl / notional.
    net_return: float


@dataclass(frozen=True)
class Skipped:
    """A candidate not traded, and why."""

    event_id: str
    ticker: str
    reason: str


@dataclass(frozen=True)
class BacktestResult:
    """Trades, skipped candidates, the daily equity curve and summary statistics."""

    trades: tuple[Trade, ...]
    skipped: tuple[Skipped, ...]
    #: One row per calendar date from the first entry to the last exit:
    #: ``date`` (Date), ``equity``, ``benchmark_equity`` (Float64; null without benchmark).
    equity: pl.DataFrame
    #: See ``STAT_KEYS``; None where not computable (never NaN).
    stats: dict[str, float | int | None] = field(default_factory=dict)
    #: Starting capital of the equity curve, in the reporting currency.
    capital: float = 0.0


# --------------------------------------------------------------------------- helpers


def _utc_naive(ts: datetime, what: str, c: Candidate) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InputError(
            f"candidate '{c.event_id}' / {c.ticker}: {what} {ts.isoformat()} has no time "
            f"zone: give an aware datetime"
        )
    return ts.astimezone(UTC).replace(tzinfo=None)


_EPOCH = datetime(1970, 1, 1)


def _dt(x: Any) -> datetime:
    """A numpy datetime64 (UTC) as a naive datetime, to the microsecond."""
    us = int(np.asarray(x).astype("datetime64[us]").astype(np.int64))
    return _EPOCH + timedelta(microseconds=us)


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _ok(x: Any) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x) and x > 0


@dataclass(frozen=True)
class _PriceBook:
    """One ticker's prices by date (None: no price)."""

    open: dict[date, float | None]
    close: dict[date, float | None]
    last: date | None


def _price_book(df: pl.DataFrame, ticker: str) -> _PriceBook:
    missing = {"date", "open", "close"} - set(df.columns)
    if missing:
        raise InputError(
            f"prices of {ticker} lack column(s) {', '.join(sorted(missing))}: "
            f"give date, open and close"
        )
    d = df.select(
        pl.col("date").cast(pl.Date),
        pl.col("open").cast(pl.Float64),
        pl.col("close").cast(pl.Float64),
    )
    dates: list[date] = d["date"].to_list()
    opens = [v if _ok(v) else None for v in d["open"].to_list()]
    closes = [v if _ok(v) else None for v in d["close"].to_list()]
    return _PriceBook(
        open=dict(zip(dates, opens, strict=True)),
        close=dict(zip(dates, closes, strict=True)),
        last=max(dates) if dates else None,
    )


@dataclass(frozen=True)
class _FxBook:
    """Rates sorted by fixing instant (UTC naive, as datetime64[us])."""

    fixings: np.ndarray
    rates: np.ndarray


def _fx_books(fx: pl.DataFrame | None) -> dict[str | None, _FxBook]:
    """FX books by currency (key None: a frame without a ``currency`` column)."""
    if fx is None:
        return {}
    missing = {"date", "rate", "fixing_utc"} - set(fx.columns)
    if missing:
        raise InputError(
            f"the FX frame lacks column(s) {', '.join(sorted(missing))}: give date, rate "
            f"(price-currency units per reporting-currency unit) and fixing_utc (the UTC "
            f"instant each rate was fixed)"
        )
    fix = pl.col("fixing_utc")
    dtype = fx.schema["fixing_utc"]
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        fix = fix.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    cols = [fix.cast(pl.Datetime("us")).alias("fixing_utc"), pl.col("rate").cast(pl.Float64)]
    keyed = "currency" in fx.columns
    if keyed:
        cols.append(pl.col("currency").cast(pl.String))
    d = fx.select(cols).filter(
        pl.col("fixing_utc").is_not_null()
        & pl.col("rate").is_not_null()
        & pl.col("rate").is_finite()
        & (pl.col("rate") > 0)
    )
    groups: list[tuple[str | None, pl.DataFrame]] = (
        [(str(k[0]), g) for k, g in d.group_by("currency")] if keyed else [(None, d)]
    )
    out: dict[str | None, _FxBook] = {}
    for key, g in groups:
        g = g.sort("fixing_utc")
        out[key] = _FxBook(
            fixings=g["fixing_utc"].to_numpy().astype("datetime64[us]"),
            rates=g["rate"].to_numpy().astype(float),
        )
    return out


def _rate_at(book: _FxBook, t: datetime) -> tuple[float, datetime] | None:
    """The latest rate fixed at or before ``t`` (and not older than FX_MAX_AGE)."""
    i = int(np.searchsorted(book.fixings, np.datetime64(t, "us"), side="right")) - 1
    if i < 0:
        return None
    fixed = _dt(book.fixings[i])
    if t - fixed > FX_MAX_AGE:
        return None
    return float(book.rates[i]), fixed


@dataclass(frozen=True)
class _Plan:
    """A trade with everything but its size."""

    c: Candidate
    direction: int
    allowed_at: datetime
    entry_date: date
    entry_time: datetime
    entry_price: float
    exit_date: date
    exit_time: datetime
    exit_price: float
    exit_reason: str
    sessions_held: int
    fx_entry: float
    fx_exit: float


def _plan(
    rules: Rules,
    c: Candidate,
    sess: Sessions | None,
    book: _PriceBook | None,
    fx_books: dict[str | None, _FxBook],
) -> _Plan | str:
    """Time, price and convert one candidate; a string is the reason it is skipped."""
    # direction
    if rules.direction == "long":
        direction = 1
    elif rules.direction == "short":
        direction = -1
    else:
        s = c.signal
        if s is None or not math.isfinite(s) or s == 0:
            return "signal is zero or missing"
        direction = 1 if s > 0 else -1

    allowed = _utc_naive(c.news_ts, "news_ts", c)
    if c.signal_known_at is not None:
        allowed = max(allowed, _utc_naive(c.signal_known_at, "signal_known_at", c))

    if sess is None or len(sess) == 0:
        return f"no {c.exchange} sessions given for {c.ticker}"
    if sess.exchange != c.exchange:
        raise InputError(
            f"candidate '{c.event_id}' / {c.ticker} trades on {c.exchange} but its sessions "
            f"are those of {sess.exchange}: pass the sessions of {c.exchange}"
        )
    if book is None or book.last is None:
        return f"no prices for {c.ticker}"

    # entry: first open (close) strictly after allowed_at
    instants = sess.opens if rules.entry == "open" else sess.closes
    s0 = int(np.searchsorted(instants, np.datetime64(allowed, "ns"), side="right"))
    if s0 == 0:
        return (
            f"the {c.exchange} sessions given start after the trade was allowed "
            f"({_fmt(allowed)}): extend the calendar span"
        )
    if s0 >= len(sess) or sess.dates[s0] > book.last:
        return "no session opens after the news before the data end"
    entry_date = sess.dates[s0]
    entry_time = _dt(instants[s0])
    entry_price = (book.open if rules.entry == "open" else book.close).get(entry_date)
    if entry_price is None:
        return f"no price on the entry session {entry_date}"

    # exit: the close of s0 + holding - 1 (open entry) or s0 + holding (close entry)
    first_close = s0 if rules.entry == "open" else s0 + 1
    planned = s0 + rules.holding - (1 if rules.entry == "open" else 0)
    if planned >= len(sess):
        return f"holding period runs past the last {c.exchange} session given ({sess.dates[-1]})"
    if sess.dates[planned] > book.last:
        return f"holding period runs past the last price ({book.last})"
    exit_idx: int | None = None
    reason = "holding"
    if rules.stop is not None:
        for k in range(first_close, planned + 1):
            px = book.close.get(sess.dates[k])
            if px is None:
                continue  # no close that session: nothing to check, no trade possible
            if direction * (px / entry_price - 1.0) <= -rules.stop + STOP_TOLERANCE:
                exit_idx, reason = k, "stop"
                break
    if exit_idx is None:
        exit_idx = planned
    exit_date = sess.dates[exit_idx]
    exit_price = book.close.get(exit_date)
    if exit_price is None:
        return f"no close on the planned exit session {exit_date}"
    exit_time = _dt(sess.closes[exit_idx])

    # FX
    fx_entry = fx_exit = 1.0
    if c.currency != rules.currency:
        fxb = fx_books.get(c.currency, fx_books.get(None))
        pair = f"{c.currency} per {rules.currency}"
        if fxb is None:
            return f"no {pair} rates given"
        at_entry = _rate_at(fxb, entry_time)
        if at_entry is None:
            return (
                f"no {pair} rate fixed at or before the entry ({_fmt(entry_time)}) within "
                f"{FX_MAX_AGE.days} days"
            )
        at_exit = _rate_at(fxb, exit_time)
        if at_exit is None:
            return (
                f"no {pair} rate fixed at or before the exit ({_fmt(exit_time)}) within "
                f"{FX_MAX_AGE.days} days"
            )
        fx_entry, fx_exit = at_entry[0], at_exit[0]

    return _Plan(
        c=c,
        direction=direction,
        allowed_at=allowed,
        entry_date=entry_date,
        entry_time=entry_time,
        entry_price=entry_price,
        exit_date=exit_date,
        exit_time=exit_time,
        exit_price=exit_price,
        exit_reason=reason,
        sessions_held=exit_idx - s0 + (1 if rules.entry == "open" else 0),
        fx_entry=fx_entry,
        fx_exit=fx_exit,
    )


def trade_pnl(
    direction: int,
    notional: float,
    entry_price: float,
    exit_price: float,
    fx_entry: float,
    fx_exit: float,
    cost_bps: float,
) -> tuple[float, float]:
    """P&L and cost of one trade in the reporting currency (see docs/backtest.md).

    The notional ``N`` is converted into the price currency at entry
    (``A = N * fx_entry``), buys (or sells short) ``q = A / entry_price`` units, and
    the balance ``A + G - C`` is converted back at exit::

        G   = direction * q * (exit_price - entry_price)        # price currency
        C   = cost_bps / 1e4 * (q * entry_price + q * exit_price)
        pnl = (A + G - C) / fx_exit - N
        cost = C / fx_exit

    Parameters
    ----------
    direction
        +1 long, -1 short.
    notional
        ``N``, reporting currency.
    entry_price, exit_price
        As-traded prices, price currency.
    fx_entry, fx_exit
        Price-currency units per reporting-currency unit.
    cost_bps
        Cost per side, basis points of the traded value.

    Returns
    -------
    tuple of float
        ``(pnl, cost)``, reporting currency.
    """
    a = notional * fx_entry
    q = a / entry_price
    gross = direction * q * (exit_price - entry_price)
    costs = cost_bps / 1e4 * (q * entry_price + q * exit_price)
    return (a + gross - costs) / fx_exit - notional, costs / fx_exit


# --------------------------------------------------------------------------- equity


def _benchmark_levels(
    benchmark: tuple[str, Sessions, pl.DataFrame],
    first_entry: datetime,
    days: list[date],
) -> list[float | None]:
    """Benchmark close relative to its base close, per calendar day (None if no base)."""
    ticker, bsess, bdf = benchmark
    missing = {"date", "close"} - set(bdf.columns)
    if missing:
        raise InputError(
            f"benchmark prices of {ticker} lack column(s) {', '.join(sorted(missing))}: "
            f"give date and close"
        )
    d = bdf.select(pl.col("date").cast(pl.Date), pl.col("close").cast(pl.Float64))
    closes = {
        k: v for k, v in zip(d["date"].to_list(), d["close"].to_list(), strict=True) if _ok(v)
    }
    # base: the last benchmark session closing at or before the first entry, with a close
    hi = int(np.searchsorted(bsess.closes, np.datetime64(first_entry, "ns"), side="right"))
    base_i = next((i for i in range(hi - 1, -1, -1) if bsess.dates[i] in closes), None)
    if base_i is None:
        return [None] * len(days)
    base = closes[bsess.dates[base_i]]
    later = [bsess.dates[i] for i in range(base_i, len(bsess)) if bsess.dates[i] in closes]
    out: list[float | None] = []
    j, level = 0, 1.0
    for day in days:
        while j < len(later) and later[j] <= day:
            level = closes[later[j]] / base
            j += 1
        out.append(level)
    return out


def _stats(
    equity: pl.DataFrame, trades: Sequence[Trade], capital: float, n_skipped: int
) -> dict[str, float | int | None]:
    stats: dict[str, float | int | None] = dict.fromkeys(STAT_KEYS)
    stats["n_trades"] = len(trades)
    stats["n_skipped"] = n_skipped
    if trades:
        r = np.array([t.net_return for t in trades], dtype=float)
        stats["hit_rate"] = float(np.mean(np.array([t.pnl for t in trades]) > 0))
        stats["mean_trade_return"] = float(np.mean(r))
        if len(r) >= 2:
            sd = float(np.std(r, ddof=1))
            if sd > 0:
                stats["mean_trade_t"] = float(np.mean(r)) / (sd / math.sqrt(len(r)))
    if equity.height == 0:
        return stats
    eq = equity["equity"].to_numpy().astype(float)
    stats["total_return"] = float(eq[-1] / capital - 1.0)
    peak = np.maximum.accumulate(np.concatenate([[capital], eq]))[1:]
    stats["max_drawdown"] = float(np.min(eq / peak - 1.0)) if np.all(peak > 0) else None
    # daily returns on weekdays (weekend rows repeat Friday's equity)
    days: list[date] = equity["date"].to_list()
    keep = [i for i, day in enumerate(days) if day.weekday() < 5 or i in (0, len(days) - 1)]
    levels = np.concatenate([[capital], eq[keep]])
    if np.any(levels[:-1] <= 0):
        return stats
    rets = levels[1:] / levels[:-1] - 1.0
    n = len(rets)
    growth = levels[-1] / levels[0]
    if n >= 1 and growth > 0:
        stats["annualized_return"] = float(growth ** (PERIODS_PER_YEAR / n) - 1.0)
    if n >= 2:
        sd = float(np.std(rets, ddof=1))
        stats["volatility"] = sd * math.sqrt(PERIODS_PER_YEAR)
        if sd > 0:
            stats["sharpe"] = float(np.mean(rets)) / sd * math.sqrt(PERIODS_PER_YEAR)
    return stats


# --------------------------------------------------------------------------- entry point


def run_backtest(
    rules: Rules,
    candidates: Sequence[Candidate],
    *,
    sessions_of: Mapping[str, Sessions],
    prices: Mapping[str, pl.DataFrame],
    fx: pl.DataFrame | None = None,
    benchmark: tuple[str, Sessions, pl.DataFrame] | None = None,
    capital: float | None = None,
) -> BacktestResult:
    """Backtest trading each candidate under the rules, without look-ahead.

    Parameters
    ----------
    rules
        Direction, entry, holding, stop, costs and sizing.
    candidates
        The (event, security) pairs to trade; trades keep this order.
    sessions_of
        Each ticker's exchange sessions (must start before the news and extend past
        the exit).
    prices
        Each ticker's raw as-traded prices: columns ``date``, ``open``, ``close``;
        null (or non-positive) means no price.
    fx
        Rates: ``date``, ``rate`` (price-currency units per reporting-currency unit,
        e.g. KRW per USD), ``fixing_utc`` (the instant each rate was fixed, UTC), and
        optionally ``currency`` (the price currency of each row) when more than one
        foreign currency is traded. Needed when a candidate's currency is not
        ``rules.currency``.
    benchmark
        ``(ticker, sessions, prices with date and close)``: the whole capital bought
        at the close of the last benchmark session at or before the first entry.
    capital
        Starting capital for ``sizing="fixed"`` (default: notional x number of
        trades). With ``sizing="equal"`` the capital is ``rules.notional``.

    Returns
    -------
    BacktestResult

    Raises
    ------
    InputError
        A naive timestamp, a frame without its columns, sessions of the wrong
        exchange, or a ``capital`` that contradicts ``sizing="equal"``.
    """
    if rules.sizing == "equal" and capital is not None and capital != rules.notional:
        raise InputError(
            f"capital {capital} given with sizing 'equal', whose capital is the notional "
            f"({rules.notional}): give only the notional"
        )
    if capital is not None and not (math.isfinite(capital) and capital > 0):
        raise InputError(f"capital is {capital!r}: give a positive amount")
    fx_books = _fx_books(fx)
    if fx_books and None in fx_books:
        foreign = {c.currency for c in candidates if c.currency != rules.currency}
        if len(foreign) > 1:
            raise InputError(
                f"candidates trade in {', '.join(sorted(foreign))} but the FX frame has no "
                f"'currency' column: add one so each rate is used for its currency"
            )

    books: dict[str, _PriceBook] = {}
    plans: list[_Plan] = []
    skipped: list[Skipped] = []
    for c in candidates:
        if c.ticker not in books and c.ticker in prices:
            books[c.ticker] = _price_book(prices[c.ticker], c.ticker)
        p = _plan(rules, c, sessions_of.get(c.ticker), books.get(c.ticker), fx_books)
        if isinstance(p, str):
            skipped.append(Skipped(c.event_id, c.ticker, p))
        else:
            plans.append(p)

    n = len(plans)
    each = rules.notional / n if (rules.sizing == "equal" and n) else rules.notional
    trades: list[Trade] = []
    for p in plans:
        pnl, cost = trade_pnl(
            p.direction, each, p.entry_price, p.exit_price, p.fx_entry, p.fx_exit, rules.cost_bps
        )
        trades.append(
            Trade(
                event_id=p.c.event_id,
                ticker=p.c.ticker,
                direction=p.direction,
                allowed_at=p.allowed_at,
                entry_date=p.entry_date,
                entry_time=p.entry_time,
                entry_price=p.entry_price,
                exit_date=p.exit_date,
                exit_time=p.exit_time,
                exit_price=p.exit_price,
                exit_reason=p.exit_reason,
                sessions_held=p.sessions_held,
                gross_return=p.direction * (p.exit_price / p.entry_price - 1.0),
                cost=cost,
                notional=each,
                fx_entry=p.fx_entry,
                fx_exit=p.fx_exit,
                pnl=pnl,
                net_return=pnl / each,
            )
        )

    if rules.sizing == "equal":
        cap = rules.notional
    else:
        cap = capital if capital is not None else rules.notional * max(n, 1)

    schema = {"date": pl.Date, "equity": pl.Float64, "benchmark_equity": pl.Float64}
    if trades:
        start = min(t.entry_date for t in trades)
        end = max(t.exit_date for t in trades)
        days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        realized: dict[date, float] = {}
        for t in trades:
            realized[t.exit_date] = realized.get(t.exit_date, 0.0) + t.pnl
        level, eq = cap, []
        for day in days:
            level += realized.get(day, 0.0)
            eq.append(level)
        if benchmark is not None:
            first_entry = min(t.entry_time for t in trades)
            rel = _benchmark_levels(benchmark, first_entry, days)
            bench: list[float | None] = [None if x is None else cap * x for x in rel]
        else:
            bench = [None] * len(days)
        equity = pl.DataFrame(
            {"date": days, "equity": eq, "benchmark_equity": bench}, schema=schema
        )
    else:
        equity = pl.DataFrame(schema=schema)

    return BacktestResult(
        trades=tuple(trades),
        skipped=tuple(skipped),
        equity=equity,
        stats=_stats(equity, trades, cap, len(skipped)),
        capital=cap,
    )
