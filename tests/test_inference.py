"""Cross-sectional tests: identities, closed forms, independent computations, edge cases."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.linalg import hadamard

from impact.estimation import EventSeries, Fit, car, fit
from impact.inference import (
    TEST_NAMES,
    TestResult,
    aggregate,
    kp_factor,
    mean_pairwise_correlation,
    run_tests,
    single_tests,
    wilcoxon_signed_rank,
)

TOL = 1e-12
D0 = date(2024, 1, 1)


def _template() -> Fit:
    rel = np.arange(-20, 1)
    rng = np.random.default_rng(0)
    mkt = rng.normal(0, 0.01, len(rel))
    s = EventSeries(rel_day=rel, dates=tuple(D0 + timedelta(days=int(i)) for i in range(len(rel))),
                    ret=mkt + rng.normal(0, 0.01, len(rel)), mkt=mkt,
                    excluded=np.zeros(len(rel), dtype=bool))
    return fit(s, "market", (-20, -1), (0, 0))


TEMPLATE = _template()


def make_fit(est_resid: np.ndarray, ev_ar: np.ndarray, *, k: int = 2,
             ev_var: np.ndarray | None = None, est_start: int = -250,
             ev_start: int = -2) -> Fit:
    """A Fit with the given residuals and event-window ARs, V = diag(ev_var) (default s^2 I).

    Built with dataclasses.replace on a real fit, so that fields added to Fit later
    keep their values.
    """
    est_resid = np.asarray(est_resid, dtype=float)
    ev_ar = np.asarray(ev_ar, dtype=float)
    ok = np.isfinite(est_resid)
    n = int(ok.sum())
    s2 = float(np.sum(est_resid[ok] ** 2) / (n - k))
    var = np.full(len(ev_ar), s2) if ev_var is None else np.asarray(ev_var, dtype=float)
    est_rel = np.arange(est_start, est_start + len(est_resid))
    ev_rel = np.arange(ev_start, ev_start + len(ev_ar))
    return replace(
        TEMPLATE, sigma=math.sqrt(s2), nobs=n, k=k, est_rel_day=est_rel, est_resid=est_resid,
        ev_rel_day=ev_rel, ev_dates=tuple(D0 + timedelta(days=int(d)) for d in ev_rel - ev_start),
        ev_ret=ev_ar, ev_mkt=np.zeros(len(ev_ar)), ev_expected=np.zeros(len(ev_ar)), ev_ar=ev_ar,
        ev_cov=np.diag(var),
    )


def by_name(results: list[TestResult]) -> dict[str, TestResult]:
    return {r.name: r for r in results}


def simulated_fits(n: int = 12, seed: int = 3, shock: float = 0.0, rho: float = 0.0,
                   model: str = "market") -> list[Fit]:
    """Fits from impact.estimation.fit on simulated market-model returns."""
    rng = np.random.default_rng(seed)
    rel = np.arange(-250, 11)
    dates = tuple(D0 + timedelta(days=int(i)) for i in range(len(rel)))
    mkt = rng.normal(0.0004, 0.01, len(rel))
    common = rng.normal(0, 1, len(rel))
    out = []
    for _ in range(n):
        sd = rng.uniform(0.01, 0.03)
        e = sd * (math.sqrt(rho) * common + math.sqrt(1 - rho) * rng.normal(0, 1, len(rel)))
        r = 0.0003 + rng.uniform(0.5, 1.5) * mkt + e
        r[rel == 0] += shock
        s = EventSeries(rel_day=rel, dates=dates, ret=r, mkt=mkt,
                        excluded=np.zeros(len(rel), dtype=bool))
        out.append(fit(s, model, (-250, -11), (-5, 10)))
    return out


# --------------------------------------------------------------------- shape of the output


def test_every_test_reported_in_order_and_never_nan() -> None:
    res = run_tests(simulated_fits(shock=0.01), (-1, 1), n_boot=199)
    assert [r.name for r in res] == list(TEST_NAMES)
    for r in res:
        assert r.status in ("ok", "not computed")
        if r.ok:
            assert r.statistic is not None and math.isfinite(r.statistic)
            assert r.p is not None and 0.0 <= r.p <= 1.0
            assert r.reason == ""
        else:
            assert r.statistic is None and r.p is None and r.reason
    assert not by_name(res)["corrado"].ok  # one-day test on a 3-day window
    assert not by_name(res)["t_single"].ok  # 12 securities


def test_clustering_robust_flags() -> None:
    robust = {r.name for r in run_tests(simulated_fits(), (0, 0), n_boot=9) if r.clustering_robust}
    assert robust == {"bw_cda", "kp_bmp", "kp_patell", "corrado", "corrado_cowan", "grank",
                      "bootstrap_caar"}


def test_unknown_test_name_and_reversed_window_raise() -> None:
    with pytest.raises(ValueError, match="unknown test"):
        run_tests(simulated_fits(n=2), (0, 0), tests=["nope"])
    with pytest.raises(ValueError, match="before its start"):
        run_tests(simulated_fits(n=2), (1, 0))


# --------------------------------------------------------------------- closed forms


def test_cross_sectional_t_hand_example() -> None:
    # one-day CARs 1, 2, 3, -1 (%): mean 1.25, sd sqrt(8.75/3), t = 2 * 1.25 / sd
    ars = [0.01, 0.02, 0.03, -0.01]
    rng = np.random.default_rng(0)
    fits = [make_fit(rng.normal(0, 0.01, 100), [0.0, a, 0.0]) for a in ars]
    r = by_name(run_tests(fits, (-1, -1), tests=["t_cs"]))["t_cs"]
    t = 2 * 1.25 / math.sqrt(8.75 / 3)
    assert r.statistic == pytest.approx(t, abs=TOL)
    assert r.statistic == pytest.approx(1.4638501094227998, abs=TOL)
    assert r.df == 3 and r.distribution == "t" and r.n == 4
    assert r.p == pytest.approx(stats.ttest_1samp(ars, 0.0).pvalue, abs=TOL)


def test_cross_sectional_t_sums_the_window() -> None:
    # a CAR test sums the window's ARs (it does not average them)
    rng = np.random.default_rng(1)
    ev = rng.normal(0.004, 0.01, (6, 3))
    fits = [make_fit(rng.normal(0, 0.01, 120), row) for row in ev]
    r = by_name(run_tests(fits, (-2, 0), tests=["t_cs"]))["t_cs"]
    cars = ev.sum(axis=1)
    assert r.statistic == pytest.approx(stats.ttest_1samp(cars, 0.0).statistic, abs=TOL)
    agg = aggregate(fits, (-2, 0))
    assert agg.caar == pytest.approx(cars.mean(), abs=TOL)
    np.testing.assert_allclose(agg.aar, ev.mean(axis=0), atol=TOL)
    assert agg.caar == pytest.approx(agg.aar.sum(), abs=TOL)
    assert agg.caar_se_cs == pytest.approx(cars.std(ddof=1) / math.sqrt(6), abs=TOL)


def test_sign_and_generalized_sign_closed_forms() -> None:
    # 10 securities, 7 positive CARs; every estimation window has 40% positive residuals
    est = np.array([0.01] * 40 + [-0.01] * 60)
    fits = [make_fit(est, [0.0, 0.0, v]) for v in [0.01] * 7 + [-0.01] * 3]
    res = by_name(run_tests(fits, (0, 0), tests=["sign", "gsign"]))
    assert res["sign"].statistic == pytest.approx((7 - 5) / (math.sqrt(10) / 2), abs=TOL)
    assert res["sign"].statistic == pytest.approx(1.2649110640673518, abs=TOL)
    assert res["gsign"].statistic == pytest.approx(3 / math.sqrt(2.4), abs=TOL)
    assert res["gsign"].p == pytest.approx(2 * stats.norm.sf(3 / math.sqrt(2.4)), abs=TOL)


def test_generalized_sign_averages_the_securities_shares() -> None:
    # Cowan's p-hat is the mean of each security's share (0.5 and 0.3), not the pooled share
    a = make_fit(np.array([0.01] * 50 + [-0.01] * 50), [0.0, 0.0, 0.01])
    b = make_fit(np.array([0.01] * 15 + [-0.01] * 35 + [np.nan] * 50), [0.0, 0.0, 0.01])
    r = by_name(run_tests([a, b], (0, 0), tests=["gsign"]))["gsign"]
    assert r.statistic == pytest.approx((2 - 2 * 0.4) / math.sqrt(2 * 0.4 * 0.6), abs=TOL)


def test_wilcoxon_exact_hand_example() -> None:
    x = [1.2, -0.5, 3.1, 2.2, -1.7, 0.4, 2.9]
    # |x| ranks: 0.4:1 0.5:2 1.2:3 1.7:4 2.2:5 2.9:6 3.1:7 -> W+ = 3+7+5+1+6 = 22, W- = 6;
    # 14 of the 128 sign patterns give W- <= 6, so p = 2 * 14 / 128
    w, z, p, exact, n = wilcoxon_signed_rank(x)
    assert (w, exact, n) == (22.0, True, 7)
    assert p == pytest.approx(2 * 14 / 128, abs=TOL)
    assert p == pytest.approx(stats.wilcoxon(x, method="exact").pvalue, abs=TOL)
    assert z == pytest.approx((22 - 14) / math.sqrt(7 * 8 * 15 / 24), abs=TOL)
    fits = [make_fit(np.random.default_rng(i).normal(0, 0.01, 100), [v / 100, 0.0, 0.0])
            for i, v in enumerate(x)]
    r = by_name(run_tests(fits, (-2, -2), tests=["wilcoxon"]))["wilcoxon"]
    assert r.distribution == "exact" and r.p == pytest.approx(0.21875, abs=TOL)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_wilcoxon_exact_matches_scipy(seed: int) -> None:
    x = np.random.default_rng(seed).normal(0.3, 1.0, 20)
    _, _, p, exact, _ = wilcoxon_signed_rank(x)
    assert exact
    assert p == pytest.approx(stats.wilcoxon(x, method="exact").pvalue, abs=TOL)


def test_wilcoxon_normal_with_ties_or_large_n_matches_scipy() -> None:
    tied = [1.0, 1.0, -2.0, 3.0, 3.0, 3.0, -1.0, 4.0, 0.0, 5.0]
    _, _, p, exact, n = wilcoxon_signed_rank(tied)
    assert not exact and n == 9  # the zero is dropped
    ref = stats.wilcoxon(tied, method="approx", zero_method="wilcox", correction=False)
    assert p == pytest.approx(ref.pvalue, abs=TOL)
    big = np.random.default_rng(5).normal(0.1, 1.0, 80)
    _, _, p, exact, _ = wilcoxon_signed_rank(big)
    assert not exact
    assert p == pytest.approx(stats.wilcoxon(big, method="approx").pvalue, abs=TOL)


def test_skewness_adjusted_t_closed_form() -> None:
    rng = np.random.default_rng(7)
    cars = rng.lognormal(0, 1, 15) / 100 - 0.012
    fits = [make_fit(rng.normal(0, 0.01, 100), [0.0, 0.0, c]) for c in cars]
    r = by_name(run_tests(fits, (0, 0), tests=["skew_t"]))["skew_t"]
    s = cars.mean() / cars.std(ddof=1)
    g = stats.skew(cars, bias=False)
    stat = math.sqrt(15) * (s + g * s**2 / 3 + g / 90)
    assert r.statistic == pytest.approx(stat, abs=TOL)
    assert r.df == 14 and r.p == pytest.approx(2 * stats.t.sf(abs(stat), 14), abs=TOL)
    # with no skewness it is the cross-sectional t
    sym = np.concatenate([cars - cars.mean(), cars.mean() - cars]) + 0.001
    fits = [make_fit(rng.normal(0, 0.01, 100), [0.0, 0.0, c]) for c in sym]
    res = by_name(run_tests(fits, (0, 0), tests=["skew_t", "t_cs"]))
    assert res["skew_t"].statistic == pytest.approx(res["t_cs"].statistic, abs=1e-10)


# --------------------------------------------------------------------- standardized tests


def test_patell_and_bmp_use_the_fec_variance_of_the_car() -> None:
    fits = simulated_fits(n=10, shock=0.01)
    window = (-2, 3)
    res = by_name(run_tests(fits, window, tests=["patell", "bmp"]))
    scar = np.array([car(f, window).t for f in fits])  # CAR / sqrt(1' V 1), V with the FEC
    df = np.array([f.df for f in fits], dtype=float)
    assert res["patell"].statistic == pytest.approx(scar.sum() / math.sqrt((df / (df - 2)).sum()),
                                                    abs=TOL)
    assert res["bmp"].statistic == pytest.approx(stats.ttest_1samp(scar, 0.0).statistic, abs=TOL)
    assert res["bmp"].df == 9
    agg = aggregate(fits, window)
    np.testing.assert_allclose(agg.scar, scar, atol=TOL)


def test_kp_with_zero_correlation_equals_bmp_and_patell() -> None:
    # Hadamard columns 1..N: zero-mean and mutually orthogonal, so every rbar term is exactly 0
    h = hadamard(128).astype(float)[:, 1:9] * 0.01
    rng = np.random.default_rng(11)
    fits = [make_fit(h[:, j], rng.normal(0.003, 0.01, 3)) for j in range(8)]
    p_est = np.column_stack([f.est_resid for f in fits])
    assert mean_pairwise_correlation(p_est) == pytest.approx(0.0, abs=1e-15)
    res = by_name(run_tests(fits, (-2, 0), tests=["bmp", "kp_bmp", "patell", "kp_patell"]))
    assert res["kp_bmp"].statistic == pytest.approx(res["bmp"].statistic, abs=1e-12)
    assert res["kp_patell"].statistic == pytest.approx(res["patell"].statistic, abs=1e-12)
    assert res["kp_bmp"].p == pytest.approx(res["bmp"].p, abs=1e-12)
    assert kp_factor(8, 0.0) == 1.0


def test_kp_adjustment_formula() -> None:
    fits = simulated_fits(n=15, rho=0.2, shock=0.01)
    res = by_name(run_tests(fits, (0, 0), tests=["bmp", "kp_bmp", "patell", "kp_patell"]))
    resid = np.column_stack([f.est_resid for f in fits])
    c = np.corrcoef(resid.T)
    r = (c.sum() - 15) / (15 * 14)
    assert r > 0.1
    assert res["kp_bmp"].statistic == pytest.approx(
        res["bmp"].statistic * math.sqrt((1 - r) / (1 + 14 * r)), abs=1e-10)
    assert res["kp_patell"].statistic == pytest.approx(
        res["patell"].statistic / math.sqrt(1 + 14 * r), abs=1e-10)


def test_mean_pairwise_correlation_is_pairwise_complete() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 5)) + rng.normal(size=(60, 1))
    x[rng.random(x.shape) < 0.15] = np.nan
    c = pd.DataFrame(x).corr().to_numpy()  # pandas: pairwise-complete Pearson
    expected = c[~np.eye(5, dtype=bool)].mean()
    assert mean_pairwise_correlation(x) == pytest.approx(expected, abs=1e-12)
    assert mean_pairwise_correlation(x[:, :1]) is None


# --------------------------------------------------------------------- rank tests


def _corrado_by_hand(fits: list[Fit], day: int) -> float:
    """Corrado (1989) on a balanced panel: loops and scipy's rankdata."""
    k = np.array([stats.rankdata(np.concatenate([f.est_resid, f.ev_ar])) for f in fits])
    t = k.shape[1]
    kbar = (k - (t + 1) / 2).mean(axis=0)
    s = math.sqrt(float(np.mean(kbar**2)))
    pos = len(fits[0].est_resid) + int(np.flatnonzero(fits[0].ev_rel_day == day)[0])
    return float(kbar[pos] / s)


