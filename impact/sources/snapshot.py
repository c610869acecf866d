"""A directory of price CSV files: the offline source.

Layout (the format of ``../shared/data/prices``)::

    NVDA.csv, GSPC.csv (for ^GSPC), 000660.KS.csv, ...
        date,open,high,low,close,adj_close,volume   (all seven columns required;
                                                     cells may be empty)
    dividends.csv (optional)
        ticker,ex_date,amount,currency
    splits.csv (optional, informational)
        ticker,date,ratio — prices are expected to be split-adjusted already;
        splits are never applied again.

``close`` is the as-traded (split-adjusted) close and ``adj_close`` the split- and
dividend-adjusted close; either may be empty. Every problem is reported with the
file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import polars as pl

from impact.errors import InputError, PriceFileError
from impact.frames import DIVIDENDS_SCHEMA, PRICES_SCHEMA
from impact.sources import PriceData

PRICE_COLUMNS = ("date", "open", "high", "low", "close", "adj_close", "volume")
DIVIDEND_COLUMNS = ("ticker", "ex_date", "amount", "currency")


def file_name(ticker: str) -> str:
    """The snapshot file name of a ticker (``^GSPC`` -> ``GSPC.csv``)."""
    return ticker.lstrip("^") + ".csv"


def _number(text: str, path: Path, line: int, column: str) -> float | None:
    text = text.strip()
    if text == "":
        return None
    try:
        value = float(text.replace(",", "")) if column == "volume" else float(text)
    except ValueError:
        raise PriceFileError(
            f"{path}:{line}: column '{column}' holds {text!r}, which is not a number: "
            f"fix the cell or leave it empty"
        ) from None
    if not math.isfinite(value):
        raise PriceFileError(
            f"{path}:{line}: column '{column}' holds {text!r}: leave the cell empty instead"
        )
    if column != "volume" and value <= 0:
        raise PriceFileError(
            f"{path}:{line}: column '{column}' holds {text!r}: prices must be positive"
        )
    return value


def _date(text: str, path: Path, line: int, column: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise PriceFileError(
            f"{path}:{line}: column '{column}' holds {text!r}, which is not an ISO date "
            f"(YYYY-MM-DD)"
        ) from None


def _reader(path: Path, required: tuple[str, ...]) -> tuple[csv.DictReader[str], list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PriceFileError(f"{path}: cannot read the file: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise PriceFileError(
            f"{path}:1: the header lacks column(s) {', '.join(missing)}: the header must be "
            f"{','.join(required)} (got {','.join(header) or 'an empty file'})"
        )
    reader.fieldnames = header
    return reader, header


def read_price_file(path: Path, ticker: str) -> pl.DataFrame:
    """Read and validate one ticker's CSV file.

    Parameters
    ----------
    path
        The file.
    ticker
        The ticker it holds (written to the ``ticker`` column).

    Returns
    -------
    polars.DataFrame
        In :data:`impact.frames.PRICES_SCHEMA`, sorted by date.

    Raises
    ------
    PriceFileError
        With the file, the line and the fix.
    """
    reader, _ = _reader(path, PRICE_COLUMNS)
    rows: dict[str, list[object]] = {c: [] for c in PRICES_SCHEMA}
    seen: dict[date, int] = {}
    for rec in reader:
        line = reader.line_num
        d = _date(rec.get("date") or "", path, line, "date")
        if d in seen:
            raise PriceFileError(
                f"{path}:{line}: date {d} appears twice (first at line {seen[d]}): "
                f"keep one row per date"
            )
        seen[d] = line
        rows["ticker"].append(ticker)
        rows["date"].append(d)
        for col in PRICE_COLUMNS[1:]:
            rows[col].append(_number(rec.get(col) or "", path, line, col))
    frame = pl.DataFrame(rows, schema=PRICES_SCHEMA)
    return frame.sort("date")


def read_dividends(path: Path) -> pl.DataFrame:
    """Read and validate ``dividends.csv``.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    polars.DataFrame
        In :data:`impact.frames.DIVIDENDS_SCHEMA`.
    """
    reader, _ = _reader(path, DIVIDEND_COLUMNS)
    rows: dict[str, list[object]] = {c: [] for c in DIVIDENDS_SCHEMA}
    for rec in reader:
        line = reader.line_num
        ticker = (rec.get("ticker") or "").strip()
        if not ticker:
            raise PriceFileError(f"{path}:{line}: the ticker is empty")
        amount = _number(rec.get("amount") or "", path, line, "amount")
        if amount is None:
            raise PriceFileError(f"{path}:{line}: the amount is empty")
        rows["ticker"].append(ticker)
        rows["ex_date"].append(_date(rec.get("ex_date") or "", path, line, "ex_date"))
        rows["amount"].append(amount)
        rows["currency"].append((rec.get("currency") or "").strip() or None)
    return pl.DataFrame(rows, schema=DIVIDENDS_SCHEMA)


class SnapshotSource:
    """Prices from a directory of CSV files (offline)."""

    name = "snapshot"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def fetch(self, tickers: list[str], start: date, end: date, *,
              timezones: Mapping[str, str] | None = None) -> PriceData:
        """Read the tickers' files, keeping rows between ``start`` and ``end``.

        Raises
        ------
        InputError
            If a ticker has no file (the message lists what is there).
        PriceFileError
            If a file is malformed.
        """
        frames = []
        for ticker in tickers:
            path = self.directory / file_name(ticker)
            if not path.is_file():
                have = sorted(
                    p.stem for p in self.directory.glob("*.csv")
                    if p.name not in ("dividends.csv", "splits.csv")
                )
                raise InputError(
                    f"unknown ticker '{ticker}': the snapshot directory {self.directory} "
                    f"has no {file_name(ticker)} (it has: {', '.join(have)}). Check the "
                    f"ticker in the study file, add the file, or use --source yahoo."
                )
            frame = read_price_file(path, ticker)
            frames.append(frame.filter(pl.col("date").is_between(start, end)))
        prices = pl.concat(frames) if frames else pl.DataFrame(schema=PRICES_SCHEMA)
        div_path = self.directory / "dividends.csv"
        dividends = None
        if div_path.is_file():
            dividends = read_dividends(div_path).filter(pl.col("ticker").is_in(tickers))
        return PriceData(
            prices=prices,
            dividends=dividends,
            source=f"snapshot:{self.directory}",
        )
