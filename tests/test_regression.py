"""Event-dummy and cross-sectional regressions against the estimation module and closed forms."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from impact.errors import InputError
from impact.estimation import EventSeries, car, fit
from impact.regression import (
    _event_error_cov,
    cross_sectional_regression,
    dummy_regression,
    portfolio_dummy_regression,
    read_security_attributes,
    sur_dummy_regression,
)

EST = (-250, -11)
EVW = (-5, 10)


def make_series(seed: int = 1, *, gaps: tuple[int, ...] = (), excluded: tuple[int, ...] = (),
                shock: float = -0.1, mkt: np.ndarray | None = None, phi: float = 0.0,
                beta: float = 1.4) -> EventSeries:
    """Market-model returns; AR(1) errors with coefficient ``phi``; a shock on day 0."""
    rng = np.random.default_rng(seed)
    rel = np.arange(EST[0], EVW[1] + 1)
    if mkt is None:
        mkt = rng.normal(0.0004, 0.011, len(rel))
    u = rng.normal(0, 0.02, len(rel))
    e = np.empty(len(rel))
    e[0] = u[0]
    for i in range(1, len(rel)):
        e[i] = phi * e[i - 1] + u[i]
    ret = 0.0007 + beta * mkt + e
    ret[rel == 0] += shock
    for g in gaps:
        ret[rel == g] = np.nan
    dates = tuple(date(2024, 1, 1) + timedelta(days=int(i)) for i in range(len(rel)))
    return EventSeries(rel_day=rel, dates=dates, ret=ret, mkt=mkt.copy(),
                       excluded=np.isin(rel, excluded))


# --- one security: the dummy regression is the market-model event study ----------------------

@pytest.mark.parametrize("gaps", [(), (-200, -100, -12)])
def test_one_day_dummy_is_the_ar_and_its_t_the_sar(gaps: tuple[int, ...]) -> None:
    s = make_series(seed=11, gaps=gaps, excluded=tuple(range(-60, -50)))
    f = fit(s, "market", EST, (0, 0))
    r = dummy_regression(s, EST, (0, 0), car_windows=[(0, 0)], ticker="X")
    assert r.params.index.tolist() == [0]
    assert r.params.at[0, "X"] == pytest.approx(f.ev_ar[0], abs=1e-10)
    sar = f.ev_ar[0] / f.ar_se[0]
    assert r.tstats.at[0, "X"] == pytest.approx(sar, rel=1e-8)
    assert abs(sar) > 3  # the shock is found, so the comparison is not of two noise values
    # the residual df are the estimation window's: L1 - 2
    assert r.df_resid == f.df == f.nobs - 2
    assert r.nobs == f.nobs + 1
    # Wald on the one dummy: F(1, L1 - 2) = SAR^2, same p as the t test
    c = r.car((0, 0))
    assert c.wald is not None
    assert c.wald.stat == pytest.approx(sar**2, rel=1e-8)
    assert c.wald.dist_name == f"F(1, {f.df})"
    assert c.wald.pval == pytest.approx(car(f, (0, 0)).p, rel=1e-7)


def test_multi_day_dummies_are_the_ars_and_wald_is_the_squared_car_t() -> None:
    s = make_series(seed=7, gaps=(-150,), excluded=tuple(range(-90, -80)))
    f = fit(s, "market", EST, EVW)
    wins = [(0, k) for k in range(11)] + [(-5, 10), (-1, 1)]
    r = dummy_regression(s, EST, EVW, car_windows=wins, ticker="X")
    np.testing.assert_allclose(r.params["X"].to_numpy(), f.ev_ar, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.std_errors["X"].to_numpy(), f.ar_se, rtol=1e-10)
    # the OLS covariance of the dummies is the forecast-error-corrected covariance
    np.testing.assert_allclose(r.ar_cov, f.ev_cov, rtol=1e-9, atol=1e-20)
    assert r.alpha["X"] == pytest.approx(f.alpha, abs=1e-12)
    assert r.beta["X"] == pytest.approx(f.beta, rel=1e-10)
    assert r.sigma["X"] == pytest.approx(f.sigma, rel=1e-10)
    for w in wins:
        ref = car(f, w)
        c = r.car(w)
        assert c.status == "ok"
        assert c.wald is not None
        assert c.car == pytest.approx(ref.car, abs=1e-10)
        assert c.se == pytest.approx(ref.se, rel=1e-9)
        assert c.wald.stat == pytest.approx(ref.t**2, rel=1e-8)
        assert (c.wald.df, c.wald.df_denom) == (1, ref.df)
        assert c.wald.pval == pytest.approx(ref.p, rel=1e-6)


def test_event_day_gap_drops_that_dummy_and_marks_windows_incomplete() -> None:
    s = make_series(seed=3, gaps=(3,))
    f = fit(s, "market", EST, EVW)
    r = dummy_regression(s, EST, EVW, car_windows=[(0, 2), (0, 5)], ticker="X")
    assert r.nobs_event == 15 and r.ar_cov.shape == (15, 15)
    ars = r.params["X"].to_numpy(dtype=float)
    assert r.params.index.tolist() == list(range(-5, 11))
    ok = np.isfinite(f.ev_ar)
    assert np.array_equal(np.isfinite(ars), ok) and not ok[8]  # day 3
    np.testing.assert_allclose(ars[ok], f.ev_ar[ok], atol=1e-10)
    wald = r.car((0, 2)).wald
    assert wald is not None
    assert wald.stat == pytest.approx(car(f, (0, 2)).t ** 2, rel=1e-8)
    assert r.car((0, 5)).status == "incomplete" == car(f, (0, 5)).status
    assert "[3]" in r.car((0, 5)).reason
    assert any("day(s) [3]" in n for n in r.notes)
    assert "no abnormal return" in r.summary()


def test_bad_windows_are_refused() -> None:
    s = make_series()
    with pytest.raises(ValueError, match="overlaps"):
        dummy_regression(s, (-250, 0), EVW)
    with pytest.raises(ValueError, match="not inside the event window"):
        dummy_regression(s, EST, EVW, car_windows=[(0, 20)])
    with pytest.raises(ValueError, match="cov_type"):
        dummy_regression(s, EST, EVW, cov_type="HC9")


# --- HAC ----------------------------------------------------------------------------------------

def test_hac_differs_from_ols_on_autocorrelated_errors() -> None:
    s = make_series(seed=5, phi=0.6)
    ols = dummy_regression(s, EST, EVW, ticker="X")
    hac = dummy_regression(s, EST, EVW, cov_type="HAC", maxlags=8, ticker="X")
    assert hac.cov_type == "HAC" and hac.maxlags == 8 and not hac.use_t
    np.testing.assert_allclose(hac.params, ols.params, atol=1e-12)
    # positively autocorrelated errors: the 16-day CAR's variance is far above L s^2
    ratio = hac.car(EVW).se / ols.car(EVW).se
    assert ratio > 1.3
    w = hac.car(EVW).wald
    assert w is not None and w.dist_name == "chi2(1)"
    assert w.stat == pytest.approx((hac.car(EVW).car / hac.car(EVW).se) ** 2, rel=1e-9)
    assert "HAC, maxlags=8" in hac.summary()


def test_hac_event_day_term_is_added_to_statsmodels_sandwich() -> None:
    """statsmodels' HAC covariance of a one-day dummy is only the parameter-error part."""
    s = make_series(seed=9, phi=0.3)
    lag = 4
    hac = dummy_regression(s, EST, EVW, cov_type="HAC", maxlags=lag, ticker="X")
    use = np.isfinite(s.ret) & ((s.rel_day <= EST[1]) | (s.rel_day >= EVW[0]))
    z_rel = s.rel_day[use]
    ev = (z_rel >= EVW[0]) & (z_rel <= EVW[1])
    z = np.column_stack([np.ones(use.sum()), s.mkt[use],
                         (z_rel[:, None] == z_rel[ev]).astype(float)])
    raw = sm.OLS(s.ret[use], z).fit(cov_type="HAC", cov_kwds={"maxlags": lag})
    xe, xw = z[~ev, :2], z[ev, :2]
    est = sm.OLS(s.ret[use][~ev], xe).fit(cov_type="HAC", cov_kwds={"maxlags": lag})
    raw_g = np.asarray(raw.cov_params())[2:, 2:]
    # the pitfall: the sandwich sees only X_W V_HAC(a, b) X_W' (event residuals are 0)
    np.testing.assert_allclose(raw_g, xw @ np.asarray(est.cov_params()) @ xw.T, rtol=1e-8)
    # ours adds the Bartlett-weighted autocovariances of the estimation residuals
    e = np.asarray(est.resid)
    df = len(e) - 2
    gam = [e[h:] @ e[: len(e) - h] / df for h in range(lag + 1)]
    n = ev.sum()
    omega = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            h = abs(a - b)
            if h <= lag:
                omega[a, b] = (1 - h / (lag + 1)) * gam[h]
    np.testing.assert_allclose(hac.ar_cov, raw_g + omega, rtol=1e-9)
    assert omega[0, 0] == pytest.approx(hac.sigma["X"] ** 2, rel=1e-12)
    assert np.all(np.linalg.eigvalsh(omega) > -1e-15)