def test_corrado_rank_by_hand_and_cowan_form() -> None:
    fits = simulated_fits(n=9, shock=0.01)
    res = by_name(run_tests(fits, (0, 0), tests=["corrado", "corrado_cowan"]))
    assert res["corrado"].statistic == pytest.approx(_corrado_by_hand(fits, 0), abs=1e-12)
    assert res["corrado_cowan"].statistic == pytest.approx(res["corrado"].statistic, abs=TOL)
    win = by_name(run_tests(fits, (-1, 2), tests=["corrado_cowan"]))["corrado_cowan"]
    by_day = [_corrado_by_hand(fits, d) for d in range(-1, 3)]
    assert win.statistic == pytest.approx(sum(by_day) / 2.0, abs=1e-12)  # sqrt(L) = 2


def test_corrado_with_gaps_averages_the_securities_present() -> None:
    # Kbar_t is the mean over the securities with an AR that day; T_i counts i's own ARs
    fits = simulated_fits(n=5, shock=0.01)
    gaps = [np.array([], dtype=int), np.arange(10, 40), np.array([3, 100]), np.arange(200, 240),
            np.array([], dtype=int)]
    gapped = []
    for f, g in zip(fits, gaps, strict=True):
        e = f.est_resid.copy()
        e[g] = np.nan
        gapped.append(replace(f, est_resid=e))
    x = np.array([np.concatenate([f.est_resid, f.ev_ar]) for f in gapped])
    dev = np.full(x.shape, np.nan)
    for i, row in enumerate(x):
        ok = np.isfinite(row)
        dev[i, ok] = stats.rankdata(row[ok]) - (ok.sum() + 1) / 2
    kbar = np.nanmean(dev, axis=0)
    pos = len(fits[0].est_resid) + int(np.flatnonzero(fits[0].ev_rel_day == 0)[0])
    expected = kbar[pos] / math.sqrt(float(np.mean(kbar**2)))
    r = run_tests(gapped, (0, 0), tests=["corrado"])[0]
    assert r.statistic == pytest.approx(expected, abs=1e-12)


