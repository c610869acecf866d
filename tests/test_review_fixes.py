"""Regressions for problems found in review: atomic report, run ids, data end, overlaps."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pytest
from click.testing import CliRunner

from impact import api, storage
from impact.calendars import sessions
from impact.cli import main
from impact.frames import PRICES_SCHEMA
from impact.sources.yahoo import YahooSource
from impact.study import _drop_unfinished_sessions
from tests.conftest import STUDY


def study_text(**replace: str) -> str:
    """The DeepSeek study file for a copy elsewhere: the attributes CSV by absolute path."""
    text = STUDY.read_text().replace(
        'attributes = "deepseek_attributes.csv"',
        f'attributes = "{STUDY.parent / "deepseek_attributes.csv"}"')
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def q(db: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_failed_commit_keeps_the_old_report_and_run_ids_have_no_gaps(
        tmp_path: Path, prices_dir: Path, deepseek_run,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "impact.duckdb"
    shutil.copy(deepseek_run.db, db)
    reports = tmp_path / "reports"
    shutil.copytree(deepseek_run.report.directory, reports / "deepseek")
    before = (reports / "deepseek" / "report.md").read_text()

    @contextmanager
    def failing_commit(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        con.execute("BEGIN TRANSACTION")
        yield
        con.execute("ROLLBACK")
        raise RuntimeError("COMMIT failed: disk full")

    monkeypatch.setattr(storage, "transaction", failing_commit)
    with pytest.raises(RuntimeError, match="COMMIT failed"):
        api.run(STUDY, db=db, prices_dir=prices_dir, reports_dir=reports)
    monkeypatch.undo()
    assert (reports / "deepseek" / "report.md").read_text() == before
    assert not [p for p in reports.iterdir() if p.name.startswith(".")]  # no staged leftovers
    assert q(db, "SELECT max(run_id) FROM runs") == [(1,)]
    out = api.run(STUDY, db=db, prices_dir=prices_dir, reports_dir=reports)
    assert out.run_id == 2  # no gap left by the failed run


def test_unwritable_report_folder_is_a_clean_error(tmp_path: Path, prices_dir: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    res = CliRunner().invoke(main, ["run", str(STUDY), "--db", str(tmp_path / "x.duckdb"),
                                    "--prices-dir", str(prices_dir), "--reports-dir",
                                    str(blocker / "sub")])
    assert res.exit_code == 7
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: cannot write the report")
    assert "Traceback" not in res.output
    assert not (tmp_path / "x.duckdb").exists()


def test_two_studies_may_share_an_event_id(tmp_path: Path, prices_dir: Path,
                                           deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "impact.duckdb"
    shutil.copy(deepseek_run.db, db)
    other = tmp_path / "other.toml"
    other.write_text(study_text().replace('name = "deepseek"', 'name = "other"')
                     .replace("DeepSeek-R1 released with open weights", "R1, as seen by other"))
    api.run(other, db=db, prices_dir=prices_dir, reports_dir=None)
    rows = q(db, "SELECT study, title FROM events WHERE event_id = 'deepseek-r1-release' "
                 "ORDER BY study")
    assert rows == [("deepseek", "DeepSeek-R1 released with open weights"),
                    ("other", "R1, as seen by other")]
    # views join on the study: one day0 row per exchange and study
    n = q(db, "SELECT count(*) FROM day0 WHERE event_id = 'deepseek-r1-release'")[0][0]
    assert n == 4


def test_overlapping_studied_events_are_flagged(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    rows = q(deepseek_run.db, "SELECT window_start, window_end, other_events FROM car "
                              "WHERE run_id = 1 AND event_id = 'deepseek-r1-release' "
                              "AND ticker = 'NVDA' AND model = 'market' ORDER BY 1, 2")
    got = {(a, b): o for a, b, o in rows}
    # the shock is NYSE day +4 of R1
    assert got[(0, 10)] == "deepseek-app-store"
    assert got[(0, 5)] == "deepseek-app-store"
    assert got[(0, 1)] is None
    notes = q(deepseek_run.db, "SELECT notes FROM runs WHERE run_id = 1")[0][0]
    assert "'deepseek-app-store' (day +4)" in str(notes)


def test_prices_ending_inside_the_event_window(tmp_path: Path, prices_dir: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    for f in prices_dir.glob("*.csv"):
        if f.name in ("dividends.csv", "splits.csv"):
            shutil.copy(f, snap / f.name)
            continue
        lines = f.read_text().splitlines()
        keep = [lines[0]] + [ln for ln in lines[1:] if ln[:10] <= "2025-02-04"]
        (snap / f.name).write_text("\n".join(keep) + "\n")
    out = api.run(STUDY, db=tmp_path / "x.duckdb", prices_dir=snap, reports_dir=None)
    assert any("prices end on 2025-02-04" in n for n in out.notes)
    rows = dict(q(tmp_path / "x.duckdb",
                  "SELECT ticker || ' ' || window_end, reason FROM car WHERE "
                  "event_id = 'deepseek-app-store' AND model = 'market' AND window_start = 0 "
                  "AND window_end IN (1, 10)"))
    assert rows["000660.KS 1"] is None  # 01-31 and 02-03 are there
    assert rows["000660.KS 10"] == "only 3 of 11 sessions have prices yet"


def test_live_session_rows_are_dropped() -> None:
    today = datetime.now(UTC).date()
    sess = sessions("XNYS", today - timedelta(days=20), today + timedelta(days=20))
    future = next(d for d in sess.dates if d > today)
    past = [d for d in sess.dates if d < today][-1]
    prices = pl.DataFrame({"ticker": ["X", "X"], "date": [past, future], "open": [1.0, 1.0],
                           "high": [1.0, 1.0], "low": [1.0, 1.0], "close": [1.0, 1.0],
                           "adj_close": [None, None], "volume": [1.0, 1.0]},
                          schema=PRICES_SCHEMA)
    kept, notes = _drop_unfinished_sessions(prices, {"X": sess})
    assert kept["date"].to_list() == [past]
    assert notes and "have not closed yet" in notes[0]


class _UtcClient:
    """yfinance stand-in whose daily bars are stamped in UTC (15:00 the day before, KST)."""

    def Ticker(self, ticker: str) -> _UtcClient:  # noqa: N802 - yfinance's name
        return self

    def history(self, **_kw: object) -> pd.DataFrame:
        idx = pd.DatetimeIndex([pd.Timestamp("2025-01-24", tz="Asia/Seoul"),
                                pd.Timestamp("2025-01-31", tz="Asia/Seoul")]).tz_convert("UTC")
        return pd.DataFrame({"Open": [1.0, 1.0], "High": [1.0, 1.0], "Low": [1.0, 1.0],
                             "Close": [221000.0, 199200.0], "Adj Close": [1.0, 1.0],
                             "Volume": [1.0, 1.0], "Dividends": [0.0, 0.0]}, index=idx)


def test_yahoo_utc_index_keeps_exchange_dates() -> None:
    src = YahooSource(client=_UtcClient(), sleep=lambda _s: None)
    data = src.fetch(["000660.KS"], date(2025, 1, 20), date(2025, 2, 7),
                     timezones={"000660.KS": "Asia/Seoul"})
    assert data.prices["date"].to_list() == [date(2025, 1, 24), date(2025, 1, 31)]


def test_report_shows_the_sq_bound_and_the_nominal_window(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    text = deepseek_run.report.markdown.read_text()
    assert "sample-quantile p < 1/226" in text  # NVDA's day-0 AR beyond every residual
    assert "2024-01-17 .. 2025-01-10 (15)" in text  # KRX nominal window, 15 left out
    assert "p < 0.0001" in text and "p = <" not in text


def test_report_with_another_model_only(tmp_path: Path, prices_dir: Path) -> None:
    study = tmp_path / "cm.toml"
    text = study_text().replace(
        'models = ["market", "constant-mean", "market-adjusted"]', 'models = ["constant-mean"]')
    text = text.replace('model = "market"\n\n[study.prices]', 'model = "constant-mean"\n\n'
                        '[study.prices]')
    text = text.replace('models = ["market", "constant-mean", "market-adjusted", "market+us"]\n',
                        "")
    assert "market+us\"]" not in text
    study.write_text(text)
    out = api.run(study, db=tmp_path / "x.duckdb", prices_dir=prices_dir,
                  reports_dir=tmp_path / "r")
    assert out.report is not None
    text = out.report.markdown.read_text()
    assert "of which -17.36% was abnormal under the constant-mean model" in text
    assert "n/a |" not in text.split("## Other studied events")[1].split("##")[0]
