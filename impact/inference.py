"""Cross-sectional inference: AAR/CAAR and the event-study test battery.

Pure functions over a sequence of :class:`impact.estimation.Fit` objects (one
per security, for one shared event or for different events) and a window
``(start, end)`` of days relative to day 0, both ends included. No I/O, no
frames: numpy and scipy only. The definitions are those of
``../shared/docs/methods.md``; ``docs/tests.md`` lists each test, its variant
and how it is checked against R's estudy2.

Conventions
-----------
* A security takes part when every day of the window has an abnormal return;
  the others are listed in :attr:`Aggregate.dropped` with the reason.
* Standardization uses the forecast-error-corrected covariance of the event
  window, :attr:`Fit.ev_cov`: ``SCAR_i = CAR_i / sqrt(1' V_i 1)`` with
  ``df_i = L1_i - k_i`` (for a one-day window SCAR is the SAR).
* Series from different securities are aligned on the relative day (the
  estimation-window residuals for the Kolari-Pynnönen correlation, the
  portfolio residuals of Brown-Warner and the bootstrap, the ranks).
* Every test returns a :class:`TestResult`. When it cannot be computed (too few
  securities, zero variance, ...) its status is ``"not computed"`` and
  ``reason`` says why: a test never returns NaN and never raises.
* p-values are two-sided.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import numpy.typing as npt
from scipy import stats

from impact.estimation import Fit, moving_sums

FloatArray = npt.NDArray[np.float64]

#: Largest number of non-zero differences for which the Wilcoxon p-value is exact.
WILCOXON_EXACT_MAX = 50

__all__ = [
    "TEST_NAMES",
    "WILCOXON_EXACT_MAX",
    "Aggregate",
    "TestResult",
    "aggregate",
    "estudy2_car",
    "estudy2_daily",
    "kp_factor",
    "mean_pairwise_correlation",
    "run_tests",
    "single_tests",
    "wilcoxon_signed_rank",
]


@dataclass(frozen=True)
class TestResult:
    """One test of the null hypothesis of no abnormal return over a window."""

    __test__ = False  # not a pytest test class

    #: Stable identifier, e.g. ``"kp_bmp"`` (see :data:`TEST_NAMES`).
    name: str
    #: Human name, e.g. ``"Kolari-Pynnönen adjusted BMP"``.
    label: str
    #: The test statistic; None when not computed.
    statistic: float | None
    #: Null distribution of the p-value: ``t``, ``normal``, ``exact``,
    #: ``empirical`` or ``bootstrap``.
    distribution: str
    #: Degrees of freedom (``t`` distribution only).
    df: float | None
    #: Two-sided p-value; None when not computed.
    p: float | None
    #: Number of securities used.
    n: int
    #: ``"ok"`` or ``"not computed"``.
    status: str
    #: Why the test was not computed; ``""`` when ok.
    reason: str
    #: True when the test stays valid if securities share an event date
    #: (cross-sectionally correlated abnormal returns).
    clustering_robust: bool

    @property
    def ok(self) -> bool:
        """True when the test was computed."""
        return self.status == "ok"

    def __str__(self) -> str:
        if not self.ok:
            return f"{self.label}: not computed ({self.reason})"
        df = f", df={self.df:g}" if self.df is not None else ""
        return (f"{self.label}: {self.statistic:.4f} ({self.distribution}{df}), "
                f"p={self.p:.4g}, n={self.n}")


@dataclass(frozen=True)
class Aggregate:
    """Average and cumulative average abnormal returns across securities."""

    #: The window, in days relative to day 0.
    window: tuple[int, int]
    #: Number of securities given.
    n_input: int
    #: Number of securities with an abnormal return on every day of the window.
    n: int
    #: Positions (in the input) of those n securities, the order of ``car``.
    used: tuple[int, ...]
    #: Securities left out: (position in the input, reason).
    dropped: tuple[tuple[int, str], ...]
    #: Relative days of the window.
    rel_day: FloatArray
    #: AAR by day: mean abnormal return across the n securities; None if n = 0.
    aar: FloatArray | None
    #: Cross-sectional standard error of each day's AAR (sd / sqrt(n)); None if n < 2.
    aar_se: FloatArray | None
    #: CAAR: mean of the securities' CARs (= sum of the AARs); None if n = 0.
    caar: float | None
    #: Cross-sectional standard error of the CAAR, sd(CAR_i) / sqrt(n); None if n < 2.
    caar_se_cs: float | None
    #: Brown-Warner portfolio (time-series) standard error, sqrt(L) S; None if
    #: the estimation-window portfolio residuals have no variance.
    caar_se_bw: float | None
    #: Model standard error assuming independent securities,
    #: sqrt(sum_i Var(CAR_i)) / n, with the forecast-error-corrected Var(CAR_i).
    caar_se_model: float | None
    #: Each used security's CAR, its standard error sqrt(1' V_i 1) and SCAR
    #: (NaN only where that standard error is 0).
    car: FloatArray
    car_se: FloatArray
    scar: FloatArray


# name -> (label, distribution, clustering_robust)
_SPEC: dict[str, tuple[str, str, bool]] = {
    "t_cs": ("Cross-sectional t", "t", False),
    "bw_cda": ("Brown-Warner portfolio (crude dependence adjustment)", "t", True),
    "patell": ("Patell Z", "normal", False),
    "bmp": ("Boehmer-Musumeci-Poulsen standardized cross-sectional t", "t", False),
    "kp_bmp": ("Kolari-Pynnönen adjusted BMP", "t", True),
    "kp_patell": ("Kolari-Pynnönen adjusted Patell", "normal", True),
    "corrado": ("Corrado rank (one day)", "normal", True),
    "corrado_cowan": ("Corrado rank, Cowan's window form", "normal", True),
    "grank": ("Generalized rank GRANK (Kolari-Pynnönen 2011)", "t", True),
    "sign": ("Sign", "normal", False),
    "gsign": ("Generalized sign (Cowan)", "normal", False),
    "wilcoxon": ("Wilcoxon signed rank", "exact", False),
    "skew_t": ("Skewness-adjusted t (Johnson/Hall)", "t", False),
    "bootstrap_caar": ("Bootstrap CAAR, date-clustered residual resampling", "bootstrap", True),
    "t_single": ("Single-security t (SCAR)", "t", False),
    "sq_single": ("Single-security sample quantile (Gelbach-Helland-Klick)", "empirical", False),
}

#: Every test :func:`run_tests` reports, in order.
TEST_NAMES: tuple[str, ...] = tuple(_SPEC)


def _result(name: str, statistic: float, p: float, n: int, *, df: float | None = None,
            distribution: str | None = None) -> TestResult:
    label, dist, robust = _SPEC[name]
    if not (np.isfinite(statistic) and np.isfinite(p)):
        return _not_computed(name, n, "the statistic is not finite", distribution=distribution)
    return TestResult(name=name, label=label, statistic=float(statistic),
                      distribution=distribution or dist, df=None if df is None else float(df),
                      p=float(min(max(p, 0.0), 1.0)), n=n, status="ok", reason="",
                      clustering_robust=robust)


def _not_computed(name: str, n: int, reason: str, *,
                  distribution: str | None = None) -> TestResult:
    label, dist, robust = _SPEC[name]
    return TestResult(name=name, label=label, statistic=None, distribution=distribution or dist,
                      df=None, p=None, n=n, status="not computed", reason=reason,
                      clustering_robust=robust)


def _p_normal(z: float) -> float:
    return float(2.0 * stats.norm.sf(abs(z)))


def _p_t(t: float, df: float) -> float:
    return float(2.0 * stats.t.sf(abs(t), df))


# --------------------------------------------------------------------------- panel


@dataclass(frozen=True)
class _Panel:
    """The securities with a complete window, their window ARs and aligned residuals."""

    window: tuple[int, int]
    n_input: int
    fits: tuple[Fit, ...]
    used: tuple[int, ...]  # positions of ``fits`` in the input
    dropped: tuple[tuple[int, str], ...]
    rel_day: FloatArray  # (L,)
    ar: FloatArray  # (N, L) window abnormal returns
    ar_var: FloatArray  # (N, L) their forecast-error-corrected variances
    car: FloatArray  # (N,)
    var_car: FloatArray  # (N,) 1' V 1 over the window
    dof: FloatArray  # (N,) L1 - k
    est_days: FloatArray  # (D,) union of estimation-window relative days
    est: FloatArray  # (D, N) estimation-window residuals, NaN where missing

    @property
    def n(self) -> int:
        return len(self.fits)

    @property
    def length(self) -> int:
        return self.window[1] - self.window[0] + 1

    @cached_property
    def corrado(self) -> tuple[FloatArray, float, str]:
        """Kbar_t on the window's days, S(K), and why S(K) is unusable ("" if fine)."""
        return _corrado_parts(self)