def _grank_by_hand(fits: list[Fit], window: tuple[int, int]) -> float:
    """Kolari-Pynnönen (2011) GRANK on a balanced panel, written out step by step."""
    scar = np.array([car(f, window).t for f in fits])
    scar_star = scar / scar.std(ddof=1)
    u = []
    for f, s in zip(fits, scar_star, strict=True):
        gsar = np.append(f.est_resid / f.sigma, s)
        u.append(stats.rankdata(gsar) / (len(gsar) + 1) - 0.5)
    ubar = np.array(u).mean(axis=0)
    t = len(ubar)
    z = ubar[-1] / math.sqrt(float(np.mean(ubar**2)))
    return float(z * math.sqrt((t - 2) / (t - 1 - z**2)))


def test_grank_by_hand() -> None:
    fits = simulated_fits(n=11, shock=0.01)
    for window in [(0, 0), (-2, 4)]:
        r = by_name(run_tests(fits, window, tests=["grank"]))["grank"]
        assert r.statistic == pytest.approx(_grank_by_hand(fits, window), abs=1e-12)
        assert r.df == 240 + 1 - 2


def test_rank_tests_ignore_a_securitys_scale() -> None:
    fits = simulated_fits(n=8, shock=0.01)
    f0 = fits[0]
    scaled = replace(f0, est_resid=3 * f0.est_resid, ev_ar=3 * f0.ev_ar, ev_cov=9 * f0.ev_cov,
                     sigma=3 * f0.sigma)
    names = ["corrado", "grank", "sign", "bmp"]
    a = by_name(run_tests(fits, (0, 0), tests=names))
    b = by_name(run_tests([scaled, *fits[1:]], (0, 0), tests=names))
    for n in ["corrado", "grank", "sign", "bmp"]:
        assert a[n].statistic == pytest.approx(b[n].statistic, abs=1e-12), n


