"""Estimation against an independent computation: statsmodels OLS and the closed forms."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
import statsmodels.api as sm

from impact.estimation import EventSeries, car, fit, moving_sums, sq_pvalue

EST = (-250, -11)
EVW = (-5, 10)
TOL = 1e-10


def make_series(seed: int = 1, gaps: tuple[int, ...] = (), excluded: tuple[int, ...] = (),
                shock: float = -0.1) -> EventSeries:
    rng = np.random.default_rng(seed)
    rel = np.arange(EST[0], EVW[1] + 1)
    mkt = rng.normal(0.0004, 0.011, len(rel))
    ret = 0.0007 + 1.4 * mkt + rng.normal(0, 0.02, len(rel))
    ret[rel == 0] += shock
    for g in gaps:
        ret[rel == g] = np.nan
    excl = np.isin(rel, excluded)
    dates = tuple(date(2024, 1, 1) + timedelta(days=int(i)) for i in range(len(rel)))
    return EventSeries(rel_day=rel, dates=dates, ret=ret, mkt=mkt, excluded=excl)


def _est_rows(s: EventSeries) -> np.ndarray:
    return ((s.rel_day >= EST[0]) & (s.rel_day <= EST[1]) & np.isfinite(s.ret)
            & np.isfinite(s.mkt) & ~s.excluded)


@pytest.mark.parametrize("gaps", [(), (-200, -100, -12)])
def test_market_model_matches_statsmodels(gaps: tuple[int, ...]) -> None:
    s = make_series(gaps=gaps, excluded=tuple(range(-60, -50)))
    f = fit(s, "market", EST, EVW)
    use = _est_rows(s)
    x = sm.add_constant(s.mkt[use])
    ols = sm.OLS(s.ret[use], x).fit()
    assert f.nobs == int(use.sum()) == 240 - len(gaps) - 10
    assert f.alpha == pytest.approx(ols.params[0], abs=TOL)
    assert f.beta == pytest.approx(ols.params[1], abs=TOL)
    assert f.sigma == pytest.approx(np.sqrt(ols.scale), rel=TOL)
    assert f.r2 == pytest.approx(ols.rsquared, rel=TOL)
    np.testing.assert_allclose(f.est_resid[np.isfinite(f.est_resid)], ols.resid, atol=TOL)

    ev = (s.rel_day >= EVW[0]) & (s.rel_day <= EVW[1])
    xw = sm.add_constant(s.mkt[ev], has_constant="add")
    pred = ols.get_prediction(xw)
    np.testing.assert_allclose(f.ev_expected, pred.predicted_mean, atol=TOL)
    np.testing.assert_allclose(f.ev_ar, s.ret[ev] - pred.predicted_mean, atol=TOL)
    # S_it: the prediction's standard error for a new observation
    np.testing.assert_allclose(f.ar_se, pred.se_obs, rtol=TOL)
    # full covariance of the forecast errors: s^2 I + X_W Cov(params) X_W'
    v = ols.scale * np.eye(len(xw)) + xw @ ols.cov_params() @ xw.T
    np.testing.assert_allclose(f.ev_cov, v, rtol=TOL, atol=1e-18)


def test_car_variance_closed_form_market_model() -> None:
    s = make_series(seed=7)
    f = fit(s, "market", EST, EVW)
    use = _est_rows(s)
    rm_e = s.mkt[use]
    l1 = len(rm_e)
    rbar = rm_e.mean()
    smm = ((rm_e - rbar) ** 2).sum()
    s2 = f.sigma**2
    for a, b in [(0, 0), (0, 1), (-1, 1), (0, 5), (0, 10), (-5, 10)]:
        c = car(f, (a, b))
        w = (s.rel_day >= a) & (s.rel_day <= b)
        length = b - a + 1
        closed = s2 * (length + length**2 / l1 + ((s.mkt[w] - rbar).sum()) ** 2 / smm)
        assert c.var == pytest.approx(closed, rel=TOL)
        ar = s.ret[w] - f.alpha - f.beta * s.mkt[w]
        assert c.car == pytest.approx(ar.sum(), abs=TOL)
        assert c.t == pytest.approx(ar.sum() / np.sqrt(closed), rel=1e-9)
        assert c.df == l1 - 2
        # the naive L * S_it^2 (a known mistake) differs
        naive = length * s2 * (1 + 1 / l1)
        if length > 1:
            assert abs(c.var - naive) > 1e-12
        bhar = np.prod(1 + s.ret[w]) - np.prod(1 + f.alpha + f.beta * s.mkt[w])
        assert c.bhar == pytest.approx(bhar, abs=TOL)


def test_one_day_variance_closed_form() -> None:
    s = make_series(seed=3)
    f = fit(s, "market", EST, EVW)
    use = _est_rows(s)
    rm_e = s.mkt[use]
    rbar, smm, l1 = rm_e.mean(), ((rm_e - rm_e.mean()) ** 2).sum(), len(rm_e)
    ev = (s.rel_day >= EVW[0]) & (s.rel_day <= EVW[1])
    closed = f.sigma**2 * (1 + 1 / l1 + (s.mkt[ev] - rbar) ** 2 / smm)
    np.testing.assert_allclose(f.ar_se**2, closed, rtol=TOL)


def test_constant_mean_model() -> None:
    s = make_series(seed=5)
    f = fit(s, "constant-mean", EST, EVW)
    use = (s.rel_day >= EST[0]) & (s.rel_day <= EST[1])
    r = s.ret[use]
    assert f.k == 1 and f.nobs == 240
    assert f.alpha == pytest.approx(r.mean(), abs=TOL)
    assert f.sigma == pytest.approx(r.std(ddof=1), rel=TOL)
    c = car(f, (0, 5))
    assert c.var == pytest.approx(f.sigma**2 * (6 + 36 / 240), rel=TOL)
    assert c.df == 239


def test_market_adjusted_model() -> None:
    s = make_series(seed=9)
    f = fit(s, "market-adjusted", EST, EVW)
    use = (s.rel_day >= EST[0]) & (s.rel_day <= EST[1])
    d = s.ret[use] - s.mkt[use]
    assert f.k == 0 and f.df == 240
    assert f.sigma == pytest.approx(np.sqrt((d**2).sum() / 240), rel=TOL)
    ev = (s.rel_day >= EVW[0]) & (s.rel_day <= EVW[1])
    np.testing.assert_allclose(f.ev_ar, s.ret[ev] - s.mkt[ev], atol=TOL)
    c = car(f, (0, 1))
    assert c.var == pytest.approx(2 * f.sigma**2, rel=TOL)


def test_missing_benchmark_gives_no_expected_return() -> None:
    s = make_series(seed=4)
    mkt = s.mkt.copy()
    mkt[s.rel_day == 0] = np.nan
    s = EventSeries(rel_day=s.rel_day, dates=s.dates, ret=s.ret, mkt=mkt, excluded=s.excluded)
    for model in ("market", "market-adjusted"):
        f = fit(s, model, EST, EVW)
        i = int(np.flatnonzero(f.ev_rel_day == 0)[0])
        assert np.isnan(f.ev_expected[i]) and np.isnan(f.ev_ar[i]), model
    f = fit(s, "constant-mean", EST, EVW)  # needs no benchmark
    i = int(np.flatnonzero(f.ev_rel_day == 0)[0])
    assert np.isfinite(f.ev_ar[i])


def test_gap_in_event_window_is_explicit() -> None:
    s = make_series(gaps=(1,))
    f = fit(s, "market", EST, EVW)
    i = int(np.flatnonzero(f.ev_rel_day == 1)[0])
    assert np.isnan(f.ev_ar[i])
    assert car(f, (0, 0)).status == "ok"
    c = car(f, (0, 1))
    assert c.status == "incomplete"
    assert "price gap" in c.reason
    assert np.isnan(c.car)


def test_window_past_the_data_is_incomplete() -> None:
    s = make_series()
    keep = s.rel_day <= 3
    short = EventSeries(rel_day=s.rel_day[keep], dates=tuple(np.array(s.dates)[keep]),
                        ret=s.ret[keep], mkt=s.mkt[keep], excluded=s.excluded[keep])
    f = fit(short, "market", EST, EVW)
    assert car(f, (0, 1)).status == "ok"
    c = car(f, (0, 10))
    assert c.status == "incomplete" and "4 of 11" in c.reason


def test_sq_pvalue_of_the_most_extreme_residual_is_one_over_l1() -> None:
    s = make_series(seed=11)
    f = fit(s, "market", EST, EVW)
    resid = f.est_resid
    extreme = resid[np.nanargmax(np.abs(resid))]
    p, n = sq_pvalue(extreme, resid, 1)
    assert n == f.nobs
    assert p == pytest.approx(1 / f.nobs)
    p_more, _ = sq_pvalue(2 * extreme, resid, 1)
    assert p_more == 0.0
    # the other tail: the most extreme residual of the opposite sign
    finite = resid[np.isfinite(resid)]
    other = finite.max() if extreme < 0 else finite.min()
    assert sq_pvalue(other, resid, 1)[0] == pytest.approx(1 / f.nobs)
    # the median splits the distribution: p is about one half
    p_mid, _ = sq_pvalue(float(np.median(finite)), resid, 1)
    assert 0.45 < p_mid <= 0.5 + 1 / f.nobs


def test_sq_uses_quantiles_not_absolute_values() -> None:
    """Sums centred away from zero (market-adjusted): the test reads the quantiles."""
    resid = np.linspace(0.01, 0.05, 101)  # all positive, mean 0.03
    assert sq_pvalue(0.01, resid, 1)[0] == pytest.approx(1 / 101)  # the lowest value
    assert sq_pvalue(0.03, resid, 1)[0] == pytest.approx(51 / 101)  # the median
    # |x| >= |value| would have called -0.03 as extreme as the median
    assert sq_pvalue(-0.03, resid, 1)[0] == 0.0


def test_sq_moving_sums_skip_gaps_and_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    resid = rng.normal(size=50)
    resid[[10, 30]] = np.nan
    sums = moving_sums(resid, 5)
    brute = [resid[i:i + 5].sum() for i in range(46) if np.all(np.isfinite(resid[i:i + 5]))]
    np.testing.assert_allclose(sums, brute)
    value = 1.3
    p, n = sq_pvalue(value, resid, 5)
    assert n == len(brute)
    b = np.array(brute)
    assert p == pytest.approx(min(np.mean(b <= value), np.mean(b >= value)))


def test_too_few_observations_and_constant_benchmark() -> None:
    s = make_series()
    flat = EventSeries(rel_day=s.rel_day, dates=s.dates, ret=s.ret,
                       mkt=np.full(len(s.mkt), 0.001), excluded=s.excluded)
    with pytest.raises(ValueError, match="constant"):
        fit(flat, "market", EST, EVW)
    empty = EventSeries(rel_day=s.rel_day, dates=s.dates, ret=np.full(len(s.ret), np.nan),
                        mkt=s.mkt, excluded=s.excluded)
    with pytest.raises(ValueError, match="usable"):
        fit(empty, "market", EST, EVW)


# --------------------------------------------------------------------------- more models


def with_factor(s: EventSeries, seed: int = 21) -> tuple[EventSeries, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 0.01, len(s.rel_day))
    ret = s.ret + 0.6 * f
    return EventSeries(rel_day=s.rel_day, dates=s.dates, ret=ret, mkt=s.mkt,
                       excluded=s.excluded, factors={"us_prev": f}), f


def test_multi_factor_model_matches_statsmodels() -> None:
    from impact.estimation import ModelSpec

    s, f = with_factor(make_series(seed=13, gaps=(-77,)))
    spec = ModelSpec(name="market+us", kind="multi-factor", factors=("us_prev",))
    fitted = fit(s, spec, EST, EVW)
    use = _est_rows(s)
    x = np.column_stack([np.ones(use.sum()), s.mkt[use], f[use]])
    ols = sm.OLS(s.ret[use], x).fit()
    assert fitted.k == 3 and fitted.df == int(use.sum()) - 3
    np.testing.assert_allclose(fitted.params, ols.params, atol=TOL)
    assert fitted.param_names == ("alpha", "beta", "us_prev")
    assert fitted.sigma == pytest.approx(np.sqrt(ols.scale), rel=TOL)
    ev = (s.rel_day >= EVW[0]) & (s.rel_day <= EVW[1])
    xw = np.column_stack([np.ones(ev.sum()), s.mkt[ev], f[ev]])
    pred = ols.get_prediction(xw)
    np.testing.assert_allclose(fitted.ev_ar, s.ret[ev] - pred.predicted_mean, atol=TOL)
    np.testing.assert_allclose(fitted.ar_se, pred.se_obs, rtol=TOL)
    c = car(fitted, (0, 3))
    w = (s.rel_day >= 0) & (s.rel_day <= 3)
    xw3 = np.column_stack([np.ones(w.sum()), s.mkt[w], f[w]])
    v = ols.scale * (4 + np.ones(4) @ xw3 @ np.linalg.inv(x.T @ x) @ xw3.T @ np.ones(4))
    assert c.var == pytest.approx(v, rel=TOL)
    # a missing factor value on a day gives no AR that day (never a made-up one)
    f2 = f.copy()
    f2[s.rel_day == 2] = np.nan
    s2 = EventSeries(s.rel_day, s.dates, s.ret, s.mkt, s.excluded, {"us_prev": f2})
    fitted2 = fit(s2, spec, EST, EVW)
    i = int(np.flatnonzero(fitted2.ev_rel_day == 2)[0])
    assert np.isnan(fitted2.ev_ar[i]) and np.isnan(fitted2.ev_expected[i])


def test_multi_factor_without_market_and_unknown_factor() -> None:
    from impact.estimation import ModelSpec

    s, f = with_factor(make_series(seed=14))
    only = ModelSpec(name="us-only", kind="multi-factor", factors=("us_prev",), market=False)
    fitted = fit(s, only, EST, EVW)
    use = _est_rows(s)
    ols = sm.OLS(s.ret[use], sm.add_constant(f[use])).fit()
    np.testing.assert_allclose(fitted.params, ols.params, atol=TOL)
    assert np.isnan(fitted.beta)
    bad = ModelSpec(name="x", kind="multi-factor", factors=("nope",))
    with pytest.raises(ValueError, match="needs factor 'nope'"):
        fit(s, bad, EST, EVW)


def _lead_lag(s: EventSeries) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    use = _est_rows(s)
    lag = np.r_[np.nan, s.mkt[:-1]]
    lead = np.r_[s.mkt[1:], np.nan]
    rows = use & np.isfinite(lag) & np.isfinite(lead)
    return rows, lag, lead, use


def test_scholes_williams_beta() -> None:
    s = make_series(seed=15)
    fitted = fit(s, "scholes-williams", EST, EVW)
    rows, lag, lead, use = _lead_lag(s)
    y, m = s.ret[rows], s.mkt[rows]

    def b(x: np.ndarray) -> float:
        return float(sm.OLS(y, sm.add_constant(x)).fit().params[1])

    rho = np.corrcoef(m, lag[rows])[0, 1]
    beta = (b(lag[rows]) + b(m) + b(lead[rows])) / (1 + 2 * rho)
    assert fitted.beta == pytest.approx(beta, rel=1e-10)
    assert fitted.alpha == pytest.approx(y.mean() - beta * m.mean(), abs=TOL)
    # residuals over the whole estimation window, s^2 with L1 - 2
    resid = s.ret[use] - fitted.alpha - fitted.beta * s.mkt[use]
    assert fitted.sigma == pytest.approx(np.sqrt(resid @ resid / (use.sum() - 2)), rel=TOL)


def test_dimson_beta_is_the_sum_of_lead_lag_coefficients() -> None:
    s = make_series(seed=16)
    fitted = fit(s, "dimson", EST, EVW)
    rows, lag, lead, _use = _lead_lag(s)
    x = np.column_stack([lag[rows], s.mkt[rows], lead[rows]])
    ols = sm.OLS(s.ret[rows], sm.add_constant(x)).fit()
    assert fitted.beta == pytest.approx(ols.params[1:].sum(), rel=1e-10)
    assert fitted.alpha == pytest.approx(
        s.ret[rows].mean() - fitted.beta * s.mkt[rows].mean(), abs=TOL)


def test_thin_trading_lowers_the_ols_beta_but_not_scholes_williams() -> None:
    """A security that reacts to the market one session late: OLS beta is biased down."""
    rng = np.random.default_rng(3)
    rel = np.arange(EST[0], EVW[1] + 1)
    mkt = rng.normal(0, 0.01, len(rel))
    ret = 0.5 * mkt + 0.5 * np.r_[0.0, mkt[:-1]] + rng.normal(0, 0.002, len(rel))
    dates = tuple(date(2024, 1, 1) + timedelta(days=int(i)) for i in range(len(rel)))
    s = EventSeries(rel, dates, ret, mkt, np.zeros(len(rel), dtype=bool))
    assert fit(s, "market", EST, EVW).beta == pytest.approx(0.5, abs=0.1)
    assert fit(s, "scholes-williams", EST, EVW).beta == pytest.approx(1.0, abs=0.1)
    assert fit(s, "dimson", EST, EVW).beta == pytest.approx(1.0, abs=0.05)
