"""The test battery, aggregates, regressions and API on the DeepSeek run: identities."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

import impact
from impact.inference import TEST_NAMES
from tests.conftest import STUDY


def frame(db: Path, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def test_every_test_is_stored_for_the_korean_pair(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    t = frame(deepseek_run.db, "SELECT * FROM tests WHERE run_id = 1 AND group_name = 'XKRX' "
                               "AND event_id = 'deepseek-app-store' AND model = 'market'")
    battery = set(TEST_NAMES) - {"t_single", "sq_single"}
    assert battery | {"portfolio_wald", "sur_wald", "sur_joint"} == set(t["test"].unique())
    assert t["tickers"].unique().to_list() == ["000660.KS, 005930.KS"]
    # a test is ok with numbers, or not computed with a reason: never a NaN
    ok = t.filter(pl.col("status") == "ok")
    assert ok["statistic"].null_count() == 0 and ok["p"].null_count() == 0
    assert all(math.isfinite(v) for v in ok["p"])
    bad = t.filter(pl.col("status") != "ok")
    assert bad["reason"].null_count() == 0
    assert set(bad["test"]) <= {"skew_t", "corrado"}  # 3+ securities; one-day test
    robust = dict(zip(t["test"], t["clustering_robust"], strict=False))
    assert robust["kp_bmp"] and robust["bw_cda"] and robust["sur_wald"]
    assert not robust["bmp"] and not robust["patell"] and not robust["t_cs"]


def test_dummy_regression_wald_is_the_squared_car_t(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    t = frame(deepseek_run.db, """
        SELECT d.group_name, d.window_start, d.window_end, d.statistic AS f, c.t
        FROM tests d JOIN car c ON c.run_id = d.run_id AND c.event_id = d.event_id
          AND c.ticker = d.group_name AND c.model = d.model
          AND c.window_start = d.window_start AND c.window_end = d.window_end
        WHERE d.run_id = 1 AND d.test = 'dummy_wald' AND c.status = 'ok'""")
    assert t.height >= 3 * 3 * 5
    np.testing.assert_allclose(t["f"], t["t"] ** 2, rtol=1e-8)


def test_sur_and_portfolio_wald_agree(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    t = frame(deepseek_run.db, """
        SELECT p.statistic AS portfolio, s.statistic AS sur FROM tests p JOIN tests s
        USING (run_id, event_id, group_name, model, window_start, window_end)
        WHERE p.test = 'portfolio_wald' AND s.test = 'sur_wald' AND p.status = 'ok'""")
    assert t.height > 0
    np.testing.assert_allclose(t["portfolio"], t["sur"], rtol=1e-8)


def test_aggregates_are_the_mean_car(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    a = frame(deepseek_run.db, """
        SELECT a.group_name, a.window_start, a.window_end, a.caar, a.se_cross_section,
               avg(c.car) AS mean_car, stddev_samp(c.car) / sqrt(count(*)) AS se, count(*) AS n
        FROM aggregates a JOIN car c ON c.run_id = a.run_id AND c.event_id = a.event_id
          AND c.model = a.model AND c.window_start = a.window_start
          AND c.window_end = a.window_end AND (a.group_name = 'all' OR c.ticker LIKE '%.KS')
        WHERE a.run_id = 1 AND a.event_id = 'deepseek-app-store' AND a.model = 'market'
        GROUP BY ALL""")
    assert set(a["group_name"]) == {"XKRX", "all"}
    np.testing.assert_allclose(a["caar"], a["mean_car"], rtol=1e-12)
    np.testing.assert_allclose(a["se_cross_section"], a["se"], rtol=1e-10)
    across = frame(deepseek_run.db, "SELECT n FROM aggregates WHERE run_id = 1 "
                                    "AND event_id = '*' AND model = 'market'")
    assert set(across["n"]) == {9}  # three events x three securities


def test_cross_section_is_descriptive_and_matches_ols(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    cs = frame(deepseek_run.db, "SELECT term, coef, descriptive, nobs, notice FROM "
                                "cross_section WHERE run_id = 1")
    coef = dict(zip(cs["term"], cs["coef"], strict=True))
    cars = dict(frame(deepseek_run.db, "SELECT ticker, car FROM car WHERE run_id = 1 AND "
                                       "event_id = 'deepseek-app-store' AND model = 'market' "
                                       "AND window_start = 0 AND window_end = 1").iter_rows())
    # one dummy regressor: the intercept is the GPU maker's CAR, the slope the difference
    assert coef["Intercept"] == pytest.approx(cars["NVDA"], abs=1e-12)
    assert coef["memory_maker"] == pytest.approx(
        (cars["000660.KS"] + cars["005930.KS"]) / 2 - cars["NVDA"], abs=1e-12)
    assert cs["descriptive"].to_list() == [True, True] and cs["nobs"][0] == 3
    attrs = frame(deepseek_run.db, "SELECT ticker, value FROM security_attributes "
                                   "WHERE attribute = 'memory_maker' ORDER BY ticker")
    assert attrs.rows() == [("000660.KS", 1.0), ("005930.KS", 1.0), ("NVDA", 0.0)]
    text = deepseek_run.report.markdown.read_text()
    assert "**Descriptive only.**" in text and "## Tests across securities" in text
    assert "Kolari-Pynnönen adjusted BMP | ✔ |" in text


def test_python_api_mirrors_the_cli(deepseek_run, prices_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = impact.EventStudy(STUDY, prices_dir=prices_dir).fit()
    stored = frame(deepseek_run.db, "SELECT * EXCLUDE (run_id) FROM car WHERE run_id = 1")
    key = ["event_id", "ticker", "model", "window_start", "window_end"]
    got = res.car.sort(key).select(stored.columns)
    assert got.drop("car", "se", "t", "p").equals(stored.sort(key).drop("car", "se", "t", "p"))
    np.testing.assert_allclose(got["car"].to_numpy(), stored.sort(key)["car"].to_numpy(),
                               rtol=1e-12)
    assert {"alpha", "beta", "sigma", "nobs"} <= set(res.params.columns)
    assert res.tests.height > 0 and "NVDA" in res.summary and str(res) == res.summary
    db = tmp_path / "x.duckdb"
    shutil.copy(deepseek_run.db, db)
    out = res.save(db)
    assert out.run_id == 2


def test_hac_option_of_the_event_dummy_regressions(tmp_path: Path, prices_dir: Path) -> None:
    text = STUDY.read_text().replace(
        'attributes = "deepseek_attributes.csv"',
        f'attributes = "{STUDY.parent / "deepseek_attributes.csv"}"').replace(
        'estimation_overlap', 'event_dummy_cov = "HAC"\nestimation_overlap', 1)
    if "event_dummy_cov" not in text:
        text = text.replace('models = ["market", "constant-mean", "market-adjusted"]\n',
                            'models = ["market", "constant-mean", "market-adjusted"]\n'
                            'event_dummy_cov = "HAC"\n', 1)
    path = tmp_path / "hac.toml"
    path.write_text(text)
    res = impact.EventStudy(path, prices_dir=prices_dir).fit()
    t = res.tests.filter((pl.col("test") == "dummy_wald") & (pl.col("group_name") == "NVDA")
                         & (pl.col("event_id") == "deepseek-app-store"))
    assert t.height == 5 and all("(HAC)" in lbl for lbl in t["label"])
    # HAC uses the normal/chi-squared reference, no denominator df
    assert t["distribution"].to_list()[0].startswith("chi2")
    assert res.run.params["event_dummy_cov"] == "HAC"