# --------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    fits = simulated_fits(n=10, shock=0.004)
    one = by_name(run_tests(fits, (0, 1), rng_seed=7, n_boot=999, tests=["bootstrap_caar"]))
    two = by_name(run_tests(fits, (0, 1), rng_seed=7, n_boot=999, tests=["bootstrap_caar"]))
    other = by_name(run_tests(fits, (0, 1), rng_seed=8, n_boot=999, tests=["bootstrap_caar"]))
    r = one["bootstrap_caar"]
    assert r == two["bootstrap_caar"]
    assert r.p != other["bootstrap_caar"].p
    assert r.ok and r.distribution == "bootstrap" and 1 / 1000 <= r.p <= 1  # type: ignore[operator]


def test_bootstrap_centres_the_residuals() -> None:
    # the null resamples mean-zero portfolio residuals: a drift in them changes nothing
    fits = simulated_fits(n=6, shock=0.01)
    drifted = [replace(f, est_resid=f.est_resid + 0.004) for f in fits]
    a = run_tests(fits, (0, 2), rng_seed=3, n_boot=499, tests=["bootstrap_caar"])[0]
    b = run_tests(drifted, (0, 2), rng_seed=3, n_boot=499, tests=["bootstrap_caar"])[0]
    assert a.p == b.p and a.statistic == pytest.approx(b.statistic, rel=1e-12)