def test_hac_with_zero_lags_keeps_s2_for_the_event_day() -> None:
    s = make_series(seed=2)
    ols = dummy_regression(s, EST, (0, 0), ticker="X")
    h0 = dummy_regression(s, EST, (0, 0), cov_type="HAC", maxlags=0, ticker="X")
    f = fit(s, "market", EST, (0, 0))
    use = (s.rel_day >= EST[0]) & (s.rel_day <= EST[1])
    hc0 = sm.OLS(s.ret[use], sm.add_constant(s.mkt[use])).fit(cov_type="HC0")
    xw = np.array([1.0, s.mkt[s.rel_day == 0][0]])
    expected = f.sigma**2 + xw @ np.asarray(hc0.cov_params()) @ xw
    assert h0.ar_cov[0, 0] == pytest.approx(expected, rel=1e-9)
    assert h0.ar_cov[0, 0] != pytest.approx(ols.ar_cov[0, 0], rel=1e-6)


def test_event_error_cov_cross_equation_blocks() -> None:
    rng = np.random.default_rng(0)
    e = rng.normal(size=(50, 2))
    days = np.array([0, 1, 2])
    om = _event_error_cov(e, days, maxlags=1, df_resid=48)
    g0 = e.T @ e / 48
    g1 = e[1:].T @ e[:-1] / 48  # Cov(e_t, e_{t-1})
    # equation-major: [eq0 d0, eq0 d1, eq0 d2, eq1 d0, ...]
    assert om[0, 3] == pytest.approx(g0[0, 1])
    assert om[1, 3] == pytest.approx(0.5 * g1[0, 1])  # eq0 day 1 with eq1 day 0
    assert om[3, 1] == pytest.approx(0.5 * g1[0, 1])
    assert om[0, 4] == pytest.approx(0.5 * g1[1, 0])  # eq0 day 0 with eq1 day 1
    assert om[0, 2] == 0.0
    np.testing.assert_allclose(om, om.T)


