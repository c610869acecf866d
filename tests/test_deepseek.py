"""The DeepSeek case end to end, checked against the published facts."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from impact.api import run
from tests.conftest import STUDY


def q(db: Path, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def day0_ret(db: Path, ticker: str) -> tuple[date, float]:
    rows = q(db, "SELECT date, ret FROM abnormal_returns WHERE run_id = 1 AND event_id = "
                 "'deepseek-app-store' AND model = 'market' AND ticker = ? AND rel_day = 0",
             [ticker])
    assert len(rows) == 1
    return rows[0]  # type: ignore[return-value]


def test_published_day0_and_raw_returns(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = deepseek_run.db
    d, r = day0_ret(db, "NVDA")
    assert d == date(2025, 1, 27)
    assert round(r * 100, 2) == -16.97
    d, r = day0_ret(db, "000660.KS")
    assert d == date(2025, 1, 31)
    assert round(r * 100, 2) == -9.86
    d, r = day0_ret(db, "005930.KS")
    assert d == date(2025, 1, 31)
    assert round(r * 100, 2) == -2.42
    (ks11,) = q(db, "SELECT ret FROM returns WHERE ticker = '^KS11' AND date = '2025-01-31'")
    assert round(ks11[0] * 100, 2) == -0.77  # type: ignore[operator]
    # the same -0.77% is the benchmark return used for the Korean pair on day 0
    rows = q(db, "SELECT DISTINCT round(benchmark_ret, 6) FROM abnormal_returns WHERE run_id = 1 "
                 "AND ticker LIKE '%.KS' AND rel_day = 0 AND event_id = 'deepseek-app-store'")
    assert rows == [(round(ks11[0], 6),)]  # type: ignore[arg-type]


def test_day0_per_exchange(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = deepseek_run.db
    got = dict(q(db, "SELECT event_id || '@' || exchange, day0 FROM event_days WHERE run_id = 1"))
    assert got["deepseek-app-store@XNYS"] == date(2025, 1, 27)
    assert got["deepseek-app-store@XKRX"] == date(2025, 1, 31)
    # R1 on 2025-01-20, a US holiday: NYSE day 0 is 2025-01-21
    assert got["deepseek-r1-release@XNYS"] == date(2025, 1, 21)
    # the Korean Economic Daily article at 18:22 KST on 01-30 (KRX closed)
    assert got["hankyung-nvidia-chips@XKRX"] == date(2025, 1, 31)
    assert got["hankyung-nvidia-chips@XNYS"] == date(2025, 1, 30)
    # every catalog event on both exchanges
    (n_events,) = q(db, "SELECT count(*) FROM events")[0]
    assert len(got) == 2 * n_events


def test_return_basis_is_stored_per_row(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    rows = dict(q(deepseek_run.db, "SELECT ticker, string_agg(DISTINCT basis) FROM returns "
                                   "GROUP BY ticker"))
    assert rows["NVDA"] == "adj_close"
    assert rows["000660.KS"] == "close+dividends"
    assert rows["005930.KS"] == "close+dividends"
    assert rows["^KS11"] == "close"
    # SK hynix goes ex-dividend (1,304 KRW) on 2025-02-27: the dividend is in that return
    (r,) = q(deepseek_run.db, "SELECT ret FROM returns WHERE ticker = '000660.KS' "
                              "AND date = '2025-02-27'")[0]
    (c0, c1) = [row[0] for row in q(
        deepseek_run.db, "SELECT close FROM prices WHERE ticker = '000660.KS' AND date IN "
                         "('2025-02-26', '2025-02-27') ORDER BY date")]
    assert r == pytest.approx((c1 + 1304) / c0 - 1, abs=1e-12)  # type: ignore[operator]


def test_prices_carry_source_and_load_time(deepseek_run, prices_dir) -> None:  # type: ignore[no-untyped-def]
    rows = q(deepseek_run.db, "SELECT DISTINCT source, loaded_at IS NOT NULL FROM prices")
    assert rows == [(f"snapshot:{prices_dir}", True)]
    (close,) = q(deepseek_run.db, "SELECT close FROM prices WHERE ticker = 'NVDA' "
                                  "AND date = '2025-01-27'")[0]
    assert close == 118.42


def test_estimation_window_leaves_out_the_v3_release(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    rows = q(deepseek_run.db, "SELECT ticker, nobs FROM model_fits WHERE run_id = 1 AND "
                              "event_id = 'deepseek-app-store' AND model = 'market'")
    # 240 sessions in [-250, -11] minus the V3 event window [-5, +10] inside it
    assert dict(rows) == {"NVDA": 226, "000660.KS": 225, "005930.KS": 225}
    notes = json.loads(q(deepseek_run.db, "SELECT notes FROM runs WHERE run_id = 1")[0][0])
    assert any("deepseek-v3-release" in n for n in notes)


def test_report_shows_the_database_numbers(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    report = deepseek_run.report
    assert report is not None
    text = report.markdown.read_text()
    for needle in ["-16.97%", "-9.86%", "-2.42%", "2025-01-27", "2025-01-31",
                   "adj_close", "close+dividends", "KRX", "⚠"]:
        assert needle in text, needle
    # the CAR[0,+1] of NVDA as stored, as the report prints it
    (car, t) = q(deepseek_run.db, "SELECT car, t FROM car WHERE run_id = 1 AND ticker = 'NVDA' "
                                  "AND model = 'market' AND event_id = 'deepseek-app-store' "
                                  "AND window_start = 0 AND window_end = 1")[0]
    nvda = text.split("### Nvidia (NVDA)")[1].split("###")[0]
    assert f"| market | [+0, +1] | {car * 100:+.2f}% |" in nvda  # type: ignore[operator]
    assert f"{t:.2f}" in text
    for fig in report.figures:
        assert fig.stat().st_size > 10_000


def test_rerun_adds_a_run_and_keeps_the_old_one(deepseek_run, tmp_path, prices_dir) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "copy.duckdb"
    shutil.copy(deepseek_run.db, db)
    before = q(db, "SELECT * FROM car WHERE run_id = 1 ORDER BY ALL")
    counts = {t: q(db, f"SELECT count(*) FROM {t}")[0][0]
              for t in ("prices", "returns", "events", "securities", "dividends")}
    out = run(STUDY, db=db, prices_dir=prices_dir, reports_dir=None)
    assert out.run_id == 2
    assert out.prices_written == 0  # identical prices are not rewritten
    assert q(db, "SELECT run_id FROM runs ORDER BY 1") == [(1,), (2,)]
    assert q(db, "SELECT * FROM car WHERE run_id = 1 ORDER BY ALL") == before
    for t, n in counts.items():
        assert q(db, f"SELECT count(*) FROM {t}")[0][0] == n, t
    # same inputs, same hash
    hashes = q(db, "SELECT DISTINCT inputs_hash FROM runs")
    assert len(hashes) == 1
    # the day0 view shows the latest run only
    assert q(db, "SELECT DISTINCT run_id FROM day0") == [(2,)]


def test_korean_pair_adds_the_us_sessions_as_a_factor(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = deepseek_run.db
    models = q(db, "SELECT ticker, string_agg(model, ',' ORDER BY model) FROM model_fits "
                   "WHERE run_id = 1 AND event_id = 'deepseek-app-store' GROUP BY 1")
    by = dict(models)
    assert "market+us" in by["000660.KS"] and "market+us" not in by["NVDA"]
    (params,) = q(db, "SELECT params FROM model_fits WHERE run_id = 1 AND ticker = '000660.KS' "
                      "AND event_id = 'deepseek-app-store' AND model = 'market+us'")[0]
    p = json.loads(params)  # type: ignore[arg-type]
    # on 2025-01-31 the factor is Nasdaq's return over the New York sessions that closed
    # after KRX's close of Friday 01-24: Friday 01-24 itself (it closed later) and 01-27..30
    ixic = [r[0] for r in q(db, "SELECT ret FROM returns WHERE ticker = '^IXIC' AND date "
                                "BETWEEN '2025-01-24' AND '2025-01-30' ORDER BY date")]
    assert len(ixic) == 5
    f = 1.0
    for r in ixic:
        f *= 1 + r  # type: ignore[operator]
    f -= 1
    (rm, exp_ret) = q(db, "SELECT benchmark_ret, expected_ret FROM abnormal_returns "
                               "WHERE run_id = 1 AND ticker = '000660.KS' AND model = "
                               "'market+us' AND event_id = 'deepseek-app-store' AND rel_day = 0")[0]
    assert exp_ret == pytest.approx(p["alpha"] + p["beta"] * rm + p["nasdaq_prev"] * f,
                                    abs=1e-12)
    assert f == pytest.approx(-0.0185, abs=0.0005)  # the US sell-off the closure held back