def _window_index(f: Fit, window: tuple[int, int]) -> tuple[npt.NDArray[np.intp], str]:
    a, b = window
    length = b - a + 1
    idx = np.flatnonzero((f.ev_rel_day >= a) & (f.ev_rel_day <= b))
    if len(idx) < length:
        return idx, f"only {len(idx)} of the window's {length} days are in its event window"
    bad = [int(f.ev_rel_day[i]) for i in idx if not np.isfinite(f.ev_ar[i])]
    if bad:
        return idx, f"no abnormal return on relative day(s) {', '.join(map(str, bad))}"
    return idx, ""


def _align(days_list: Sequence[npt.ArrayLike], values_list: Sequence[npt.ArrayLike]
           ) -> tuple[FloatArray, FloatArray]:
    """Stack series on the union of their (relative) days: (days, matrix days x series)."""
    arrays = [np.asarray(d, dtype=float) for d in days_list]
    days = np.unique(np.concatenate(arrays)) if arrays else np.empty(0)
    out = np.full((len(days), len(arrays)), np.nan)
    for j, (d, v) in enumerate(zip(arrays, values_list, strict=True)):
        out[np.searchsorted(days, d), j] = np.asarray(v, dtype=float)
    return days, out


def _panel(fits: Sequence[Fit], window: tuple[int, int]) -> _Panel:
    a, b = int(window[0]), int(window[1])
    if b < a:
        raise ValueError(f"window end {b} is before its start {a}")
    used: list[Fit] = []
    positions: list[int] = []
    idxs: list[npt.NDArray[np.intp]] = []
    dropped: list[tuple[int, str]] = []
    for pos, f in enumerate(fits):
        idx, why = _window_index(f, (a, b))
        if why:
            dropped.append((pos, why))
        else:
            used.append(f)
            positions.append(pos)
            idxs.append(idx)
    length = b - a + 1
    n = len(used)
    ar = np.empty((n, length))
    ar_var = np.empty((n, length))
    var_car = np.empty(n)
    for i, (f, idx) in enumerate(zip(used, idxs, strict=True)):
        ar[i] = f.ev_ar[idx]
        cov = f.ev_cov[np.ix_(idx, idx)]
        ar_var[i] = np.diag(cov)
        var_car[i] = cov.sum()
    est_days, est = _align([f.est_rel_day for f in used], [f.est_resid for f in used])
    return _Panel(
        window=(a, b), n_input=len(fits), fits=tuple(used), used=tuple(positions),
        dropped=tuple(dropped),
        rel_day=np.arange(a, b + 1, dtype=float), ar=ar, ar_var=ar_var,
        car=ar.sum(axis=1), var_car=var_car,
        dof=np.array([f.df for f in used], dtype=float), est_days=est_days, est=est,
    )