# --- several securities sharing a date: portfolio and SUR ---------------------------------------

def _three(common_mkt: bool = True, **kw: float) -> dict[str, EventSeries]:
    base = make_series(seed=1, **kw)  # type: ignore[arg-type]
    out = {}
    for i, tk in enumerate(["AAA", "BBB", "CCC"]):
        s = make_series(seed=20 + i, mkt=base.mkt if common_mkt else None, beta=0.8 + 0.4 * i,
                        shock=-0.05 * (i + 1), **kw)  # type: ignore[arg-type]
        out[tk] = s
    # a common shock: correlated residuals across securities
    common = np.random.default_rng(99).normal(0, 0.01, len(base.rel_day))
    return {tk: replace(s, ret=s.ret + common) for tk, s in out.items()}


def test_portfolio_is_the_mean_of_the_single_regressions() -> None:
    ss = _three()
    singles = {tk: dummy_regression(s, EST, EVW, ticker=tk) for tk, s in ss.items()}
    p = portfolio_dummy_regression(ss, EST, EVW, car_windows=[(0, 0), (0, 3)])
    mean_ar = np.mean([r.params[tk].to_numpy() for tk, r in singles.items()], axis=0)
    np.testing.assert_allclose(p.params["portfolio"].to_numpy(), mean_ar, atol=1e-12)
    assert p.equations == ("portfolio",) and p.tickers == ("AAA", "BBB", "CCC")
    assert not p.notes
    # independent check: the portfolio series through fit()/car()
    avg = replace(ss["AAA"], ret=np.mean([s.ret for s in ss.values()], axis=0))
    f = fit(avg, "market", EST, EVW)
    ref = car(f, (0, 3))
    c = p.car((0, 3))
    assert c.wald is not None
    assert c.car == pytest.approx(ref.car, abs=1e-12)
    assert c.wald.stat == pytest.approx(ref.t**2, rel=1e-8)


