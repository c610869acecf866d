"""Price sources: the CSV snapshot, Yahoo (through a fake client) and the choice between them."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from impact.errors import ExitCode, InputError, PriceFileError, SourceError
from impact.frames import DIVIDENDS_SCHEMA, PRICES_SCHEMA
from impact.sources import ENV_PRICES_DIR, choose_source
from impact.sources.snapshot import SnapshotSource, read_price_file
from impact.sources.yahoo import YahooSource

HEADER = "date,open,high,low,close,adj_close,volume"
NVDA_ROWS = [
    "2025-01-24,148.87,148.97,141.88,142.62,142.59,234657600",
    "2025-01-27,124.8,128.4,116.7,118.42,118.39,818830900",
    "2025-01-28,121.81,129,116.25,128.99,128.96,579666400",
    "2025-01-29,126.5,126.89,120.05,123.7,123.67,467120600",
]
# Korean files of the shared snapshot have an empty adj_close column.
HYNIX_ROWS = [
    "2025-01-24,212000,216500,209000,215500,,3250000",
    "2025-01-31,200000,204000,196700,199200,,6030000",
]


def write_csv(directory: Path, name: str, header: str, rows: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def snap(tmp_path: Path) -> Path:
    d = tmp_path / "prices"
    write_csv(d, "NVDA.csv", HEADER, NVDA_ROWS)
    write_csv(d, "000660.KS.csv", HEADER, HYNIX_ROWS)
    write_csv(d, "GSPC.csv", HEADER, [
        "2025-01-24,6118.71,6128.18,6088.74,6101.24,6101.24,4.2e9",
        "2025-01-27,5969.04,6017.17,5962.92,6012.28,6012.28,5.0e9",
    ])
    write_csv(d, "dividends.csv", "ticker,ex_date,amount,currency", [
        "NVDA,2024-12-05,0.01,USD",
        "000660.KS,2024-12-27,375,KRW",
    ])
    write_csv(d, "splits.csv", "ticker,date,ratio", ["NVDA,2024-06-10,10"])
    return d


# --------------------------------------------------------------------------- snapshot


def test_snapshot_reads_the_shared_format(snap: Path) -> None:
    data = SnapshotSource(snap).fetch(
        ["NVDA", "000660.KS", "^GSPC"], date(2024, 12, 1), date(2025, 1, 28))
    assert data.source == f"snapshot:{snap}"
    assert dict(data.prices.schema) == PRICES_SCHEMA
    by_ticker = data.prices.group_by("ticker").len().sort("ticker").rows()
    # ^GSPC is read from GSPC.csv; NVDA's 2025-01-29 row is after the end date
    assert by_ticker == [("000660.KS", 1), ("NVDA", 3), ("^GSPC", 2)]
    nvda = data.prices.filter(pl.col("ticker") == "NVDA").sort("date")
    assert nvda["date"].to_list() == [date(2025, 1, 24), date(2025, 1, 27), date(2025, 1, 28)]
    assert nvda.row(1, named=True) == {
        "ticker": "NVDA", "date": date(2025, 1, 27), "open": 124.8, "high": 128.4,
        "low": 116.7, "close": 118.42, "adj_close": 118.39, "volume": 818830900.0,
    }
    hynix = data.prices.filter(pl.col("ticker") == "000660.KS").row(0, named=True)
    assert hynix["close"] == 215500.0
    assert hynix["adj_close"] is None  # an empty cell is a null, not an error
    assert data.dividends is not None
    assert dict(data.dividends.schema) == DIVIDENDS_SCHEMA
    assert sorted(data.dividends.select("ticker", "ex_date", "amount").rows()) == [
        ("000660.KS", date(2024, 12, 27), 375.0),
        ("NVDA", date(2024, 12, 5), 0.01),
    ]


def test_snapshot_reads_a_real_shared_file(prices_dir: Path) -> None:
    shared = prices_dir / "NVDA.csv"
    frame = read_price_file(shared, "NVDA")
    assert frame.height > 250
    jan27 = frame.filter(pl.col("date") == date(2025, 1, 27)).row(0, named=True)
    jan24 = frame.filter(pl.col("date") == date(2025, 1, 24)).row(0, named=True)
    # Nvidia's -16.97% day
    assert jan27["close"] / jan24["close"] - 1 == pytest.approx(-0.1697, abs=5e-4)


def test_snapshot_missing_column(snap: Path) -> None:
    path = write_csv(snap, "NVDA.csv", "date,open,high,low,close,volume",
                     ["2025-01-24,148.87,148.97,141.88,142.62,234657600"])
    with pytest.raises(PriceFileError) as info:
        SnapshotSource(snap).fetch(["NVDA"], date(2025, 1, 1), date(2025, 2, 1))
    msg = str(info.value)
    assert msg.startswith(f"{path}:1: ")
    assert "lacks column(s) adj_close" in msg
    assert f"the header must be {HEADER}" in msg
    assert "got date,open,high,low,close,volume" in msg
    assert info.value.exit_code == ExitCode.INPUT


def test_snapshot_empty_file(snap: Path) -> None:
    path = snap / "NVDA.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(PriceFileError, match=re.escape(f"{path}:1: ")) as info:
        SnapshotSource(snap).fetch(["NVDA"], date(2025, 1, 1), date(2025, 2, 1))
    assert "an empty file" in str(info.value)


def test_snapshot_non_numeric_cell(snap: Path) -> None:
    rows = list(NVDA_ROWS)
    rows[2] = rows[2].replace(",128.99,", ",12x.99,")
    path = write_csv(snap, "NVDA.csv", HEADER, rows)
    with pytest.raises(PriceFileError) as info:
        SnapshotSource(snap).fetch(["NVDA"], date(2025, 1, 1), date(2025, 2, 1))
    msg = str(info.value)
    # header is line 1, so the third data row is line 4
    assert msg.startswith(f"{path}:4: ")
    assert "column 'close'" in msg
    assert "'12x.99'" in msg
    assert "not a number" in msg
    assert "fix the cell or leave it empty" in msg


def test_snapshot_bad_date(snap: Path) -> None:
    rows = list(NVDA_ROWS)
    rows[1] = rows[1].replace("2025-01-27", "27/01/2025")
    path = write_csv(snap, "NVDA.csv", HEADER, rows)
    with pytest.raises(PriceFileError) as info:
        SnapshotSource(snap).fetch(["NVDA"], date(2025, 1, 1), date(2025, 2, 1))
    msg = str(info.value)
    assert msg.startswith(f"{path}:3: ")
    assert "column 'date'" in msg and "YYYY-MM-DD" in msg


def test_snapshot_duplicate_dates(snap: Path) -> None:
    rows = [*NVDA_ROWS, NVDA_ROWS[1]]
    path = write_csv(snap, "NVDA.csv", HEADER, rows)
    with pytest.raises(PriceFileError) as info:
        SnapshotSource(snap).fetch(["NVDA"], date(2025, 1, 1), date(2025, 2, 1))
    msg = str(info.value)
    assert msg.startswith(f"{path}:6: ")
    assert "date 2025-01-27 appears twice (first at line 3)" in msg
    assert "keep one row per date" in msg


def test_snapshot_unknown_ticker_lists_available_files(snap: Path) -> None:
    with pytest.raises(InputError) as info:
        SnapshotSource(snap).fetch(["NVDA", "NVDX"], date(2025, 1, 1), date(2025, 2, 1))
    assert type(info.value) is InputError
    assert info.value.exit_code == ExitCode.INPUT
    msg = str(info.value)
    assert "unknown ticker 'NVDX'" in msg
    assert str(snap) in msg
    assert "has no NVDX.csv" in msg
    assert "(it has: 000660.KS, GSPC, NVDA)" in msg  # dividends.csv and splits.csv left out
    assert "--source yahoo" in msg


# --------------------------------------------------------------------------- yahoo


def yahoo_frame(dates: list[str], tz: str = "America/New_York",
                dividends: list[float] | None = None) -> pd.DataFrame:
    n = len(dates)
    index = pd.DatetimeIndex([pd.Timestamp(d, tz=tz) for d in dates], name="Date")
    closes = [100.0 + i for i in range(n)]
    return pd.DataFrame(
        {
            "Open": [c - 1 for c in closes],
            "High": [c + 2 for c in closes],
            "Low": [c - 2 for c in closes],
            "Close": closes,
            "Adj Close": [c - 0.5 for c in closes],
            "Volume": [1_000_000 + i for i in range(n)],
            "Dividends": dividends if dividends is not None else [0.0] * n,
            "Stock Splits": [0.0] * n,
        },
        index=index,
    )


class FakeTicker:
    def __init__(self, client: FakeYahoo, ticker: str) -> None:
        self.client = client
        self.ticker = ticker

    def history(self, **kwargs: Any) -> pd.DataFrame:
        self.client.calls.append((self.ticker, kwargs))
        if self.client.failures > 0:
            self.client.failures -= 1
            raise ConnectionError("connection reset by peer")
        return self.client.frames[self.ticker]


class FakeYahoo:
    """A stand-in for the yfinance module: ``Ticker(t).history(...)``."""

    def __init__(self, frames: dict[str, pd.DataFrame], failures: int = 0) -> None:
        self.frames = frames
        self.failures = failures
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def Ticker(self, ticker: str) -> FakeTicker:  # noqa: N802 - yfinance's spelling
        return FakeTicker(self, ticker)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


DATES = ["2025-01-23", "2025-01-24", "2025-01-27", "2025-01-28"]


def test_yahoo_retries_then_succeeds() -> None:
    client = FakeYahoo({"NVDA": yahoo_frame(DATES)}, failures=2)
    sleeps = Sleeps()
    data = YahooSource(client, sleep=sleeps).fetch(["NVDA"], date(2025, 1, 23), date(2025, 1, 28))
    assert len(client.calls) == 3
    assert len(sleeps) == 2
    assert sleeps[0] > 0
    assert sleeps[1] > sleeps[0]
    assert sleeps == [2.0, 4.0]  # the documented default: 2 s, doubled after each failure
    assert data.source == "yahoo"
    assert dict(data.prices.schema) == PRICES_SCHEMA
    assert data.prices["date"].to_list() == [date.fromisoformat(d) for d in DATES]
    first = data.prices.row(0, named=True)
    assert first == {"ticker": "NVDA", "date": date(2025, 1, 23), "open": 99.0, "high": 102.0,
                     "low": 98.0, "close": 100.0, "adj_close": 99.5, "volume": 1_000_000.0}
    # both closes are asked for, and yfinance's exclusive end is one day after the last day
    kwargs = client.calls[-1][1]
    assert kwargs["auto_adjust"] is False
    assert kwargs["start"] == "2025-01-23"
    assert kwargs["end"] == "2025-01-29"


def test_yahoo_unreachable() -> None:
    client = FakeYahoo({"NVDA": yahoo_frame(DATES)}, failures=10**6)
    sleeps = Sleeps()
    with pytest.raises(SourceError) as info:
        YahooSource(client, retries=3, sleep=sleeps).fetch(
            ["NVDA"], date(2025, 1, 23), date(2025, 1, 28))
    msg = str(info.value)
    assert "could not reach Yahoo Finance for 'NVDA' after 3 attempts" in msg
    assert "ConnectionError" in msg
    assert "--prices-dir DIR" in msg
    assert info.value.exit_code == ExitCode.SOURCE
    assert len(client.calls) == 3
    assert sleeps == [2.0, 4.0]  # no pointless wait after the last attempt


def test_yahoo_empty_frame_is_an_unknown_ticker() -> None:
    client = FakeYahoo({"NVDX": yahoo_frame([])})
    sleeps = Sleeps()
    with pytest.raises(InputError) as info:
        YahooSource(client, sleep=sleeps).fetch(["NVDX"], date(2025, 1, 23), date(2025, 1, 28))
    assert not isinstance(info.value, SourceError)
    assert info.value.exit_code == ExitCode.INPUT
    msg = str(info.value)
    assert "unknown ticker 'NVDX'" in msg
    assert "2025-01-23" in msg and "2025-01-28" in msg
    assert sleeps == []  # an empty answer is not retried


def test_yahoo_missing_ticker_exception_is_an_unknown_ticker() -> None:
    class YFTickerMissingError(Exception):
        pass

    class Client:
        calls = 0

        def Ticker(self, ticker: str) -> Any:  # noqa: N802
            client = self

            class T:
                def history(self, **kwargs: Any) -> pd.DataFrame:
                    client.calls += 1
                    raise YFTickerMissingError(f"${ticker}: possibly delisted")

            return T()

    client = Client()
    with pytest.raises(InputError, match="unknown ticker 'NVDX'"):
        YahooSource(client, sleep=Sleeps()).fetch(["NVDX"], date(2025, 1, 1), date(2025, 1, 31))
    assert client.calls == 1


def test_yahoo_dividends() -> None:
    frame = yahoo_frame(DATES, tz="Asia/Seoul", dividends=[0.0, 375.0, 0.0, 0.0])
    client = FakeYahoo({"000660.KS": frame})
    data = YahooSource(client, sleep=Sleeps()).fetch(
        ["000660.KS"], date(2025, 1, 23), date(2025, 1, 28))
    assert data.dividends is not None
    assert dict(data.dividends.schema) == DIVIDENDS_SCHEMA
    assert data.dividends.select("ticker", "ex_date", "amount").rows() == [
        ("000660.KS", date(2025, 1, 24), 375.0)]
    # dates are the exchange-local dates of the tz-aware index
    assert data.prices["date"].to_list() == [date.fromisoformat(d) for d in DATES]


def test_yahoo_fetches_every_ticker() -> None:
    client = FakeYahoo({"NVDA": yahoo_frame(DATES), "^GSPC": yahoo_frame(DATES)})
    data = YahooSource(client, sleep=Sleeps()).fetch(
        ["NVDA", "^GSPC"], date(2025, 1, 24), date(2025, 1, 27))
    assert sorted(set(data.prices["ticker"].to_list())) == ["NVDA", "^GSPC"]
    # rows outside [start, end] are dropped
    assert data.prices.height == 4
    assert data.dividends is not None and data.dividends.height == 0


# --------------------------------------------------------------------------- choose_source


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PRICES_DIR, raising=False)


@pytest.mark.usefixtures("no_env")
def test_choose_auto_with_existing_snapshot(snap: Path) -> None:
    src = choose_source("auto", snap)
    assert isinstance(src, SnapshotSource)
    assert src.name == "snapshot"
    assert src.directory == snap


@pytest.mark.usefixtures("no_env")
def test_choose_auto_without_snapshot_dir_uses_yahoo(tmp_path: Path) -> None:
    assert isinstance(choose_source("auto", tmp_path / "missing"), YahooSource)
    assert isinstance(choose_source("auto", None), YahooSource)


@pytest.mark.usefixtures("no_env")
def test_choose_yahoo_even_when_snapshot_exists(snap: Path) -> None:
    assert isinstance(choose_source("yahoo", snap), YahooSource)
    assert isinstance(choose_source("auto", snap, override_source="yahoo"), YahooSource)


@pytest.mark.usefixtures("no_env")
def test_choose_snapshot_with_missing_dir(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(SourceError) as info:
        choose_source("snapshot", missing)
    msg = str(info.value)
    assert f"the snapshot directory {missing} does not exist" in msg
    assert "--prices-dir" in msg and ENV_PRICES_DIR in msg and "--source yahoo" in msg
    assert info.value.exit_code == ExitCode.SOURCE
    with pytest.raises(SourceError):
        choose_source("auto", None, override_source="snapshot")


@pytest.mark.usefixtures("no_env")
def test_choose_override_dir_wins(snap: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    src = choose_source("snapshot", snap, override_dir=other)
    assert isinstance(src, SnapshotSource) and src.directory == other


def test_choose_env_var_is_honoured(
    snap: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_PRICES_DIR, str(snap))
    # no snapshot in the study: the environment provides it
    src = choose_source("auto", None)
    assert isinstance(src, SnapshotSource) and src.directory == snap
    src = choose_source("snapshot", None)
    assert isinstance(src, SnapshotSource) and src.directory == snap
    # the environment overrides the study file's directory ...
    study_dir = tmp_path / "study-snapshot"
    study_dir.mkdir()
    src = choose_source("auto", study_dir)
    assert isinstance(src, SnapshotSource) and src.directory == snap
    # ... and --prices-dir overrides the environment
    src = choose_source("auto", None, override_dir=study_dir)
    assert isinstance(src, SnapshotSource) and src.directory == study_dir


def test_choose_env_var_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv(ENV_PRICES_DIR, str(missing))
    with pytest.raises(SourceError, match=re.escape(str(missing))):
        choose_source("snapshot", None)


def test_explicit_prices_dir_that_does_not_exist_fails(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped --prices-dir or IMPACT_PRICES_DIR never falls back to Yahoo silently."""
    missing = tmp_path / "typo"
    with pytest.raises(SourceError, match="given by --prices-dir does not exist"):
        choose_source("auto", None, override_dir=missing)
    monkeypatch.setenv("IMPACT_PRICES_DIR", str(missing))
    with pytest.raises(SourceError, match="given by IMPACT_PRICES_DIR does not exist"):
        choose_source("auto", None)
