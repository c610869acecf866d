"""Candidate news events: confirmed ones (only) enter studies, with a corrected time."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from impact.cli import main
from impact.update import UpdateConfig, run_update
from tests.conftest import STUDY


def add_candidate(db: Path, event_id: str, tickers: str, ts: str | None) -> None:
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO news_events VALUES (?, ?, CAST(? AS TIMESTAMPTZ), ?, ?, ?, ?, ?, "
                "NULL, NULL)", [event_id, event_id[5:], ts, "Asia/Seoul" if ts else None,
                                "Headline of " + event_id, "Test Daily", tickers,
                                "candidate" if ts else "needs_timestamp"])
    con.close()


def test_confirmed_news_enters_the_study_and_changes_its_inputs(
        tmp_path: Path, prices_dir: Path, deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "u.duckdb"
    shutil.copy(deepseek_run.db, db)
    add_candidate(db, "news-a-1", "000660.KS", "2025-02-05 09:30:00+09")
    add_candidate(db, "news-a-2", "NVDA", None)
    add_candidate(db, "news-a-3", "AAPL", "2025-02-05 09:30:00+09")  # no security of the study
    cfg = UpdateConfig(path=tmp_path / "u.toml", studies=(STUDY,), prices_dir=prices_dir,
                       reports_dir=tmp_path / "reports")
    # candidates do not enter studies: nothing changes
    s1 = run_update(cfg, db)
    assert [s.status for s in s1.steps if s.step == "study"] == ["unchanged"]
    runner = CliRunner()
    res = runner.invoke(main, ["events", "confirm", "news-a-2", "--db", str(db)])
    assert res.exit_code == 3 and "has no publication time" in res.stderr
    res = runner.invoke(main, ["events", "confirm", "news-a-1", "--db", str(db), "--time",
                               "2025-02-05T10:00", "--tz", "Asia/Seoul"])
    assert res.exit_code == 0, res.output
    runner.invoke(main, ["events", "confirm", "news-a-3", "--db", str(db)])
    s2 = run_update(cfg, db)
    (study,) = [s for s in s2.steps if s.step == "study"]
    assert study.status == "changed"  # the confirmed article is a new input
    con = duckdb.connect(str(db), read_only=True)
    day0 = dict(con.execute("SELECT exchange, day0 FROM event_days WHERE run_id = ? AND "
                            "event_id = 'news-a-1'", [study.rows]).fetchall())
    note, ts = con.execute("SELECT note, ts FROM news_events WHERE event_id = 'news-a-1'"
                           ).fetchone()  # type: ignore[misc]
    other = con.execute("SELECT count(*) FROM event_days WHERE event_id = 'news-a-3'"
                        ).fetchall()[0][0]
    con.close()
    assert str(day0["XKRX"]) == "2025-02-05"  # 10:00 KST, during the KRX session
    assert note.startswith("time corrected from")
    assert ts == datetime.fromisoformat("2025-02-05T10:00:00+09:00")
    assert other == 0  # it names no security of the study
    report = (tmp_path / "reports" / "deepseek" / "report.md").read_text()
    assert "news-a-1" in report and "Headline of news-a-1" in report
    res = runner.invoke(main, ["events", "list", "--db", str(db)])
    assert "confirmed" in res.stdout and "needs_timestamp" in res.stdout


def test_confirm_unknown_event(tmp_path: Path, deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "u.duckdb"
    shutil.copy(deepseek_run.db, db)
    res = CliRunner().invoke(main, ["events", "confirm", "news-nope", "--db", str(db)])
    assert res.exit_code == 3 and "there is no news event" in res.stderr
    res = CliRunner().invoke(main, ["events", "confirm", "news-nope", "--db", str(db),
                                    "--time", "2025-02-05T10:00+09:00"])
    assert res.exit_code == 2 and "without an offset" in res.output


@pytest.mark.parametrize("zone", ["Asia/Seol", "KST"])
def test_confirm_bad_zone(tmp_path: Path, deepseek_run, zone: str) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "u.duckdb"
    shutil.copy(deepseek_run.db, db)
    add_candidate(db, "news-a-1", "000660.KS", "2025-02-05 09:30:00+09")
    res = CliRunner().invoke(main, ["events", "confirm", "news-a-1", "--db", str(db),
                                    "--time", "2025-02-05T10:00", "--tz", zone])
    assert res.exit_code == 3 and "not an IANA time zone" in res.stderr
