"""Daily returns on each exchange's sessions, with the basis used per row.

Rule (per session t, against the previous session of the same exchange):

1. ``adj_close`` on t and t-1 both present: R = adj_t / adj_{t-1} - 1
   (basis ``adj_close``);
2. else ``close`` on t and t-1 both present: R = (close_t + D_t) / close_{t-1} - 1
   where D_t is the cash dividend going ex on t from ``dividends.csv``
   (basis ``close+dividends`` when the source has dividend records for the
   ticker, else ``close``);
3. else no return (basis ``gap``): a missing price is an explicit gap, never a
   silent shift to another day.

Returns are simple returns as decimal fractions. Prices must be split-adjusted
(both sources deliver them so); splits are never applied here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from impact.calendars import Sessions
from impact.frames import RETURNS_SCHEMA


@dataclass
class ReturnsResult:
    """Returns for several tickers and what was noticed on the way."""

    #: In :data:`impact.frames.RETURNS_SCHEMA`.
    returns: pl.DataFrame
    #: Human-readable notes (non-session rows dropped, gaps found).
    notes: list[str] = field(default_factory=list)
    #: Per ticker: the sessions with no usable price (inside the price range).
    gaps: dict[str, list[str]] = field(default_factory=dict)


def compute_returns(
    prices: pl.DataFrame,
    dividends: pl.DataFrame | None,
    sessions_of: dict[str, Sessions],
) -> ReturnsResult:
    """Compute daily returns per ticker on its exchange's sessions.

    Parameters
    ----------
    prices
        Prices in :data:`impact.frames.PRICES_SCHEMA`.
    dividends
        Dividends in :data:`impact.frames.DIVIDENDS_SCHEMA`, or None when the
        source has no dividend information.
    sessions_of
        Each ticker's exchange sessions, covering its price range.

    Returns
    -------
    ReturnsResult
    """
    out: list[pl.DataFrame] = []
    notes: list[str] = []
    gaps: dict[str, list[str]] = {}
    for ticker, group in prices.partition_by("ticker", as_dict=True, maintain_order=True).items():
        tk = str(ticker[0])
        group = group.filter(
            pl.col("close").is_not_null() | pl.col("adj_close").is_not_null()
        ).sort("date")
        if group.height == 0:
            notes.append(f"{tk}: no usable price")
            continue
        sess = sessions_of[tk]
        all_sessions = set(sess.dates)
        on_session = group.filter(pl.col("date").is_in(list(all_sessions)))
        dropped = group.height - on_session.height
        if on_session.height == 0:
            notes.append(f"{tk}: no price on any {sess.exchange} session")
            continue
        first, last = on_session["date"][0], on_session["date"][-1]
        sess_dates = [d for d in sess.dates if first <= d <= last]
        if dropped:
            bad = group.filter(~pl.col("date").is_in(list(all_sessions)))["date"].to_list()
            notes.append(
                f"{tk}: {dropped} row(s) on dates that are not {sess.exchange} sessions were "
                f"ignored ({', '.join(str(d) for d in bad[:5])}{', ...' if dropped > 5 else ''})"
            )
        frame = (
            pl.DataFrame({"date": sess_dates}, schema={"date": pl.Date()})
            .join(on_session.select("date", "close", "adj_close"), on="date", how="left")
        )
        has_divs = dividends is not None and dividends.filter(pl.col("ticker") == tk).height > 0
        if dividends is not None:
            d = (
                dividends.filter(pl.col("ticker") == tk)
                .group_by("ex_date")
                .agg(pl.col("amount").sum().alias("div"))
                .rename({"ex_date": "date"})
            )
            frame = frame.join(d, on="date", how="left")
        else:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64()).alias("div"))
        close_basis = "close+dividends" if has_divs else "close"
        frame = frame.with_columns(
            pl.col("date").shift(1).alias("prev_date"),
            pl.col("adj_close").shift(1).alias("prev_adj"),
            pl.col("close").shift(1).alias("prev_close"),
        ).slice(1)
        use_adj = pl.col("adj_close").is_not_null() & pl.col("prev_adj").is_not_null()
        use_close = pl.col("close").is_not_null() & pl.col("prev_close").is_not_null()
        frame = frame.with_columns(
            pl.when(use_adj)
            .then(pl.col("adj_close") / pl.col("prev_adj") - 1.0)
            .when(use_close)
            .then((pl.col("close") + pl.col("div").fill_null(0.0)) / pl.col("prev_close") - 1.0)
            .otherwise(None)
            .alias("ret"),
            pl.when(use_adj)
            .then(pl.lit("adj_close"))
            .when(use_close)
            .then(pl.lit(close_basis))
            .otherwise(pl.lit("gap"))
            .alias("basis"),
        )
        missing = [
            str(d) for d, c, a in zip(
                frame["date"], frame["close"], frame["adj_close"], strict=True
            ) if c is None and a is None
        ]
        if missing:
            gaps[tk] = missing
            notes.append(
                f"{tk}: no price on {len(missing)} {sess.exchange} session(s) "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): "
                f"returns there are gaps"
            )
        out.append(
            frame.select(
                pl.lit(tk).alias("ticker"), "date", "prev_date", "ret", "basis"
            )
        )
    returns = pl.concat(out) if out else pl.DataFrame(schema=RETURNS_SCHEMA)
    return ReturnsResult(returns=returns.cast(RETURNS_SCHEMA), notes=notes, gaps=gaps)  # type: ignore[arg-type]