def test_bootstrap_detects_a_large_shock_and_not_a_null() -> None:
    big = by_name(run_tests(simulated_fits(n=10, shock=0.05), (0, 0), n_boot=999,
                            tests=["bootstrap_caar"]))["bootstrap_caar"]
    assert big.p == pytest.approx(1 / 1000)
    null = by_name(run_tests(simulated_fits(n=10, seed=9), (0, 0), n_boot=999,
                             tests=["bootstrap_caar", "bw_cda"]))
    assert null["bootstrap_caar"].p > 0.05  # type: ignore[operator]
    # the bootstrap resamples the same portfolio residuals as Brown-Warner's S
    assert null["bootstrap_caar"].statistic == pytest.approx(null["bw_cda"].statistic, rel=0.1)


# --------------------------------------------------------------------- not computed


def test_one_security_cross_sectional_tests_not_computed() -> None:
    res = by_name(run_tests(simulated_fits(n=1, shock=0.02), (0, 0), n_boot=99))
    for name in ["t_cs", "bmp", "kp_bmp", "kp_patell", "grank", "skew_t"]:
        assert res[name].status == "not computed", name
        assert "at least" in res[name].reason and res[name].statistic is None
    for name in ["t_single", "sq_single", "patell", "bw_cda", "sign", "corrado"]:
        assert res[name].ok, name
    assert res["sq_single"].distribution == "empirical"


