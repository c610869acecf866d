"""impact update: idempotence, retries, the lock, a kill mid-run; impact schedule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest
from click.testing import CliRunner

from impact.cli import main
from impact.sources.yahoo import YahooSource
from impact.update import UpdateConfig, load_update_config, run_update
from tests.conftest import ROOT, STUDY


def counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in ("prices", "returns", "runs", "car", "update_log")}
    finally:
        con.close()


def config(tmp_path: Path, prices_dir: Path) -> Path:
    cfg = tmp_path / "update.toml"
    cfg.write_text(f'[update]\nstudies = ["{STUDY}"]\nprices_dir = "{prices_dir}"\n'
                   f'reports_dir = "{tmp_path / "reports"}"\n')
    return cfg


def test_update_twice_changes_nothing_the_second_time(tmp_path: Path, prices_dir: Path) -> None:
    cfg, db = config(tmp_path, prices_dir), tmp_path / "u.duckdb"
    runner = CliRunner()
    first = runner.invoke(main, ["update", "--config", str(cfg), "--db", str(db)])
    assert first.exit_code == 0, first.output
    assert "study   deepseek" in first.stdout and "run 1 added" in first.stdout
    assert (tmp_path / "reports" / "deepseek" / "report.html").exists()
    before = counts(db)
    second = runner.invoke(main, ["update", "--config", str(cfg), "--db", str(db)])
    assert second.exit_code == 0, second.output
    assert "update 2: nothing changed" in second.stdout
    after = counts(db)
    assert {k: v for k, v in after.items() if k != "update_log"} == {
        k: v for k, v in before.items() if k != "update_log"}
    con = duckdb.connect(str(db), read_only=True)
    log = con.execute("SELECT update_id, step, status FROM update_log WHERE update_id = 2 "
                      "AND step <> 'summary'").fetchall()
    con.close()
    assert log and {s for _, _, s in log} == {"unchanged"}


class FlakyYahoo:
    """yfinance stand-in serving the snapshot; the first two calls fail."""

    def __init__(self, prices_dir: Path, fail_first: int = 2, always_fail: str = "") -> None:
        self.prices_dir, self.calls, self.fail_first = prices_dir, 0, fail_first
        self.always_fail = always_fail

    def Ticker(self, ticker: str) -> _Hist:  # noqa: N802 - yfinance's name
        self.calls += 1
        if self.calls <= self.fail_first or ticker == self.always_fail:
            raise ConnectionError("Yahoo is down")
        return _Hist(self.prices_dir / (ticker.lstrip("^") + ".csv"), ticker)


class _Hist:
    def __init__(self, path: Path, ticker: str) -> None:
        self.path, self.ticker = path, ticker

    def history(self, *, start: str, end: str, **_kw: object) -> pd.DataFrame:
        f = pl.read_csv(self.path, try_parse_dates=True).filter(
            pl.col("date").is_between(date.fromisoformat(start), date.fromisoformat(end),
                                      closed="left"))
        tz = "Asia/Seoul" if self.ticker.endswith(".KS") or self.ticker == "^KS11" \
            else "America/New_York"
        idx = pd.DatetimeIndex([pd.Timestamp(d, tz=tz) for d in f["date"].to_list()])
        return pd.DataFrame({"Open": f["open"].to_list(), "High": f["high"].to_list(),
                             "Low": f["low"].to_list(), "Close": f["close"].to_list(),
                             "Adj Close": f["adj_close"].to_list(),
                             "Volume": f["volume"].to_list(),
                             "Dividends": [0.0] * f.height}, index=idx)


def test_yahoo_failing_twice_then_succeeding(tmp_path: Path, prices_dir: Path) -> None:
    fake = FlakyYahoo(prices_dir, fail_first=2)
    sleeps: list[float] = []
    src = YahooSource(client=fake, sleep=sleeps.append)
    cfg = UpdateConfig(path=tmp_path / "u.toml", studies=(STUDY,),
                       reports_dir=tmp_path / "reports")
    summary = run_update(cfg, tmp_path / "u.duckdb", source=src, today=date(2025, 12, 31))
    assert sleeps == [2.0, 4.0]  # two failures, backoff doubling, then success
    assert not summary.failed and summary.exit_code == 0
    assert counts(tmp_path / "u.duckdb")["runs"] == 1


def test_a_ticker_that_cannot_be_fetched_is_reported(tmp_path: Path, prices_dir: Path) -> None:
    db = tmp_path / "u.duckdb"
    cfg = UpdateConfig(path=tmp_path / "u.toml", studies=(STUDY,),
                       reports_dir=tmp_path / "reports")
    ok = YahooSource(client=FlakyYahoo(prices_dir, fail_first=0), sleep=lambda _s: None)
    run_update(cfg, db, source=ok, today=date(2025, 6, 30))
    before = counts(db)
    broken = YahooSource(client=FlakyYahoo(prices_dir, fail_first=0, always_fail="NVDA"),
                         sleep=lambda _s: None)
    summary = run_update(cfg, db, source=broken, today=date(2025, 12, 31))
    assert summary.exit_code == 5
    (failed,) = [s for s in summary.failed if s.step == "prices"]
    assert failed.target == "NVDA" and "could not reach Yahoo" in failed.detail
    after = counts(db)
    assert after["prices"] > before["prices"]  # the others were extended
    con = duckdb.connect(str(db), read_only=True)
    nvda = con.execute("SELECT max(date) FROM prices WHERE ticker = 'NVDA'").fetchall()[0][0]
    con.close()
    assert nvda <= date(2025, 6, 30)  # NVDA's stored rows are kept as they were


def _start_update(cfg: Path, db: Path, pause: float) -> subprocess.Popen[str]:
    env = {**os.environ, "IMPACT_TEST_PAUSE_IN_UPDATE": str(pause)}
    return subprocess.Popen([sys.executable, "-m", "impact.cli", "update", "--config", str(cfg),
                             "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env=env)


def _wait_for_pause(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "paused inside a transaction" in line:
            return
        if not line and proc.poll() is not None:
            break
    pytest.fail("the update never reached its write transaction")


def test_killed_update_leaves_the_database_as_before(tmp_path: Path, prices_dir: Path,
                                                     deepseek_run) -> None:  # type: ignore[no-untyped-def]
    cfg, db = config(tmp_path, prices_dir), tmp_path / "u.duckdb"
    import shutil

    shutil.copy(deepseek_run.db, db)
    before = counts(db)
    proc = _start_update(cfg, db, pause=60)
    _wait_for_pause(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert counts(db) == before  # the open transaction is gone
    res = CliRunner().invoke(main, ["update", "--config", str(cfg), "--db", str(db)])
    assert res.exit_code == 0, res.output  # the lock died with the process
    assert counts(db)["prices"] > before["prices"]


def test_two_updates_at_once_one_waits_for_nobody(tmp_path: Path, prices_dir: Path) -> None:
    cfg, db = config(tmp_path, prices_dir), tmp_path / "u.duckdb"
    first = _start_update(cfg, db, pause=60)
    try:
        _wait_for_pause(first)
        t0 = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "impact.cli", "update", "--config",
                                 str(cfg), "--db", str(db)], capture_output=True, text=True,
                                cwd=ROOT, timeout=60)
        assert time.monotonic() - t0 < 30  # exits at once, does not wait
        assert second.returncode == 8
        assert "another impact update is running" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.kill()
        first.wait()


def test_update_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "u.toml"
    bad.write_text('[update]\nstudys = ["x.toml"]\n')
    res = CliRunner().invoke(main, ["update", "--config", str(bad), "--db",
                                    str(tmp_path / "x.duckdb")])
    assert res.exit_code == 3 and "unknown key 'studys'" in res.stderr
    assert not (tmp_path / "x.duckdb").exists()
    cfg = load_update_config(ROOT / "events" / "update.toml")
    assert cfg.studies == (STUDY,)


def test_schedule_prints_and_installs(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["schedule", "--at", "07:00", "--tz", "Asia/Seoul"])
    assert res.exit_code == 0
    assert "CRON_TZ=Asia/Seoul" in res.stdout
    assert "0 7 * * 1-5 cd " in res.stdout and "impact update --config" in res.stdout
    assert "OnCalendar=Mon..Fri *-*-* 07:00:00 Asia/Seoul" in res.stdout
    assert "ExecStart=impact update" in res.stdout
    res = CliRunner().invoke(main, ["schedule", "--install", str(tmp_path / "units")])
    assert res.exit_code == 0
    assert {p.name for p in (tmp_path / "units").iterdir()} == {
        "impact-update.crontab", "impact-update.service", "impact-update.timer"}
    bad = CliRunner().invoke(main, ["schedule", "--at", "25:00"])
    assert bad.exit_code == 3 and "HH:MM" in bad.stderr