def _portfolio_residuals(p: _Panel) -> FloatArray:
    """AAR on each estimation-window day with at least one residual."""
    have = np.isfinite(p.est).any(axis=1)
    rows = p.est[have]
    counts = np.isfinite(rows).sum(axis=1)
    out: FloatArray = np.nansum(rows, axis=1) / counts
    return out


def _scar(p: _Panel) -> tuple[FloatArray, str]:
    if p.n and not np.all(p.var_car > 0):
        i = p.used[int(np.flatnonzero(~(p.var_car > 0))[0])]
        return np.empty(0), f"zero variance of the CAR of security #{i} (zero residuals)"
    out: FloatArray = p.car / np.sqrt(p.var_car)
    return out, ""


# --------------------------------------------------------------------------- aggregate


def aggregate(fits: Sequence[Fit], window: tuple[int, int]) -> Aggregate:
    """AAR by day and CAAR over a window, with their standard errors.

    Parameters
    ----------
    fits
        One fit per security (from :func:`impact.estimation.fit`).
    window
        ``(start, end)`` in days relative to day 0, both ends included, inside
        the fits' event windows.

    Returns
    -------
    Aggregate
        Averages over the securities with an abnormal return on every day of
        the window; the others are listed in ``dropped``.
    """
    return _aggregate(_panel(fits, window))


def _aggregate(p: _Panel) -> Aggregate:
    n = p.n
    aar = p.ar.mean(axis=0) if n else None
    aar_se = p.ar.std(axis=0, ddof=1) / np.sqrt(n) if n >= 2 else None
    caar = float(p.car.mean()) if n else None
    se_cs = float(p.car.std(ddof=1) / np.sqrt(n)) if n >= 2 else None
    se_bw: float | None = None
    if n:
        port = _portfolio_residuals(p)
        if len(port) >= 2 and port.std(ddof=1) > 0:
            se_bw = float(np.sqrt(p.length) * port.std(ddof=1))
    se_model = float(np.sqrt(p.var_car.sum()) / n) if n else None
    car_se = np.sqrt(p.var_car)
    with np.errstate(divide="ignore", invalid="ignore"):
        scar = np.where(car_se > 0, p.car / car_se, np.nan)
    return Aggregate(window=p.window, n_input=p.n_input, n=n, used=p.used, dropped=p.dropped,
                     rel_day=p.rel_day, aar=aar, aar_se=aar_se, caar=caar, caar_se_cs=se_cs,
                     caar_se_bw=se_bw, caar_se_model=se_model, car=p.car, car_se=car_se,
                     scar=scar)


# --------------------------------------------------------------------------- helpers