def test_single_tests_match_estimation_car() -> None:
    f = simulated_fits(n=1, shock=0.03)[0]
    t, sq = single_tests(f, (-1, 1))
    c = car(f, (-1, 1))
    assert t.statistic == pytest.approx(c.t, abs=TOL) and t.df == f.df
    assert t.p == pytest.approx(c.p, abs=TOL)
    assert sq.statistic == pytest.approx(c.car, abs=TOL)
    assert sq.p is not None and 0 <= sq.p < 0.05


def test_no_securities_all_not_computed() -> None:
    res = run_tests([], (0, 0), n_boot=9)
    assert [r.status for r in res] == ["not computed"] * len(TEST_NAMES)
    agg = aggregate([], (0, 0))
    assert agg.n == 0 and agg.caar is None and agg.caar_se_cs is None


def test_zero_variance_not_computed() -> None:
    rng = np.random.default_rng(2)
    same = [make_fit(rng.normal(0, 0.01, 100), [0.0, 0.0, 0.01]) for _ in range(5)]
    res = by_name(run_tests(same, (0, 0), n_boot=9))
    for name in ["t_cs", "skew_t"]:
        assert res[name].status == "not computed" and "zero" in res[name].reason, name
    flat = [make_fit(np.zeros(100), [0.0, 0.0, 0.0]) for _ in range(4)]
    res = by_name(run_tests(flat, (0, 0), n_boot=9))
    for name in ["t_cs", "bw_cda", "patell", "bmp", "kp_bmp", "kp_patell", "corrado",
                 "grank", "wilcoxon", "bootstrap_caar"]:
        assert res[name].status == "not computed", name
        assert res[name].reason, name
    for r in res.values():
        assert r.statistic is None or math.isfinite(r.statistic)