@pytest.mark.parametrize("cov_type", ["nonrobust", "HAC"])
def test_sur_sum_of_dummies_equals_portfolio_test(cov_type: str) -> None:
    ss = _three(phi=0.2)
    lags = 5 if cov_type == "HAC" else None
    wins = [(0, 0), (0, 3), (-5, 10)]
    sur = sur_dummy_regression(ss, EST, EVW, car_windows=wins, cov_type=cov_type, maxlags=lags)
    port = portfolio_dummy_regression(ss, EST, EVW, car_windows=wins, cov_type=cov_type,
                                      maxlags=lags)
    for w in wins:
        cs, cp = sur.car(w), port.car(w)
        assert cs.wald is not None and cp.wald is not None
        assert cs.car == pytest.approx(cp.car, abs=1e-12)
        assert cs.se == pytest.approx(cp.se, rel=1e-9)
        assert cs.wald.stat == pytest.approx(cp.wald.stat, rel=1e-8)
        assert cs.wald.dist_name == cp.wald.dist_name
        assert cs.wald.pval == pytest.approx(cp.wald.pval, rel=1e-6)


def test_sur_equations_and_joint_wald_against_kronecker_formula() -> None:
    ss = _three()
    sur = sur_dummy_regression(ss, EST, EVW, car_windows=[(0, 0), (0, 3)])
    singles = {tk: dummy_regression(s, EST, EVW, ticker=tk) for tk, s in ss.items()}
    for tk, r in singles.items():
        np.testing.assert_allclose(sur.params[tk], r.params[tk], atol=1e-12)
        np.testing.assert_allclose(sur.std_errors[tk], r.std_errors[tk], rtol=1e-9)
        assert sur.resid_cov.at[tk, tk] == pytest.approx(r.sigma[tk] ** 2, rel=1e-10)
    # the cross-equation correlation is there (common shock)
    corr = sur.resid_cov.to_numpy() / np.outer(sur.sigma, sur.sigma)
    assert corr[0, 1] > 0.1
    # independent joint test: V = Sigma (x) (Z'Z)^-1 for the stacked dummies
    rows = (ss["AAA"].rel_day <= EST[1]) | (ss["AAA"].rel_day >= EVW[0])
    rel = ss["AAA"].rel_day[rows]
    ev = (rel >= EVW[0]) & (rel <= EVW[1])
    z = np.column_stack([np.ones(len(rel)), ss["AAA"].mkt[rows],
                         (rel[:, None] == rel[ev]).astype(float)])
    y = np.column_stack([s.ret[rows] for s in ss.values()])
    b = np.linalg.lstsq(z, y, rcond=None)[0]
    e = y - z @ b
    df = len(rel) - z.shape[1]
    sigma = e.T @ e / df
    v = np.kron(sigma, np.linalg.inv(z.T @ z))
    theta = b.T.reshape(-1)
    k = z.shape[1]
    rm = np.zeros((3, 3 * k))
    for i in range(3):
        for d in range(4):  # days 0..3 are dummies 5..8
            rm[i, i * k + 2 + 5 + d] = 1.0
    rt = rm @ theta
    w = float(rt @ np.linalg.solve(rm @ v @ rm.T, rt))
    joint = sur.car((0, 3)).joint
    assert joint is not None
    assert joint.stat == pytest.approx(w / 3, rel=1e-8)
    assert joint.dist_name == f"F(3, {df})"
    assert joint.pval == pytest.approx(stats.f.sf(w / 3, 3, df), rel=1e-6)
    mean_car = sur.car((0, 3))
    assert mean_car.car == pytest.approx(rt.mean(), abs=1e-12)
    assert mean_car.se == pytest.approx(np.sqrt(rm.mean(axis=0) @ v @ rm.mean(axis=0)), rel=1e-9)
    ec = sur.equation_cars.set_index(["window", "equation"])
    assert ec.at[("[0, 3]", "BBB"), "car"] == pytest.approx(rt[1], abs=1e-12)
    assert "all CAR_i = 0" in sur.summary()


