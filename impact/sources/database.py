"""Prices already in the database: the source ``impact update`` computes studies from.

After ``impact update`` has brought the ``prices`` and ``dividends`` tables up to
date from the network or a snapshot, studies are recomputed from the database, so
a study whose inputs did not change gives the same inputs hash and is not run
again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import duckdb
import polars as pl

from impact.errors import InputError
from impact.frames import DIVIDENDS_SCHEMA, PRICES_SCHEMA
from impact.sources import PriceData


class DatabaseSource:
    """Prices and dividends from an open impact database."""

    name = "database"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def fetch(self, tickers: list[str], start: date, end: date, *,
              timezones: Mapping[str, str] | None = None) -> PriceData:
        """Rows of ``prices`` and ``dividends`` for the tickers between two dates.

        Raises
        ------
        InputError
            If a ticker has no prices in the database.
        """
        cols = ", ".join(PRICES_SCHEMA)
        prices = pl.DataFrame(self.con.execute(
            f"SELECT {cols} FROM prices WHERE ticker IN (SELECT unnest(?::VARCHAR[])) "
            f"AND date BETWEEN ? AND ? ORDER BY ticker, date", [tickers, start, end]
        ).fetchall(), schema=PRICES_SCHEMA, orient="row")
        missing = sorted(set(tickers) - set(prices["ticker"].unique().to_list()))
        if missing:
            raise InputError(f"no prices in the database for {', '.join(missing)} between "
                             f"{start} and {end}: run impact update or impact run first")
        dcols = ", ".join(DIVIDENDS_SCHEMA)
        dividends = pl.DataFrame(self.con.execute(
            f"SELECT {dcols} FROM dividends WHERE ticker IN (SELECT unnest(?::VARCHAR[])) "
            f"ORDER BY ticker, ex_date", [tickers]).fetchall(),
            schema=DIVIDENDS_SCHEMA, orient="row")
        sources = [r[0] for r in self.con.execute(
            "SELECT DISTINCT source FROM prices WHERE ticker IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY 1", [tickers]).fetchall()]
        return PriceData(prices=prices, dividends=dividends if dividends.height else None,
                         source=" + ".join(sources) or "database")