def test_security_with_a_gap_is_dropped_with_a_reason() -> None:
    fits = simulated_fits(n=5, shock=0.01)
    f = fits[2]
    ar = f.ev_ar.copy()
    ar[f.ev_rel_day == 1] = np.nan
    fits[2] = replace(f, ev_ar=ar)
    agg = aggregate(fits, (0, 2))
    assert agg.n == 4 and agg.n_input == 5 and agg.used == (0, 1, 3, 4)
    assert agg.dropped[0][0] == 2 and "relative day(s) 1" in agg.dropped[0][1]
    assert all(r.n == 4 for r in run_tests(fits, (0, 2), n_boot=9) if r.ok)
    assert aggregate(fits, (-1, 0)).n == 5
    outside = aggregate(fits, (8, 12))
    assert outside.n == 0 and "only 3 of the window's 5 days" in outside.dropped[0][1]


def test_tests_detect_a_shock() -> None:
    res = run_tests(simulated_fits(n=20, shock=0.03), (0, 0), n_boot=999)
    for r in res:
        if r.ok and r.name not in ("t_single", "sq_single"):
            assert r.p is not None and r.p < 0.01, r


@pytest.mark.filterwarnings("error")
def test_ragged_inputs_never_raise_nor_give_nan() -> None:
    # gaps, zero residuals, ties, different estimation windows, windows off the event window
    rng = np.random.default_rng(0)
    for it in range(300):
        fits = []
        for _ in range(int(rng.integers(0, 6))):
            n_est = int(rng.integers(4, 40))
            est = rng.normal(0, 0.01, n_est) if rng.random() > 0.1 else np.zeros(n_est)
            if rng.random() < 0.2:
                est = np.round(est, 2)
            est[rng.random(n_est) < 0.2] = np.nan
            if np.isfinite(est).sum() < 3:
                est[:3] = [0.01, -0.01, 0.005]
            ev = rng.normal(0, 0.01, int(rng.integers(1, 6)))
            if rng.random() < 0.2:
                ev[rng.integers(0, len(ev))] = np.nan
            fits.append(make_fit(est, ev, k=int(rng.integers(0, 3)),
                                 est_start=int(rng.integers(-65, -55)),
                                 ev_start=int(rng.integers(-3, 1))))
        a = int(rng.integers(-3, 2))
        window = (a, a + int(rng.integers(0, 3)))
        for r in run_tests(fits, window, n_boot=int(rng.integers(1, 30)), rng_seed=it):
            if r.ok:
                assert r.statistic is not None and math.isfinite(r.statistic), r
                assert r.p is not None and 0 <= r.p <= 1, r
            else:
                assert r.reason and r.statistic is None and r.p is None, r
        agg = aggregate(fits, window)
        assert agg.n + len(agg.dropped) == len(fits)