def mean_pairwise_correlation(resid: npt.ArrayLike, *, min_overlap: int = 3) -> float | None:
    """Mean pairwise correlation (i != j) of residual series, pairwise complete.

    Parameters
    ----------
    resid
        Matrix days x securities, aligned on the (relative) day, NaN where missing.
    min_overlap
        Fewest common days for a pair to count.

    Returns
    -------
    float or None
        The mean of the Pearson correlations of all pairs with at least
        ``min_overlap`` common days and non-zero variance on them (each pair
        demeaned on its common days); None when no pair qualifies.
    """
    x = np.asarray(resid, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        return None
    m = np.isfinite(x).astype(float)
    x0 = np.where(m > 0, x, 0.0)
    n_ij = m.T @ m  # common days
    s_ij = x0.T @ m  # sum of x_i over the days where j is present
    q_ij = (x0 * x0).T @ m  # sum of x_i^2 over the same days
    p_ij = x0.T @ x0
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = p_ij - s_ij * s_ij.T / n_ij
        var_i = q_ij - s_ij * s_ij / n_ij
        var_j = var_i.T
        corr = cov / np.sqrt(var_i * var_j)
    ok = (n_ij >= min_overlap) & (var_i > 0) & (var_j > 0) & np.isfinite(corr)
    ok &= ~np.eye(x.shape[1], dtype=bool)
    if not ok.any():
        return None
    return float(corr[ok].mean())


def kp_factor(n: int, rbar: float) -> float:
    """Kolari-Pynnönen (2010) factor for the BMP t: sqrt((1 - rbar) / (1 + (n - 1) rbar)).

    The adjusted Patell Z uses ``sqrt(1 / (1 + (n - 1) rbar))`` instead.

    Parameters
    ----------
    n
        Number of securities.
    rbar
        Mean pairwise correlation of their residuals.

    Returns
    -------
    float
        NaN when ``1 + (n - 1) rbar <= 0`` or ``rbar >= 1``.
    """
    den = 1.0 + (n - 1) * rbar
    if den <= 0 or rbar >= 1:
        return float("nan")
    return float(np.sqrt((1.0 - rbar) / den))


def _signrank_counts(n: int) -> FloatArray:
    """Number of sign assignments of ranks 1..n giving each W+ = 0..n(n+1)/2."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    top = 0
    for k in range(1, n + 1):
        counts[k:top + k + 1] = counts[k:top + k + 1] + counts[:top + 1]
        top += k
    return counts


def wilcoxon_signed_rank(x: npt.ArrayLike) -> tuple[float, float, float, bool, int]:
    """Wilcoxon signed-rank test that the values are centred on zero.

    Zeros are dropped (Wilcoxon's convention), ties get average ranks.

    Parameters
    ----------
    x
        The differences (e.g. one CAR per security).

    Returns
    -------
    (w_plus, z, p, exact, n)
        ``W+`` (sum of the ranks of the positive values), the normal score
        ``(W+ - n(n+1)/4) / sd`` (sd with the tie correction), the two-sided
        p-value, whether it is exact (n <= :data:`WILCOXON_EXACT_MAX` and no
        ties: ``min(1, 2 min(P(W <= W+), P(W >= W+)))``) or normal, and the
        number n of non-zero values. With n = 0 the p-value is NaN.
    """
    v = np.asarray(x, dtype=float)
    v = v[np.isfinite(v) & (v != 0)]
    n = len(v)
    if n == 0:
        return 0.0, float("nan"), float("nan"), False, 0
    ranks = stats.rankdata(np.abs(v))
    w_plus = float(ranks[v > 0].sum())
    mean = n * (n + 1) / 4.0
    _, tie_counts = np.unique(np.abs(v), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float((tie_counts**3 - tie_counts).sum()) / 48.0
    z = (w_plus - mean) / np.sqrt(var) if var > 0 else float("nan")
    ties = bool((tie_counts > 1).any())
    if n <= WILCOXON_EXACT_MAX and not ties:
        counts = _signrank_counts(n)
        total = counts.sum()
        w = round(w_plus)
        lower = counts[: w + 1].sum() / total
        upper = counts[w:].sum() / total
        return w_plus, float(z), float(min(1.0, 2.0 * min(lower, upper))), True, n
    return w_plus, float(z), _p_normal(z) if np.isfinite(z) else float("nan"), False, n


# --------------------------------------------------------------------------- tests


def _t_cs(p: _Panel) -> TestResult:
    name = "t_cs"
    if p.n < 2:
        return _not_computed(name, p.n, "needs at least 2 securities")
    sd = float(p.car.std(ddof=1))
    if not sd > 0:
        return _not_computed(name, p.n, "zero cross-sectional variance of the CARs")
    t = np.sqrt(p.n) * float(p.car.mean()) / sd
    return _result(name, t, _p_t(t, p.n - 1), p.n, df=p.n - 1)


def _bw_cda(p: _Panel) -> TestResult:
    name = "bw_cda"
    if p.n < 1:
        return _not_computed(name, 0, "no security has an abnormal return on every day")
    port = _portfolio_residuals(p)
    if len(port) < 2:
        return _not_computed(name, p.n, "fewer than 2 estimation-window days")
    s = float(port.std(ddof=1))
    if not s > 0:
        return _not_computed(name, p.n, "zero variance of the estimation-window portfolio")
    t = float(p.car.mean()) / (np.sqrt(p.length) * s)
    df = len(port) - 1
    return _result(name, t, _p_t(t, df), p.n, df=df)


def _patell_z(p: _Panel, scar: FloatArray) -> tuple[float, str]:
    if np.any(p.dof <= 2):
        return float("nan"), "needs more than k + 2 estimation-window returns per security"
    return float(scar.sum() / np.sqrt((p.dof / (p.dof - 2.0)).sum())), ""


def _patell(p: _Panel) -> TestResult:
    name = "patell"
    if p.n < 1:
        return _not_computed(name, 0, "no security has an abnormal return on every day")
    scar, why = _scar(p)
    if why:
        return _not_computed(name, p.n, why)
    z, why = _patell_z(p, scar)
    if why:
        return _not_computed(name, p.n, why)
    return _result(name, z, _p_normal(z), p.n)


def _bmp_t(p: _Panel, scar: FloatArray) -> tuple[float, str]:
    if p.n < 2:
        return float("nan"), "needs at least 2 securities"
    sd = float(scar.std(ddof=1))
    if not sd > 0:
        return float("nan"), "zero cross-sectional variance of the SCARs"
    return float(np.sqrt(p.n) * scar.mean() / sd), ""


def _bmp(p: _Panel) -> TestResult:
    name = "bmp"
    scar, why = _scar(p)
    t, why2 = (float("nan"), why) if why else _bmp_t(p, scar)
    if why2:
        return _not_computed(name, p.n, why2)
    return _result(name, t, _p_t(t, p.n - 1), p.n, df=p.n - 1)


def _rbar(p: _Panel) -> tuple[float, str]:
    r = mean_pairwise_correlation(p.est)
    if r is None:
        return float("nan"), "no pair of securities has 3 common estimation-window residuals"
    if not (1.0 + (p.n - 1) * r > 0 and r < 1):
        return float("nan"), f"mean residual correlation {r:.4f} gives no valid adjustment"
    return r, ""


def _kp_bmp(p: _Panel) -> TestResult:
    name = "kp_bmp"
    scar, why = _scar(p)
    t, why = (float("nan"), why) if why else _bmp_t(p, scar)
    if why:
        return _not_computed(name, p.n, why)
    r, why = _rbar(p)
    if why:
        return _not_computed(name, p.n, why)
    ta = t * kp_factor(p.n, r)
    return _result(name, ta, _p_t(ta, p.n - 1), p.n, df=p.n - 1)


def _kp_patell(p: _Panel) -> TestResult:
    name = "kp_patell"
    if p.n < 2:
        return _not_computed(name, p.n, "needs at least 2 securities")
    scar, why = _scar(p)
    z, why = (float("nan"), why) if why else _patell_z(p, scar)
    if why:
        return _not_computed(name, p.n, why)
    r, why = _rbar(p)
    if why:
        return _not_computed(name, p.n, why)
    za = z / np.sqrt(1.0 + (p.n - 1) * r)
    return _result(name, za, _p_normal(za), p.n)


def _rank_panel(p: _Panel) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Rank deviations K_it - (T_i + 1)/2 over each security's E and event-window ARs.

    Returns (days, deviations days x securities, T_i).
    """
    days_l: list[FloatArray] = []
    vals_l: list[FloatArray] = []
    for f in p.fits:
        d = np.concatenate([f.est_rel_day, f.ev_rel_day]).astype(float)
        v = np.concatenate([f.est_resid, f.ev_ar]).astype(float)
        d, first = np.unique(d[::-1], return_index=True)  # event window wins on overlap
        days_l.append(d)
        vals_l.append(v[::-1][first])
    days, x = _align(days_l, vals_l)
    ranks = stats.rankdata(x, axis=0, nan_policy="omit")
    t_i = np.isfinite(x).sum(axis=0).astype(float)
    dev: FloatArray = ranks - (t_i + 1.0) / 2.0
    return days, dev, t_i


def _corrado_parts(p: _Panel) -> tuple[FloatArray, float, str]:
    """Kbar_t on the window's days and S(K)."""
    days, dev, _ = _rank_panel(p)
    n_t = np.isfinite(dev).sum(axis=1)
    have = n_t > 0
    kbar = np.full(len(days), np.nan)
    kbar[have] = np.nansum(dev[have], axis=1) / n_t[have]
    s = float(np.sqrt(np.mean(kbar[have] ** 2)))
    win = kbar[np.searchsorted(days, p.rel_day)]
    if not s > 0:
        return win, s, "zero variance of the mean ranks"
    return win, s, ""


def _corrado(p: _Panel) -> TestResult:
    name = "corrado"
    if p.length != 1:
        return _not_computed(name, p.n, "one-day test: see corrado_cowan for a window")
    if p.n < 1:
        return _not_computed(name, 0, "no security has an abnormal return on every day")
    win, s, why = p.corrado
    if why:
        return _not_computed(name, p.n, why)
    z = float(win[0]) / s
    return _result(name, z, _p_normal(z), p.n)


def _corrado_cowan(p: _Panel) -> TestResult:
    name = "corrado_cowan"
    if p.n < 1:
        return _not_computed(name, 0, "no security has an abnormal return on every day")
    win, s, why = p.corrado
    if why:
        return _not_computed(name, p.n, why)
    z = float(win.sum()) / (np.sqrt(p.length) * s)
    return _result(name, z, _p_normal(z), p.n)


def _grank(p: _Panel) -> TestResult:
    name = "grank"
    if p.n < 2:
        return _not_computed(name, p.n, "needs at least 2 securities")
    scar, why = _scar(p)
    if why:
        return _not_computed(name, p.n, why)
    s_scar = float(scar.std(ddof=1))
    if not s_scar > 0:
        return _not_computed(name, p.n, "zero cross-sectional variance of the SCARs")
    sigma = np.array([f.sigma for f in p.fits])
    if not np.all(sigma > 0):
        return _not_computed(name, p.n, "zero residual variance")
    # generalized SARs: estimation-window SARs, then the re-standardized SCAR as one more day
    gsar = np.vstack([p.est / sigma, (scar / s_scar)[None, :]])
    have_col = np.isfinite(gsar)
    t_i = have_col.sum(axis=0).astype(float)
    u = stats.rankdata(gsar, axis=0, nan_policy="omit") / (t_i + 1.0) - 0.5
    n_t = have_col.sum(axis=1)
    rows = n_t > 0
    ubar = np.nansum(u[rows], axis=1) / n_t[rows]
    big_t = int(rows.sum())
    s_u = float(np.sqrt(np.sum(n_t[rows] / p.n * ubar**2) / big_t))
    if not s_u > 0 or big_t < 3:
        return _not_computed(name, p.n, "zero variance of the mean ranks")
    z = float(ubar[-1]) / s_u
    den = big_t - 1.0 - z * z
    if not den > 0:
        return _not_computed(name, p.n, "degenerate GRANK statistic (|Z| too large for T)")
    t = z * np.sqrt((big_t - 2.0) / den)
    return _result(name, t, _p_t(t, big_t - 2), p.n, df=big_t - 2)


def _sign(p: _Panel) -> TestResult:
    name = "sign"
    if p.n < 1:
        return _not_computed(name, 0, "no security has an abnormal return on every day")
    pos = int((p.car > 0).sum())
    z = (pos - p.n / 2.0) / (np.sqrt(p.n) / 2.0)
    return _result(name, z, _p_normal(z), p.n)


def _gsign_phat(p: _Panel) -> float:
    shares = [float(np.mean(r[np.isfinite(r)] > 0)) for r in p.est.T if np.isfinite(r).any()]
    return float(np.mean(shares)) if shares else float("nan")


def _gsign(p: _Panel) -> TestResult:
    name = "gsign"
    if p.n < 1:
        return _not_computed(name, 0, "no security has an abnormal return on every day")
    ph = _gsign_phat(p)
    if not 0 < ph < 1:
        return _not_computed(name, p.n, "the share of positive estimation-window residuals "
                                        "is 0 or 1")
    w = int((p.car > 0).sum())
    z = (w - p.n * ph) / np.sqrt(p.n * ph * (1 - ph))
    return _result(name, z, _p_normal(z), p.n)


def _wilcoxon(p: _Panel) -> TestResult:
    name = "wilcoxon"
    _, z, pv, exact, nz = wilcoxon_signed_rank(p.car)
    dist = "exact" if exact else "normal"
    if nz < 1:
        return _not_computed(name, p.n, "no non-zero CAR", distribution=dist)
    if not np.isfinite(z):
        return _not_computed(name, p.n, "zero variance of the signed-rank statistic",
                             distribution=dist)
    return _result(name, z, pv, p.n, distribution=dist)


def _skew_t(p: _Panel) -> TestResult:
    name = "skew_t"
    n = p.n
    if n < 3:
        return _not_computed(name, n, "needs at least 3 securities")
    sd = float(p.car.std(ddof=1))
    if not sd > 0:
        return _not_computed(name, n, "zero cross-sectional variance of the CARs")
    s = float(p.car.mean()) / sd
    g = n / ((n - 1) * (n - 2)) * float((((p.car - p.car.mean()) / sd) ** 3).sum())
    stat = np.sqrt(n) * (s + g * s * s / 3.0 + g / (6.0 * n))
    # t(N - 1), not N(0, 1): with g = 0 the statistic is the cross-sectional t (docs/tests.md)
    return _result(name, stat, _p_t(stat, n - 1), n, df=n - 1)


def _bootstrap(p: _Panel, rng_seed: int, n_boot: int) -> TestResult:
    name = "bootstrap_caar"
    if p.n < 1:
        return _not_computed(name, 0, "no security has an abnormal return on every day")
    if n_boot < 1:
        return _not_computed(name, p.n, "n_boot must be at least 1")
    port = _portfolio_residuals(p)
    if len(port) < 2:
        return _not_computed(name, p.n, "fewer than 2 estimation-window days")
    port = port - port.mean()
    if not np.any(port != 0):
        return _not_computed(name, p.n, "zero variance of the estimation-window portfolio")
    rng = np.random.default_rng(rng_seed)
    draws = rng.integers(0, len(port), size=(n_boot, p.length))
    sims = port[draws].sum(axis=1)
    caar = float(p.car.mean())
    extreme = int(np.count_nonzero(np.abs(sims) >= abs(caar)))
    pv = (1.0 + extreme) / (n_boot + 1.0)
    sd = float(sims.std(ddof=1)) if n_boot > 1 else 0.0
    if not sd > 0:
        return _not_computed(name, p.n, "zero variance of the bootstrap distribution")
    return _result(name, caar / sd, pv, p.n)


def _single(p: _Panel) -> list[TestResult]:
    if p.n != 1:
        why = (f"single-security test, {p.n} securities: use single_tests(fit, window) "
               "for each")
        return [_not_computed("t_single", p.n, why), _not_computed("sq_single", p.n, why)]
    f = p.fits[0]
    out: list[TestResult] = []
    if p.var_car[0] > 0 and f.df > 0:
        t = float(p.car[0] / np.sqrt(p.var_car[0]))
        out.append(_result("t_single", t, _p_t(t, f.df), 1, df=f.df))
    else:
        out.append(_not_computed("t_single", 1, "zero variance of the CAR"))
    sums = moving_sums(f.est_resid, p.length)
    if sums.size == 0:
        out.append(_not_computed("sq_single", 1, f"no {p.length}-day sum of estimation-window "
                                                 "residuals without a gap"))
    else:
        v = float(p.car[0])
        one = min(float(np.mean(sums <= v)), float(np.mean(sums >= v)))
        out.append(_result("sq_single", v, min(1.0, 2.0 * one), 1))
    return out


def single_tests(fit: Fit, window: tuple[int, int]) -> list[TestResult]:
    """The single-security tests of one fit: SCAR t and sample quantile (SQ).

    Parameters
    ----------
    fit
        A fit from :func:`impact.estimation.fit`.
    window
        ``(start, end)`` in days relative to day 0.

    Returns
    -------
    list of TestResult
        ``t_single``: ``SCAR = CAR / sqrt(1' V 1)`` against ``t(L1 - k)``.
        ``sq_single``: statistic the CAR, p = ``min(1, 2 min(share of the
        estimation window's L-day residual sums <= CAR, share >= CAR))``
        (Gelbach, Helland and Klick 2013; 0 when more extreme than every sum).
    """
    p = _panel([fit], window)
    if p.n == 0:
        why = p.dropped[0][1]
        return [_not_computed("t_single", 0, why), _not_computed("sq_single", 0, why)]
    return _single(p)


_PANEL_TESTS: dict[str, Callable[[_Panel], TestResult]] = {
    "t_cs": _t_cs,
    "bw_cda": _bw_cda,
    "patell": _patell,
    "bmp": _bmp,
    "kp_bmp": _kp_bmp,
    "kp_patell": _kp_patell,
    "corrado": _corrado,
    "corrado_cowan": _corrado_cowan,
    "grank": _grank,
    "sign": _sign,
    "gsign": _gsign,
    "wilcoxon": _wilcoxon,
    "skew_t": _skew_t,
}


def run_tests(fits: Sequence[Fit], window: tuple[int, int], *, rng_seed: int = 20240127,
              n_boot: int = 9999, tests: Sequence[str] | None = None) -> list[TestResult]:
    """Run the event-study test battery on a window.

    Parameters
    ----------
    fits
        One fit per security, from :func:`impact.estimation.fit`; for one event
        or several (series are aligned on the relative day).
    window
        ``(start, end)`` in days relative to day 0, both ends included.
    rng_seed
        Seed of the bootstrap (the same seed gives the same p-value).
    n_boot
        Number of bootstrap samples.
    tests
        Names of the tests to run (default: all of :data:`TEST_NAMES`).

    Returns
    -------
    list of TestResult
        In the order of :data:`TEST_NAMES` (or of ``tests``). Tests that cannot
        be computed have status ``"not computed"`` and a reason.

    Raises
    ------
    ValueError
        If the window ends before it starts or a test name is unknown.
    """
    names = list(TEST_NAMES if tests is None else tests)
    unknown = [t for t in names if t not in _SPEC]
    if unknown:
        raise ValueError(f"unknown test(s) {unknown}; choose from {list(TEST_NAMES)}")
    p = _panel(fits, window)
    single = _single(p) if {"t_single", "sq_single"} & set(names) else []
    out: list[TestResult] = []
    for name in names:
        if p.n == 0 and name != "bootstrap_caar" and name not in ("t_single", "sq_single"):
            why = ("no securities" if p.n_input == 0
                   else "no security has an abnormal return on every day of the window")
            out.append(_not_computed(name, 0, why))
        elif name in _PANEL_TESTS:
            out.append(_PANEL_TESTS[name](p))
        elif name == "bootstrap_caar":
            out.append(_bootstrap(p, rng_seed, n_boot))
        else:
            out.append(next(r for r in single if r.name == name))
    return out


# --------------------------------------------------------------------------- estudy2


def _estudy2_day_arrays(p: _Panel, day: int) -> tuple[FloatArray, FloatArray]:
    """ARs on one day and their FEC factor 1 + 1/L1 + (Rm - Rbar_m)^2 / S_mm."""
    j = int(np.searchsorted(p.rel_day, day))
    ar = p.ar[:, j]
    factor = p.ar_var[:, j] / np.array([f.sigma**2 for f in p.fits])
    return ar, factor


def estudy2_daily(fits: Sequence[Fit], day: int) -> dict[str, float]:
    """Statistics of R's estudy2 0.10.0 for one event-window day (compatibility).

    Reproduces estudy2's ``parametric_tests`` and ``nonparametric_tests`` as
    they are coded there, for checking this module against its golden numbers.
    impact reports the definitions of ``methods.md`` instead (see
    ``docs/tests.md``); the differences are noted per key.

    Parameters
    ----------
    fits
        One fit per security, all with the same estimation and event windows.
    day
        The relative day.

    Returns
    -------
    dict
        ``mean`` (AAR); ``bw_1980`` (AAR over sqrt(sum_i var_i) / N, var_i the
        n-1 variance of i's estimation ARs); ``bw_1985`` (AAR over the n-1 sd of
        the estimation-window AARs); ``t_test``; ``pt`` (Patell: SARs scaled by
        the n-1 sd of the estimation ARs, i.e. ``sqrt((L1-1)/(L1-2))`` times
        impact's, with the one-day FEC, over ``sqrt(sum (L1-2)/(L1-4))``);
        ``bh`` (BMP on those SARs); ``lmb`` (Lamb: AAR over the n-1 sd of the
        estimation AARs times the FEC factor); ``sign``; ``gsign``
        (p = share of positive estimation ARs pooled over securities);
        ``csign`` (Corrado-Zivney sign); ``rank`` (Corrado); ``mrank``
        (modified rank); ``wlcx`` (W+, the sum of positive ranks).
        Only the market model has ``pt``, ``bh`` and ``lmb`` in estudy2.
    """
    # estudy2 ranks each security's estimation window plus its whole event window
    full = _panel(fits, (int(min(f.ev_rel_day.min() for f in fits)),
                         int(max(f.ev_rel_day.max() for f in fits))))
    n = full.n
    ar, factor = _estudy2_day_arrays(full, day)
    out: dict[str, float] = {"mean": float(ar.mean())}
    est = full.est
    var_i = np.nanvar(est, axis=0, ddof=1)
    out["bw_1980"] = float(ar.mean() / (np.sqrt(var_i.sum()) / n))
    port_sd = float(_portfolio_residuals(full).std(ddof=1))
    out["bw_1985"] = float(ar.mean() / port_sd)
    out["t_test"] = float(np.sqrt(n) * ar.mean() / ar.std(ddof=1))
    sar = ar / np.sqrt(var_i) / np.sqrt(factor)
    delta = np.array([f.nobs for f in full.fits], dtype=float)
    out["pt"] = float(sar.sum() / np.sqrt(((delta - 2) / (delta - 4)).sum()))
    out["bh"] = float(np.sqrt(n) * sar.mean() / sar.std(ddof=1))
    out["lmb"] = float(ar.mean() / (port_sd * np.sqrt(factor[0])))
    pos = float((ar > 0).sum())
    out["sign"] = float((pos - 0.5 * n) / np.sqrt(0.25 * n))
    binary = np.where(np.isfinite(est), est > 0, np.nan)
    ph = float(np.nanmean(binary))
    out["gsign"] = float((pos - n * ph) / np.sqrt(n * ph * (1 - ph)))

    days, dev, t_i = _rank_panel(full)
    have = np.isfinite(dev)
    n_t = have.sum(axis=1).astype(float)
    rows = n_t > 0
    j = int(np.searchsorted(days, day))
    mean_t = float(t_i.mean())
    # Corrado rank: mean deviation per day, S over all days, T = mean T_i
    kbar = np.nansum(dev, axis=1) / np.where(rows, n_t, np.nan)
    sd_k = np.sqrt(np.nansum(kbar[rows] ** 2) / mean_t)
    out["rank"] = float(kbar[j] / sd_k)
    # modified rank: U = K / (T_i + 1) - 1/2, sums scaled by 1/sqrt(N_t)
    u = (dev + (t_i + 1.0) / 2.0) / (t_i + 1.0) - 0.5
    usum = np.nansum(u, axis=1)
    sd_u = np.sqrt(np.sum((usum[rows] / np.sqrt(n_t[rows])) ** 2) / mean_t)
    out["mrank"] = float(usum[j] / np.sqrt(n_t[j]) / sd_u)
    # Corrado-Zivney sign: G = sign(AR - median of i's E and W ARs)
    raw_days, raw = _align(
        [np.concatenate([f.est_rel_day, f.ev_rel_day]) for f in full.fits],
        [np.concatenate([f.est_resid, f.ev_ar]) for f in full.fits])
    g = np.sign(raw - np.nanmedian(raw, axis=0))
    gsum = np.nansum(g, axis=1)
    gn = np.isfinite(g).sum(axis=1).astype(float)
    grows = gn > 0
    sd_g = np.sqrt(np.sum((gsum[grows] / np.sqrt(gn[grows])) ** 2) / mean_t)
    jr = int(np.searchsorted(raw_days, day))
    out["csign"] = float(gsum[jr] / np.sqrt(gn[jr]) / sd_g)
    out["wlcx"] = wilcoxon_signed_rank(ar)[0]
    return out


def estudy2_car(fits: Sequence[Fit], window: tuple[int, int]) -> dict[str, float]:
    """estudy2 0.10.0's CAR tests over a window (compatibility; all days complete).

    Parameters
    ----------
    fits
        One fit per security, all with the same estimation and event windows.
    window
        ``(start, end)`` in relative days.

    Returns
    -------
    dict
        ``car_mean`` (estudy2 reports the *mean* of the daily AARs, not their
        sum); ``car_brown_warner_1985`` and ``car_lamb`` (the sum of the daily
        statistics over sqrt(L): for Brown-Warner this is CAAR / (sqrt(L) S),
        impact's ``bw_cda``); ``car_rank_test`` (Cowan's window form of the
        Corrado rank test, ranks over the estimation window and the CAR window).
    """
    a, b = window
    daily = [estudy2_daily(fits, d) for d in range(a, b + 1)]
    length = b - a + 1
    out = {
        "car_mean": float(np.mean([d["mean"] for d in daily])),
        "car_brown_warner_1985": float(sum(d["bw_1985"] for d in daily) / np.sqrt(length)),
        "car_lamb": float(sum(d["lmb"] for d in daily) / np.sqrt(length)),
    }
    # car_rank_test ranks the estimation window plus the CAR window only
    ranked: list[Fit] = []
    for f in fits:
        keep = (f.ev_rel_day >= a) & (f.ev_rel_day <= b)
        ranked.append(_restrict(f, keep))
    p = _panel(ranked, window)
    win, s, _ = _corrado_parts(p)
    out["car_rank_test"] = float(win.sum() / (np.sqrt(length) * s))
    return out


def _restrict(f: Fit, keep: npt.NDArray[np.bool_]) -> Fit:
    """The fit with its event window cut to the days in ``keep``."""
    idx = np.flatnonzero(keep)
    return replace(f, ev_rel_day=f.ev_rel_day[idx],
                   ev_dates=tuple(f.ev_dates[i] for i in idx), ev_ret=f.ev_ret[idx],
                   ev_mkt=f.ev_mkt[idx], ev_expected=f.ev_expected[idx], ev_ar=f.ev_ar[idx],
                   ev_cov=f.ev_cov[np.ix_(idx, idx)])