@pytest.mark.parametrize("cov_type", ["nonrobust", "HAC"])
def test_sur_with_one_security_is_the_single_regression(cov_type: str) -> None:
    s = make_series(seed=4, phi=0.3, gaps=(-30,))
    lags = 3 if cov_type == "HAC" else None
    one = dummy_regression(s, EST, EVW, cov_type=cov_type, maxlags=lags, ticker="X")
    sys1 = sur_dummy_regression({"X": s}, EST, EVW, cov_type=cov_type, maxlags=lags)
    np.testing.assert_allclose(sys1.ar_cov, one.ar_cov, rtol=1e-9, atol=1e-20)
    for w in [(0, 0), EVW]:
        a, b = one.car(w).wald, sys1.car(w).wald
        assert a is not None and b is not None
        assert a.stat == pytest.approx(b.stat, rel=1e-8)
        assert a.dist_name == b.dist_name


def test_sur_with_different_benchmarks_is_equation_by_equation_ols() -> None:
    ss = _three(common_mkt=False)
    sur = sur_dummy_regression(ss, EST, EVW)
    port = portfolio_dummy_regression(ss, EST, EVW)
    assert any("different benchmarks" in n for n in port.notes)
    for tk, s in ss.items():
        r = dummy_regression(s, EST, EVW, ticker=tk)
        np.testing.assert_allclose(sur.params[tk], r.params[tk], atol=1e-12)
        # diagonal block: sigma_ii (Z_i'Z_i)^-1, the single-equation covariance
        np.testing.assert_allclose(sur.std_errors[tk], r.std_errors[tk], rtol=1e-9)


def test_joint_forms_align_on_common_dates_and_refuse_different_day0() -> None:
    ss = _three()
    ss["BBB"] = replace(ss["BBB"], ret=np.where(ss["BBB"].rel_day == -40, np.nan, ss["BBB"].ret))
    sur = sur_dummy_regression(ss, EST, EVW)
    assert sur.nobs_estimation == 239
    assert any(n.startswith("AAA: 1 of its usable rows dropped") for n in sur.notes)
    shifted = replace(ss["CCC"], rel_day=ss["CCC"].rel_day + 1)
    with pytest.raises(ValueError, match="do not share day 0"):
        sur_dummy_regression({"AAA": ss["AAA"], "CCC": shifted}, EST, EVW)


# --- cross-sectional regression -----------------------------------------------------------------

def _cross_section(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 2, n)
    noise = rng.normal(0, 1, n) * 0.001 * x**2  # heteroskedastic in x
    return pd.DataFrame({
        "ticker": [f"T{i}" for i in range(n)],
        "car": 0.01 + 0.02 * x + noise,
        "hbm_exposure": x,
        "exchange": rng.choice(["XNYS", "XKRX", "XTKS"], n),
    })


def test_cross_section_recovers_known_coefficients() -> None:
    df = _cross_section()
    r = cross_sectional_regression(df, "car ~ hbm_exposure")
    assert r.params["Intercept"] == pytest.approx(0.01, abs=5e-4)
    assert r.params["hbm_exposure"] == pytest.approx(0.02, abs=5e-4)
    assert r.nobs == 60 and r.df_resid == 58 and r.cov_type == "HC1"
    assert r.rsquared > 0.9
    assert not r.descriptive_only and r.notice == ""
    # HC1 by hand: n/(n-k) (X'X)^-1 X' diag(e^2) X (X'X)^-1
    x = sm.add_constant(df["hbm_exposure"].to_numpy())
    ols = sm.OLS(df["car"].to_numpy(), x).fit()
    bread = np.linalg.inv(x.T @ x)
    meat = (x * ols.resid[:, None] ** 2).T @ x
    hc1 = 60 / 58 * bread @ meat @ bread
    np.testing.assert_allclose(r.std_errors.to_numpy(), np.sqrt(np.diag(hc1)), rtol=1e-10)
    assert r.pvalues["hbm_exposure"] == pytest.approx(
        2 * stats.t.sf(abs(r.tstats["hbm_exposure"]), 58), rel=1e-8)


def test_robust_standard_errors_differ_on_heteroskedastic_data() -> None:
    df = _cross_section()
    robust = cross_sectional_regression(df, "car ~ hbm_exposure + C(exchange)")
    plain = cross_sectional_regression(df, "car ~ hbm_exposure + C(exchange)",
                                       cov_type="nonrobust")
    np.testing.assert_allclose(robust.params, plain.params)
    ratio = robust.std_errors["hbm_exposure"] / plain.std_errors["hbm_exposure"]
    assert ratio > 1.2  # errors grow with x: the plain SE is too small
    assert "C(exchange)[T.XNYS]" in robust.params.index
    # p-values from t(df_resid), not the normal (statsmodels' default for robust SEs)
    assert robust.pvalues["C(exchange)[T.XNYS]"] > 0.01
    np.testing.assert_allclose(
        robust.pvalues, 2 * stats.t.sf(np.abs(robust.tstats), robust.df_resid), rtol=1e-8)


