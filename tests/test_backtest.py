"""impact backtest on the DeepSeek case: the example strategies, P&L by hand, bad files."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from impact.cli import main
from tests.conftest import ROOT

STRATEGIES = ROOT / "events" / "strategies"
SIGNAL = STRATEGIES / "short-hynix-after-us-shock.toml"


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run(tmp_path: Path, prices_dir: Path, strategy: Path, db: Path | None = None):  # type: ignore[no-untyped-def]
    db = db or tmp_path / "b.duckdb"
    return CliRunner().invoke(main, ["backtest", str(strategy), "--db", str(db), "--prices-dir",
                                     str(prices_dir), "--reports-dir", str(tmp_path / "r")])


def csv_row(prices_dir: Path, name: str, day: str) -> dict[str, float]:
    f = pl.read_csv(prices_dir / name, try_parse_dates=True)
    return f.filter(pl.col("date").cast(pl.String) == day).row(0, named=True)


def test_short_hynix_after_the_us_shock(tmp_path: Path, prices_dir: Path) -> None:
    res = run(tmp_path, prices_dir, SIGNAL)
    assert res.exit_code == 0, res.output
    db = tmp_path / "b.duckdb"
    (t,) = rows(db, "SELECT event_id, ticker, direction, allowed_at, entry_date, entry_time, "
                    "entry_price, exit_date, exit_price, notional, fx_entry, fx_exit, cost, pnl "
                    "FROM backtest_trades WHERE status = 'taken'")
    (event, ticker, direction, allowed, entry_date, entry_time, entry_px, exit_date, exit_px,
     notional, fx_in, fx_out, cost, pnl) = t
    assert (event, ticker, direction) == ("deepseek-app-store", "000660.KS", -1)
    # the signal (Nvidia's day-0 AR) is known at NYSE's close on 2025-01-27, 21:00 UTC
    assert str(allowed) == "2025-01-27 21:00:00"
    # KRX is shut 01-27..30: the first KRX open after that is 2025-01-31 09:00 KST
    assert str(entry_date) == "2025-01-31" and str(entry_time) == "2025-01-31 00:00:00"
    assert str(exit_date) == "2025-01-31"  # one session: out at the close
    day = csv_row(prices_dir, "000660.KS.csv", "2025-01-31")
    assert entry_px == day["open"] and exit_px == day["close"]
    # FX: the latest New York noon fixing before the entry (09:00 KST) is 2025-01-30's
    fx = pl.read_csv(prices_dir / "USDKRW.csv", try_parse_dates=True)
    rate = dict(zip(fx["date"].cast(pl.String), fx["close"], strict=True))
    assert fx_in == rate["2025-01-30"]
    assert fx_out == rate["2025-01-30"]  # the 01-31 fixing (17:00 UTC) comes after the close
    assert notional == 100_000
    # P&L by hand (docs/backtest.md): funded in KRW at fx_in, converted back at fx_out
    q = notional * fx_in / entry_px
    gross = -q * (exit_px - entry_px)
    costs = 10 / 1e4 * (q * entry_px + q * exit_px)
    expected = (notional * fx_in + gross - costs) / fx_out - notional
    assert math.isclose(pnl, expected, rel_tol=0, abs_tol=1e-9)
    assert math.isclose(cost, costs / fx_out, rel_tol=1e-12)
    report = (tmp_path / "r" / "short-hynix-after-us-shock" / "backtest.md").read_text()
    assert "## Trades" in report and "2025-01-31 00:00" in report
    assert (tmp_path / "r" / "short-hynix-after-us-shock" / "backtest.html").exists()


def test_short_chips_on_every_release(tmp_path: Path, prices_dir: Path) -> None:
    res = run(tmp_path, prices_dir, STRATEGIES / "short-chips-on-deepseek-news.toml")
    assert res.exit_code == 0, res.output
    db = tmp_path / "b.duckdb"
    taken = rows(db, "SELECT event_id, ticker, entry_date, entry_time, allowed_at FROM "
                     "backtest_trades WHERE status = 'taken' ORDER BY trade_no")
    assert len(taken) == 9
    for _e, _t, _d, entry_time, allowed in taken:
        assert entry_time > allowed  # strictly after the news
    nyse_shock = next(r for r in taken if r[0] == "deepseek-app-store" and r[1] == "NVDA")
    assert str(nyse_shock[2]) == "2025-01-27"  # the weekend news: Monday's open
    krx_shock = next(r for r in taken if r[0] == "deepseek-app-store" and r[1] == "000660.KS")
    assert str(krx_shock[2]) == "2025-01-31"
    stats = rows(db, "SELECT stats FROM backtest_runs")[0][0]
    assert '"n_trades": 9' in str(stats)
    assert rows(db, "SELECT count(*) FROM backtest_equity")[0][0] > 10


@pytest.mark.parametrize(("edit", "message"), [
    (("holding = 1", "holding = 0"), "impossible holding period 0"),
    (("cost_bps = 10", "cost_bps = 10\nslippage = 3"), "unknown key 'slippage'"),
    (('securities = ["000660.KS"]', 'securities = ["035420.KS"]'),
     "security '035420.KS' has no prices here"),
    (('direction = "signal"', 'direction = "sideways"'), "direction must be long, short or"),
])
def test_bad_strategy_files_write_nothing(tmp_path: Path, prices_dir: Path,
                                          edit: tuple[str, str], message: str) -> None:
    study = ROOT / "events" / "deepseek.toml"
    text = SIGNAL.read_text().replace(*edit).replace('study = "../deepseek.toml"',
                                                     f'study = "{study}"')
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    db = tmp_path / "b.duckdb"
    res = run(tmp_path, prices_dir, bad, db)
    assert res.exit_code == 3, res.output
    assert message in res.stderr and "Traceback" not in res.output
    assert str(bad) in res.stderr
    assert not db.exists() and not (tmp_path / "r").exists()


def test_a_bad_file_leaves_an_existing_database_as_it_was(tmp_path: Path,
                                                          prices_dir: Path) -> None:
    db = tmp_path / "b.duckdb"
    assert run(tmp_path, prices_dir, SIGNAL, db).exit_code == 0
    before = rows(db, "SELECT count(*) FROM backtest_trades")
    bad = tmp_path / "bad.toml"
    bad.write_text(SIGNAL.read_text().replace("holding = 1", "holding = 999"))
    res = run(tmp_path, prices_dir, bad, db)
    assert res.exit_code == 3 and "impossible holding period 999" in res.stderr
    assert rows(db, "SELECT count(*) FROM backtest_trades") == before
    assert rows(db, "SELECT count(*) FROM backtest_runs") == [(1,)]
