"""The canonical frames every layer passes around, defined once.

All returns are decimal fractions (-0.1697 is a 16.97% fall). Dates are
exchange-local session dates. Each frame is a polars DataFrame with exactly
these columns; the storage layer writes them to the DuckDB tables of the same
name (see ``docs/schema.md``).
"""

from __future__ import annotations

import polars as pl

#: Daily prices as delivered by a source (one row per ticker and date).
PRICES_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "date": pl.Date(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "adj_close": pl.Float64(),
    "volume": pl.Float64(),
}

#: Cash dividends per share, in the price file's currency and share basis.
DIVIDENDS_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "ex_date": pl.Date(),
    "amount": pl.Float64(),
    "currency": pl.String(),
}

#: Daily returns on each session of the ticker's exchange, with the basis used.
#: ``basis`` is one of :data:`BASES`; ``ret`` is null exactly when basis is ``gap``.
RETURNS_SCHEMA: dict[str, pl.DataType] = {
    "ticker": pl.String(),
    "date": pl.Date(),
    "prev_date": pl.Date(),
    "ret": pl.Float64(),
    "basis": pl.String(),
}

#: How a return was computed.
BASES: dict[str, str] = {
    "adj_close": "from the split- and dividend-adjusted close",
    "close+dividends": "from the close plus the cash dividend on the ex-date (dividends.csv)",
    "close": "from the close alone (no adjusted close and no dividend records)",
    "gap": "no return: the price on this session or the previous one is missing",
}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with a schema."""
    return pl.DataFrame(schema=schema)