def test_descriptive_flag_with_three_securities() -> None:
    df = _cross_section(n=3)
    r = cross_sectional_regression(df, "car ~ hbm_exposure")
    assert r.descriptive_only
    assert r.notice.startswith("with 3 securities the regression is descriptive, not inferential")
    assert "note: with 3 securities" in r.summary()
    # boundary of the rule: 10 securities, 8 residual df -> inferential; 9 -> descriptive
    assert not cross_sectional_regression(_cross_section(n=10), "car ~ hbm_exposure")\
        .descriptive_only
    assert cross_sectional_regression(_cross_section(n=9), "car ~ hbm_exposure").descriptive_only


def test_missing_values_are_dropped_and_counted() -> None:
    df = _cross_section(n=20)
    df.loc[[2, 5], "hbm_exposure"] = np.nan
    r = cross_sectional_regression(df, "car ~ hbm_exposure")
    assert (r.nobs, r.dropped) == (18, 2)


def test_bad_formulas_name_the_column_and_the_available_ones() -> None:
    df = _cross_section(n=12)
    with pytest.raises(ValueError, match=r"'hbm' .*available columns: ticker, car, "
                                         r"hbm_exposure, exchange"):
        cross_sectional_regression(df, "car ~ hbm + C(exchange)")
    with pytest.raises(ValueError, match=r"'sector'"):
        cross_sectional_regression(df, "car ~ hbm_exposure + C(sector)")
    with pytest.raises(ValueError, match="must have the form"):
        cross_sectional_regression(df, "car hbm_exposure")
    with pytest.raises(ValueError, match="cannot use formula"):
        cross_sectional_regression(df, "car ~ hbm_exposure +")
    with pytest.raises(ValueError, match="more securities than parameters"):
        cross_sectional_regression(df.head(2), "car ~ hbm_exposure")
    # function calls and keyword arguments are not taken for columns
    r = cross_sectional_regression(df, "car ~ np.sqrt(hbm_exposure) + "
                                       "C(exchange, Treatment(reference='XNYS'))")
    assert r.nobs == 12


# --- security attributes file -------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "attrs.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_read_security_attributes_good_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "\ufeffticker,hbm_exposure,exchange,note\n"
                         "NVDA,0.9,XNAS,\n\n"
                         "000660.KS, 0.8 ,XKRX,\"memory, HBM\"\n"
                         "ASML,,XAMS,litho\n")
    df = read_security_attributes(p)
    assert df.columns.tolist() == ["ticker", "hbm_exposure", "exchange", "note"]
    assert df["ticker"].tolist() == ["NVDA", "000660.KS", "ASML"]
    assert df["hbm_exposure"].dtype == float
    assert df["hbm_exposure"].iloc[1] == 0.8 and np.isnan(df["hbm_exposure"].iloc[2])
    assert df["note"].tolist()[1] == "memory, HBM"
    assert df["exchange"].tolist() == ["XNAS", "XKRX", "XAMS"]


def test_read_security_attributes_missing_ticker_column(tmp_path: Path) -> None:
    p = _write(tmp_path, "symbol,hbm_exposure\nNVDA,0.9\n")
    with pytest.raises(InputError, match=r"attrs\.csv:1: no 'ticker' column \(columns: "
                                         r"symbol, hbm_exposure\).*name the column"):
        read_security_attributes(p)


def test_read_security_attributes_duplicate_ticker_names_both_lines(tmp_path: Path) -> None:
    p = _write(tmp_path, "ticker,x\nNVDA,1\nAMD,2\n\nNVDA,3\n")
    with pytest.raises(InputError, match=r"attrs\.csv:5: ticker 'NVDA' appears on lines 2 "
                                         r"and 5: keep one line per ticker") as ei:
        read_security_attributes(p)
    assert ei.value.exit_code == 3


def test_read_security_attributes_missing_file_and_ragged_row(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        read_security_attributes(tmp_path / "nope.csv")
    p = _write(tmp_path, "ticker,x\nNVDA,1,2\n")
    with pytest.raises(InputError, match=r"attrs\.csv:2: 3 field\(s\) where the header has 2"):
        read_security_attributes(p)
