"""Event studies as regressions: event dummies (first stage) and CARs on characteristics.

Pure functions (numpy, pandas, statsmodels): no I/O except the small CSV loader
:func:`read_security_attributes`. The definitions are those of
``../shared/docs/methods.md`` and ``docs/regressions.md``.

Event-dummy regression
    The market model with one dummy per event-window day,
    ``R_t = a + b R_mt + sum_d g_d D_dt + e_t``, fitted by OLS over the
    estimation window E and the event window W together. Each dummy absorbs its
    own day, so ``a, b`` are the estimation-window OLS estimates, ``g_d`` is the
    day's abnormal return, the event rows have zero residuals, and the residual
    variance ``SSR / (T - K) = SSR_E / (L1 - 2)`` is exactly the market model's
    ``s^2`` (the ``L`` dummies use up the ``L`` event rows). The OLS covariance
    of the dummies is ``s^2 [I + X_W (X_E'X_E)^-1 X_W']``, the
    forecast-error-corrected covariance of :func:`impact.estimation.fit`, so the
    Wald statistic of the summed dummies is the square of ``CAR / se`` from
    :func:`impact.estimation.car`, exactly.

    Three forms: one security (:func:`dummy_regression`), the equal-weighted
    portfolio of several securities sharing day 0 (:func:`portfolio_dummy_regression`)
    and the stacked system of their equations with the cross-equation residual
    covariance (:func:`sur_dummy_regression`).

    HAC (Newey-West) covariance: a sandwich estimator cannot see the variance of
    an event-day error, because a one-observation dummy fits its row exactly
    (residual 0, leverage 1). statsmodels' HAC covariance of a dummy is therefore
    only the parameter-error part ``X_W V_HAC(a, b) X_W'``. ``cov_type="HAC"``
    adds the missing term, the Bartlett-weighted autocovariances of the
    estimation-window residuals laid out over the event days (see
    :func:`_event_error_cov` and ``docs/regressions.md``).

Cross-sectional regression
    :func:`cross_sectional_regression` fits CARs on characteristics with a
    formula and heteroskedasticity-robust (HC1) standard errors, and flags small
    samples as descriptive only.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.sandwich_covariance import S_hac_simple

from impact.errors import InputError
from impact.estimation import EventSeries

Window = tuple[int, int]

#: Covariance estimators of the event-dummy regressions.
DUMMY_COV_TYPES = ("nonrobust", "HAC")
#: A cross-sectional regression is descriptive only below this many securities...
DESCRIPTIVE_MIN_NOBS = 10
#: ... or below this many residual degrees of freedom.
DESCRIPTIVE_MIN_DF_RESID = 5

# Names a formula may use that are not columns (patsy / formulaic helpers).
_FORMULA_NAMES = frozenset({
    "C", "I", "Q", "np", "numpy", "center", "standardize", "scale", "Treatment", "Sum",
    "Diff", "Poly", "Helmert", "bs", "cr", "cc", "te", "log", "exp", "sqrt", "abs",
    "True", "False", "None", "reference", "levels",
})


# ---------------------------------------------------------------------------
# Small test-statistic and results objects
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class WaldTest:
    """A Wald test of linear restrictions (like linearmodels' ``WaldTestStatistic``)."""

    #: The statistic: F = W / q when ``df_denom`` is set, the chi-squared W otherwise.
    stat: float
    #: Number of restrictions q.
    df: int
    #: Denominator degrees of freedom of the F distribution; None for chi2(q).
    df_denom: int | None
    #: p-value (upper tail).
    pval: float
    #: The null hypothesis, in words.
    null: str

    @property
    def dist_name(self) -> str:
        """The null distribution, e.g. ``F(1, 238)`` or ``chi2(3)``."""
        if self.df_denom is None:
            return f"chi2({self.df})"
        return f"F({self.df}, {self.df_denom})"

    def __str__(self) -> str:
        return f"{self.dist_name} = {self.stat:.4f}, p = {self.pval:.4g} (H0: {self.null})"


@dataclass(frozen=True)
class DummyCar:
    """The CAR over one window as a sum of event dummies, with its Wald test."""

    window: Window
    #: Number of days in the window.
    n_days: int
    #: ``ok``, or ``incomplete`` when a day of the window has no dummy.
    status: str
    reason: str
    #: The CAR (one security, the portfolio) or the mean CAR over securities (SUR).
    car: float = float("nan")
    #: Its standard error under the results' covariance.
    se: float = float("nan")
    #: Wald test of CAR = 0 (SUR: of the sum over securities of their CARs = 0).
    wald: WaldTest | None = None
    #: SUR only: joint Wald test that every security's CAR is 0.
    joint: WaldTest | None = None

    @property
    def t(self) -> float:
        """CAR / se."""
        return self.car / self.se if self.se > 0 else float("nan")


@dataclass(frozen=True, eq=False)  # frames inside: compare fields, not objects
class EventDummyResults:
    """An event-dummy regression: per-day ARs, CAR Wald tests and the inputs.

    Frames are indexed by relative day (``rel_day``) and have one column per
    equation (the ticker, or ``portfolio``).
    """

    #: ``single``, ``portfolio`` or ``sur``.
    form: str
    #: Equation names: tickers, or ``("portfolio",)``.
    equations: tuple[str, ...]
    #: Tickers that make up the equations (the portfolio's members for ``portfolio``).
    tickers: tuple[str, ...]
    estimation: Window
    event: Window
    #: ``nonrobust`` or ``HAC``.
    cov_type: str
    #: HAC lags (None for ``nonrobust``).
    maxlags: int | None
    #: True: t and F distributions with ``df_resid``; False: normal and chi-squared.
    use_t: bool
    #: Rows per equation (estimation + event rows used).
    nobs: int
    nobs_estimation: int
    nobs_event: int
    #: Residual degrees of freedom per equation, nobs - (2 + nobs_event) = L1 - 2.
    df_resid: int
    #: Dummy coefficients: the abnormal returns (NaN on a day with no usable row).
    params: pd.DataFrame
    std_errors: pd.DataFrame
    tstats: pd.DataFrame
    pvalues: pd.DataFrame
    #: Market-model intercept, slope and residual standard deviation per equation.
    alpha: pd.Series
    beta: pd.Series
    sigma: pd.Series
    #: Cross-equation residual covariance, E'E / df_resid (1 x 1 for one equation).
    resid_cov: pd.DataFrame
    #: One entry per requested CAR window.
    cars: tuple[DummyCar, ...]
    #: Per-security (per-equation) CARs: window, equation, car, se, t, p.
    equation_cars: pd.DataFrame
    #: What was dropped or assumed, in words.
    notes: tuple[str, ...] = ()
    #: Covariance of the dummies, equation-major in ``params.index`` order (days
    #: with a dummy only).
    ar_cov: np.ndarray = field(default_factory=lambda: np.empty((0, 0)), repr=False)

    def car(self, window: Window) -> DummyCar:
        """The :class:`DummyCar` of a requested window."""
        for c in self.cars:
            if c.window == tuple(window):
                return c
        raise KeyError(f"window {list(window)} was not requested; have "
                       f"{[list(c.window) for c in self.cars]}")

    def summary(self) -> str:
        """A short text summary: the model, the per-day ARs and the CAR tests."""
        what = {"single": "one security", "portfolio": "equal-weighted portfolio",
                "sur": "system of equations (SUR)"}[self.form]
        cov = self.cov_type if self.maxlags is None else f"{self.cov_type}, maxlags={self.maxlags}"
        lines = [
            f"Event-dummy regression (market model), {what}: {', '.join(self.tickers)}",
            f"estimation {list(self.estimation)}, event {list(self.event)}; nobs {self.nobs} "
            f"per equation ({self.nobs_estimation} estimation + {self.nobs_event} event), "
            f"df_resid {self.df_resid}; cov {cov}",
        ]
        if len(self.equations) == 1:
            eq = self.equations[0]
            lines.append(f"alpha {self.alpha[eq]:.6f}  beta {self.beta[eq]:.4f}  "
                         f"sigma {self.sigma[eq]:.6f}")
            lines.append(f"{'day':>5} {'AR':>10} {'se':>10} {'t':>8} {'p':>8}")
            table = np.column_stack([fr[eq].to_numpy(dtype=float) for fr in (
                self.params, self.std_errors, self.tstats, self.pvalues)])
            for d, (ar, se, t, p) in zip(self.params.index, table, strict=True):
                lines.append(f"{int(d):>5d} {ar:>10.5f} {se:>10.5f} {t:>8.3f} {p:>8.4f}")
        else:
            lines.append(f"{'window':>10} {'ticker':>12} {'CAR':>10} {'se':>10} {'t':>8}")
            for row in self.equation_cars.itertuples(index=False):
                lines.append(f"{row.window:>10} {row.equation:>12} {row.car:>10.5f} "
                             f"{row.se:>10.5f} {row.t:>8.3f}")
        label = "mean CAR" if self.form == "sur" else "CAR"
        lines.append(f"{'window':>10} {label:>10} {'se':>10}  test")
        for c in self.cars:
            w = f"[{c.window[0]}, {c.window[1]}]"
            if c.status != "ok" or c.wald is None:
                lines.append(f"{w:>10} {'':>10} {'':>10}  {c.reason}")
                continue
            lines.append(f"{w:>10} {c.car:>10.5f} {c.se:>10.5f}  {c.wald.dist_name} = "
                         f"{c.wald.stat:.3f}, p = {c.wald.pval:.4g}")
            if c.joint is not None:
                lines.append(f"{'':>10} {'':>10} {'':>10}  all CAR_i = 0: "
                             f"{c.joint.dist_name} = {c.joint.stat:.3f}, p = {c.joint.pval:.4g}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# ---------------------------------------------------------------------------
# Data preparation
# ---------------------------------------------------------------------------

def _check_windows(estimation: Window, event: Window) -> None:
    for name, w in (("estimation", estimation), ("event", event)):
        if len(w) != 2 or w[0] > w[1]:
            raise ValueError(f"the {name} window must be [start, end] with start <= end, "
                             f"got {list(w)}")
    if estimation[1] >= event[0] and event[1] >= estimation[0]:
        raise ValueError(f"the estimation window {list(estimation)} overlaps the event window "
                         f"{list(event)}: the dummies would absorb estimation days")


def _usable_rows(series: EventSeries, estimation: Window, event: Window) -> np.ndarray:
    """Rows of the regression: usable estimation rows (as in ``fit``) and event rows."""
    rel = series.rel_day
    in_e = (rel >= estimation[0]) & (rel <= estimation[1])
    in_w = (rel >= event[0]) & (rel <= event[1])
    ok = np.isfinite(series.ret) & np.isfinite(series.mkt)
    use: np.ndarray = ((in_e & ~series.excluded) | in_w) & ok
    return use


@dataclass(frozen=True)
class _Panel:
    """Balanced rows shared by every equation, in time order."""

    rel: np.ndarray
    #: T x N returns and benchmark returns.
    ret: np.ndarray
    mkt: np.ndarray
    is_event: np.ndarray
    notes: tuple[str, ...]


def _panel(series: Mapping[str, EventSeries], estimation: Window, event: Window) -> _Panel:
    """Align several securities on the dates where all have a usable row."""
    if not series:
        raise ValueError("no securities given")
    frames = []
    for tk, s in series.items():
        use = _usable_rows(s, estimation, event)
        frames.append(pd.DataFrame(
            {f"rel_{tk}": s.rel_day[use], f"ret_{tk}": s.ret[use], f"mkt_{tk}": s.mkt[use]},
            index=pd.Index([s.dates[i] for i in np.flatnonzero(use)], name="date")))
    joined = pd.concat(frames, axis=1, join="inner").sort_index()
    tickers = list(series)
    rel_all = joined[[f"rel_{tk}" for tk in tickers]].to_numpy()
    bad = np.flatnonzero((rel_all != rel_all[:, :1]).any(axis=1))
    if bad.size:
        d = joined.index[bad[0]]
        days = {tk: int(r) for tk, r in zip(tickers, rel_all[bad[0]], strict=True)}
        raise ValueError(
            f"the securities do not share day 0: on {d} the relative days are {days}; "
            "a joint regression needs securities on one calendar (group them by exchange)")
    rel = rel_all[:, 0].astype(int)
    notes = []
    for tk, fr in zip(tickers, frames, strict=True):
        lost = len(fr) - len(joined)
        if lost:
            notes.append(f"{tk}: {lost} of its usable rows dropped because another security "
                         "has no usable return on those dates (balanced panel)")
    return _Panel(
        rel=rel,
        ret=joined[[f"ret_{tk}" for tk in tickers]].to_numpy(dtype=float),
        mkt=joined[[f"mkt_{tk}" for tk in tickers]].to_numpy(dtype=float),
        is_event=(rel >= event[0]) & (rel <= event[1]),
        notes=tuple(notes),
    )


def _design(rel: np.ndarray, mkt: np.ndarray, is_event: np.ndarray) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """Regressors ``[1, R_m, D_d ...]`` and the dummy days (one per event row)."""
    days = rel[is_event]
    dummies = (rel[:, None] == days[None, :]).astype(float)
    z = np.column_stack([np.ones(len(rel)), mkt, dummies])
    return z, days


def _check_estimation(n_est: int, mkt_est: np.ndarray, who: str) -> None:
    if n_est < 4:
        raise ValueError(f"{who}: only {n_est} usable estimation-window returns for 2 parameters")
    if np.ptp(mkt_est) == 0:
        raise ValueError(f"{who}: the benchmark's returns are constant over the estimation window")


def _default_windows(event: Window, car_windows: Iterable[Window] | None) -> tuple[Window, ...]:
    if car_windows is None:
        wins: list[Window] = [(0, 0)] if event[0] <= 0 <= event[1] else []
        wins.append((event[0], event[1]))
    else:
        wins = [(int(a), int(b)) for a, b in car_windows]
    out: list[Window] = []
    for w in wins:
        if w[0] > w[1] or w[0] < event[0] or w[1] > event[1]:
            raise ValueError(f"CAR window {list(w)} is not inside the event window {list(event)}")
        if w not in out:
            out.append(w)
    return tuple(out)


def _resolve_cov(cov_type: str, maxlags: int | None, nobs: int,
                 use_t: bool | None) -> tuple[str, int | None, bool]:
    cov = {"nonrobust": "nonrobust", "hac": "HAC"}.get(cov_type.lower())
    if cov is None:
        raise ValueError(f"cov_type must be one of {DUMMY_COV_TYPES}, got {cov_type!r}")
    if cov == "nonrobust":
        if maxlags is not None:
            raise ValueError("maxlags is for cov_type='HAC'")
        return cov, None, True if use_t is None else use_t
    if maxlags is None:
        # Newey-West's rule, statsmodels' default in S_hac_simple
        maxlags = math.floor(4 * (nobs / 100.0) ** (2.0 / 9.0))
    if maxlags < 0:
        raise ValueError(f"maxlags must be >= 0, got {maxlags}")
    return cov, int(maxlags), False if use_t is None else use_t


# ---------------------------------------------------------------------------
# Covariances
# ---------------------------------------------------------------------------

def _event_error_cov(resid_est: np.ndarray, days: np.ndarray, maxlags: int,
                     df_resid: int) -> np.ndarray:
    """Covariance of the event-day errors implied by the estimation residuals (HAC).

    ``Cov(e_a, e_b) = w(|a - b|) Gamma(a - b)``, with Bartlett weights
    ``w(h) = 1 - h / (maxlags + 1)`` (0 past ``maxlags``) and
    ``Gamma(h) = sum_t e_t e_{t-h}' / df_resid`` over consecutive estimation rows
    (``e_t`` the N-vector of the equations' residuals). At lag 0 this is the
    residual covariance ``E'E / df_resid`` (``s^2`` for one equation). The
    matrix is positive semi-definite (a Schur product of the sample
    autocovariance block-Toeplitz matrix and the Bartlett Toeplitz matrix).

    Parameters
    ----------
    resid_est
        n_E x N residuals of the estimation rows, in time order.
    days
        The dummies' relative days.
    maxlags
        Highest lag with a nonzero weight.
    df_resid
        Divisor of the autocovariances.

    Returns
    -------
    numpy.ndarray
        (N L) x (N L), equation-major (all days of equation 1, then equation 2 ...).
    """
    n_eq = resid_est.shape[1]
    n_days = len(days)
    gammas = [resid_est.T @ resid_est / df_resid]
    for h in range(1, maxlags + 1):
        g = resid_est[h:].T @ resid_est[:-h] / df_resid if h < len(resid_est) else \
            np.zeros((n_eq, n_eq))
        gammas.append(g)
    out = np.zeros((n_eq * n_days, n_eq * n_days))
    for a in range(n_days):
        for b in range(n_days):
            h = int(days[a] - days[b])
            if abs(h) > maxlags:
                continue
            w = 1.0 - abs(h) / (maxlags + 1.0)
            block = gammas[h] if h >= 0 else gammas[-h].T
            out[a::n_days, b::n_days] = w * block
    return out


def _dummy_slots(n_eq: int, k: int, n_days: int) -> np.ndarray:
    """Positions of the dummies in the stacked parameter vector."""
    return np.concatenate([i * k + 2 + np.arange(n_days) for i in range(n_eq)])


def _system_cov(z: list[np.ndarray], resid: np.ndarray, cov_type: str, maxlags: int | None,
                is_event: np.ndarray, days: np.ndarray, df_resid: int) -> np.ndarray:
    """Covariance of equation-by-equation OLS estimates, with cross-equation terms.

    ``Cov(theta_i, theta_j) = A_i M_ij A_j``, ``A_i = (Z_i'Z_i)^-1``, with
    ``M_ij = sigma_ij Z_i'Z_j`` (``nonrobust``: contemporaneous correlation,
    homoskedastic and serially uncorrelated errors) or ``M`` = the Newey-West
    matrix of the stacked scores ``z_it e_it`` (``HAC``). With identical regressors
    ``nonrobust`` is ``Sigma (x) (Z'Z)^-1``, the covariance of SUR (which equals OLS).
    For ``HAC`` the event-day error covariance :func:`_event_error_cov` is added to
    the dummies' block.
    """
    n_eq = len(z)
    k = z[0].shape[1]
    bread = np.zeros((n_eq * k, n_eq * k))
    for i, zi in enumerate(z):
        bread[i * k:(i + 1) * k, i * k:(i + 1) * k] = np.linalg.inv(zi.T @ zi)
    if cov_type == "nonrobust":
        sigma = resid.T @ resid / df_resid
        meat = np.zeros_like(bread)
        for i in range(n_eq):
            for j in range(n_eq):
                meat[i * k:(i + 1) * k, j * k:(j + 1) * k] = sigma[i, j] * (z[i].T @ z[j])
        cov: np.ndarray = bread @ meat @ bread
        return cov
    assert maxlags is not None
    scores = np.column_stack([z[i] * resid[:, [i]] for i in range(n_eq)])
    cov = bread @ S_hac_simple(scores, nlags=maxlags) @ bread
    slots = _dummy_slots(n_eq, k, len(days))
    cov[np.ix_(slots, slots)] += _event_error_cov(resid[~is_event], days, maxlags, df_resid)
    return cov


# ---------------------------------------------------------------------------
# Event-dummy regressions
# ---------------------------------------------------------------------------

def _pvalues(t: np.ndarray, use_t: bool, df: int) -> np.ndarray:
    p: np.ndarray = 2.0 * (stats.t.sf(np.abs(t), df) if use_t else stats.norm.sf(np.abs(t)))
    return p


def _wald_chi2(r: np.ndarray, theta: np.ndarray, cov: np.ndarray) -> float:
    """Wald statistic ``(R theta)' (R V R')^-1 (R theta)`` of ``R theta = 0``."""
    rt = r @ theta
    return float(rt @ np.linalg.solve(r @ cov @ r.T, rt))


def _wald_from_chi2(w: float, q: int, use_t: bool, df: int, null: str) -> WaldTest:
    if use_t:
        f = w / q
        return WaldTest(stat=f, df=q, df_denom=df, pval=float(stats.f.sf(f, q, df)), null=null)
    return WaldTest(stat=w, df=q, df_denom=None, pval=float(stats.chi2.sf(w, q)), null=null)


def _frame(values: np.ndarray, all_days: np.ndarray, days: np.ndarray,
           equations: Sequence[str]) -> pd.DataFrame:
    """Days x equations, NaN on event days with no dummy."""
    out = pd.DataFrame(np.nan, index=pd.Index(all_days, name="rel_day"),
                       columns=list(equations))
    out.loc[days, :] = values.reshape(len(equations), len(days)).T
    return out


def _fit_system(
    tickers: tuple[str, ...], equations: tuple[str, ...], form: str, rel: np.ndarray,
    y: np.ndarray, mkt: np.ndarray, is_event: np.ndarray, estimation: Window, event: Window,
    car_windows: Iterable[Window] | None, cov_type: str, maxlags: int | None,
    use_t: bool | None, notes: Sequence[str],
) -> EventDummyResults:
    """Fit the equations (columns of ``y`` and ``mkt``) on common rows and test the CARs."""
    n_eq = y.shape[1]
    wins = _default_windows(event, car_windows)
    n_est = int((~is_event).sum())
    for i, eq in enumerate(equations):
        _check_estimation(n_est, mkt[~is_event, i], eq)
    z = []
    for i in range(n_eq):
        zi, days = _design(rel, mkt[:, i], is_event)
        z.append(zi)
    n_obs, k = z[0].shape
    df_resid = n_obs - k
    cov_type, maxlags, use_t_ = _resolve_cov(cov_type, maxlags, n_obs, use_t)
    all_days = np.arange(event[0], event[1] + 1)
    all_days = all_days[all_days <= rel.max()] if rel.max() < event[1] else all_days
    missing = sorted(set(all_days.tolist()) - set(days.tolist()))
    notes = list(notes)
    if missing:
        notes.append(f"no usable return on event day(s) {missing}: no dummy, AR NaN")
    if rel.max() < event[1]:
        notes.append(f"the data end on day {int(rel.max()):+d}, before the end of the event "
                     f"window (day {event[1]:+d})")

    if form == "sur":
        # equation-by-equation statsmodels OLS (= SUR with common regressors), stacked
        # equation-major; the system covariance and the Wald tests are computed here
        fits = [sm.OLS(y[:, i], z[i]).fit() for i in range(n_eq)]
        theta = np.concatenate([np.asarray(r.params) for r in fits])
        resid = np.column_stack([np.asarray(r.resid) for r in fits])
        cov = _system_cov(z, resid, cov_type, maxlags, is_event, days, df_resid)
    else:
        kw: dict[str, Any] = {"use_t": use_t_}
        if cov_type == "HAC":
            kw.update(cov_type="HAC", cov_kwds={"maxlags": maxlags})
        res = sm.OLS(y[:, 0], z[0]).fit(**kw)
        theta = np.asarray(res.params)
        resid = np.asarray(res.resid)[:, None]
        cov = np.asarray(res.cov_params())
        if cov_type == "HAC":
            slots = _dummy_slots(1, k, len(days))
            assert maxlags is not None
            cov = cov.copy()
            cov[np.ix_(slots, slots)] += _event_error_cov(resid[~is_event], days, maxlags,
                                                          df_resid)
    slots = _dummy_slots(n_eq, k, len(days))
    g = theta[slots]
    ar_cov = cov[np.ix_(slots, slots)]
    se = np.sqrt(np.diag(ar_cov))
    t = g / se
    sigma_mat = resid.T @ resid / df_resid

    cars: list[DummyCar] = []
    eq_rows: list[dict[str, Any]] = []
    day_pos = {int(d): j for j, d in enumerate(days)}
    for w in wins:
        n_days = w[1] - w[0] + 1
        wdays = list(range(w[0], w[1] + 1))
        absent = [d for d in wdays if d not in day_pos]
        if absent:
            reason = f"no abnormal return on day(s) {absent}"
            cars.append(DummyCar(window=w, n_days=n_days, status="incomplete", reason=reason))
            for eq in equations:
                eq_rows.append({"window": f"[{w[0]}, {w[1]}]", "equation": eq, "car": math.nan,
                                "se": math.nan, "t": math.nan, "p": math.nan})
            continue
        r_eq = np.zeros((n_eq, len(theta)))
        for i in range(n_eq):
            for d in wdays:
                r_eq[i, i * k + 2 + day_pos[d]] = 1.0
        for i, eq in enumerate(equations):
            c_i = float(r_eq[i] @ theta)
            se_i = float(np.sqrt(r_eq[i] @ cov @ r_eq[i]))
            t_i = c_i / se_i
            eq_rows.append({"window": f"[{w[0]}, {w[1]}]", "equation": eq, "car": c_i,
                            "se": se_i, "t": t_i,
                            "p": float(_pvalues(np.array([t_i]), use_t_, df_resid)[0])})
        r_mean = r_eq.mean(axis=0, keepdims=True)
        car_val = float((r_mean @ theta)[0])
        car_se = float(np.sqrt((r_mean @ cov @ r_mean.T)[0, 0]))
        if form == "sur":
            null = f"sum over securities of CAR[{w[0]}, {w[1]}] = 0"
            wald = _wald_from_chi2(_wald_chi2(r_mean, theta, cov), 1, use_t_, df_resid, null)
            joint = None
            if n_eq > 1:
                joint = _wald_from_chi2(_wald_chi2(r_eq, theta, cov), n_eq, use_t_, df_resid,
                                        f"CAR[{w[0]}, {w[1]}] = 0 for every security")
        else:
            null = f"CAR[{w[0]}, {w[1]}] = 0"
            c = res.wald_test(r_mean, cov_p=None if cov_type == "nonrobust" else cov,
                              use_f=use_t_, scalar=True)
            wald = WaldTest(stat=float(c.statistic), df=1,
                            df_denom=int(c.df_denom) if use_t_ else None,
                            pval=float(c.pvalue), null=null)
            joint = None
        cars.append(DummyCar(window=w, n_days=n_days, status="ok", reason="", car=car_val,
                             se=car_se, wald=wald, joint=joint))

    eqs = list(equations)
    return EventDummyResults(
        form=form, equations=equations, tickers=tickers, estimation=estimation, event=event,
        cov_type=cov_type, maxlags=maxlags, use_t=use_t_, nobs=n_obs, nobs_estimation=n_est,
        nobs_event=len(days), df_resid=df_resid,
        params=_frame(g, all_days, days, eqs),
        std_errors=_frame(se, all_days, days, eqs),
        tstats=_frame(t, all_days, days, eqs),
        pvalues=_frame(_pvalues(t, use_t_, df_resid), all_days, days, eqs),
        alpha=pd.Series(theta[0::k], index=eqs, name="alpha"),
        beta=pd.Series(theta[1::k], index=eqs, name="beta"),
        sigma=pd.Series(np.sqrt(np.diag(sigma_mat)), index=eqs, name="sigma"),
        resid_cov=pd.DataFrame(sigma_mat, index=eqs, columns=eqs),
        cars=tuple(cars),
        equation_cars=pd.DataFrame(eq_rows, columns=["window", "equation", "car", "se", "t",
                                                     "p"]),
        notes=tuple(notes),
        ar_cov=ar_cov,
    )


def dummy_regression(
    series: EventSeries,
    estimation: Window,
    event: Window,
    *,
    car_windows: Iterable[Window] | None = None,
    cov_type: str = "nonrobust",
    maxlags: int | None = None,
    use_t: bool | None = None,
    ticker: str = "security",
) -> EventDummyResults:
    """Event-dummy market-model regression for one security (statsmodels OLS).

    ``R_t = a + b R_mt + sum_d g_d D_dt + e_t`` over the estimation and event
    windows together, one dummy per event-window day with a usable return.

    Parameters
    ----------
    series
        Aligned returns for one event and security.
    estimation, event
        Windows in sessions relative to day 0, both ends included; they must not
        overlap. Estimation rows flagged in ``series.excluded`` and rows whose
        return or benchmark return is NaN are dropped (as in
        :func:`impact.estimation.fit`).
    car_windows
        CAR windows to test, inside the event window; default ``[0, 0]`` (when
        day 0 is in the event window) and the whole event window.
    cov_type
        ``nonrobust`` (OLS, the default) or ``HAC`` (Newey-West with Bartlett
        weights, plus the event-day error term; see the module docstring).
    maxlags
        HAC lags; default ``floor(4 (nobs / 100)^(2/9))``.
    use_t
        t and F distributions (default for ``nonrobust``) or normal and
        chi-squared (default for ``HAC``, as in statsmodels).
    ticker
        Name of the equation in the results.

    Returns
    -------
    EventDummyResults

    Raises
    ------
    ValueError
        On bad windows, fewer than 4 usable estimation returns or a constant
        benchmark.
    """
    _check_windows(estimation, event)
    use = _usable_rows(series, estimation, event)
    rel = series.rel_day[use].astype(int)
    is_event = (rel >= event[0]) & (rel <= event[1])
    if not is_event.any():
        raise ValueError(f"{ticker}: no usable return in the event window {list(event)}")
    return _fit_system(
        (ticker,), (ticker,), "single", rel, series.ret[use][:, None],
        series.mkt[use][:, None], is_event, estimation, event, car_windows, cov_type,
        maxlags, use_t, (),
    )


def portfolio_dummy_regression(
    series: Mapping[str, EventSeries],
    estimation: Window,
    event: Window,
    *,
    car_windows: Iterable[Window] | None = None,
    cov_type: str = "nonrobust",
    maxlags: int | None = None,
    use_t: bool | None = None,
) -> EventDummyResults:
    """Event-dummy regression of the equal-weighted portfolio of several securities.

    The securities must share day 0 (one exchange calendar). They are aligned on
    the dates where every one has a usable row (a balanced panel; losses are
    listed in ``notes``); the portfolio return is their mean on each date and its
    benchmark the mean of their benchmarks (the common benchmark when they share
    one). The portfolio's dummies are the mean of the securities' dummies, and
    its residual variance is ``1' Sigma 1 / N^2``, so the CAR test is the
    SUR test of the summed dummies (:func:`sur_dummy_regression`) when the
    securities share a benchmark.

    Parameters
    ----------
    series
        Ticker -> aligned returns for the same event.
    estimation, event, car_windows, cov_type, maxlags, use_t
        As in :func:`dummy_regression`.

    Returns
    -------
    EventDummyResults
        One equation named ``portfolio``.

    Raises
    ------
    ValueError
        As in :func:`dummy_regression`, and when the securities do not share day 0.
    """
    _check_windows(estimation, event)
    p = _panel(series, estimation, event)
    if not p.is_event.any():
        raise ValueError(f"no date of the event window {list(event)} where every security "
                         "has a usable return")
    notes = list(p.notes)
    same_mkt = bool(np.all(p.mkt == p.mkt[:, :1]))
    if not same_mkt:
        notes.append("the securities have different benchmarks: the portfolio's benchmark is "
                     "their equal-weighted mean")
    return _fit_system(
        tuple(series), ("portfolio",), "portfolio", p.rel, p.ret.mean(axis=1, keepdims=True),
        p.mkt.mean(axis=1, keepdims=True), p.is_event, estimation, event, car_windows,
        cov_type, maxlags, use_t, notes,
    )


def sur_dummy_regression(
    series: Mapping[str, EventSeries],
    estimation: Window,
    event: Window,
    *,
    car_windows: Iterable[Window] | None = None,
    cov_type: str = "nonrobust",
    maxlags: int | None = None,
    use_t: bool | None = None,
) -> EventDummyResults:
    """Event-dummy regressions of several securities as one system (SUR).

    One market-model-with-dummies equation per security, on the dates where
    every security has a usable row. Every equation has the same dummies, and
    the same benchmark when the securities share one; then SUR (feasible GLS)
    is equation-by-equation OLS, which is what is computed. The covariance of
    the stacked estimates keeps the contemporaneous cross-equation correlation:
    ``Cov(theta_i, theta_j) = sigma_ij (Z_i'Z_i)^-1 Z_i'Z_j (Z_j'Z_j)^-1`` with
    ``sigma_ij = e_i'e_j / (L1 - 2)`` (``Sigma (x) (Z'Z)^-1`` for a common
    benchmark); with different benchmarks this is still the exact covariance of
    the OLS estimates, not of FGLS. ``HAC`` uses the Newey-West matrix of the
    stacked scores plus the cross-equation event-day error term.

    The Wald tests, ``W = (R theta)' (R V R')^-1 (R theta)`` with this
    covariance V: the sum over securities of their CARs (reported as the mean
    CAR) is 0, q = 1, and (N > 1) every security's CAR is 0, q = N. With
    ``use_t`` the statistic is ``W / q`` against ``F(q, L1 - 2)``; otherwise W
    against ``chi2(q)``. (With one security this is statsmodels' ``wald_test``
    of :func:`dummy_regression`, which the tests check.)

    Parameters
    ----------
    series
        Ticker -> aligned returns for the same event.
    estimation, event, car_windows, cov_type, maxlags, use_t
        As in :func:`dummy_regression`.

    Returns
    -------
    EventDummyResults
        One equation per ticker; ``cars`` hold the mean-CAR and joint tests,
        ``equation_cars`` each security's CAR.

    Raises
    ------
    ValueError
        As in :func:`portfolio_dummy_regression`.
    """
    _check_windows(estimation, event)
    p = _panel(series, estimation, event)
    if not p.is_event.any():
        raise ValueError(f"no date of the event window {list(event)} where every security "
                         "has a usable return")
    tickers = tuple(series)
    return _fit_system(
        tickers, tickers, "sur", p.rel, p.ret, p.mkt, p.is_event, estimation, event,
        car_windows, cov_type, maxlags, use_t, p.notes,
    )


# ---------------------------------------------------------------------------
# Cross-sectional (second-stage) regression
# ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)  # frames inside: compare fields, not objects
class CrossSectionResults:
    """OLS of CARs on security characteristics, with robust standard errors."""

    formula: str
    #: statsmodels covariance type (``HC1`` by default).
    cov_type: str
    #: Securities used (rows without a missing value).
    nobs: int
    df_resid: int
    params: pd.Series
    std_errors: pd.Series
    tstats: pd.Series
    pvalues: pd.Series
    rsquared: float
    rsquared_adj: float
    #: True when nobs < :data:`DESCRIPTIVE_MIN_NOBS` or df_resid <
    #: :data:`DESCRIPTIVE_MIN_DF_RESID`: report the coefficients, not the tests.
    descriptive_only: bool
    #: The sentence a report prints when ``descriptive_only`` ("" otherwise).
    notice: str
    #: Rows dropped because a variable of the formula is missing.
    dropped: int = 0

    def summary(self) -> str:
        """A short text summary: coefficients, robust SEs, t, p, fit and the notice."""
        lines = [f"Cross-sectional OLS: {self.formula}",
                 f"nobs {self.nobs}, df_resid {self.df_resid}, R2 {self.rsquared:.4f}, "
                 f"adj. R2 {self.rsquared_adj:.4f}, cov {self.cov_type}"]
        if self.dropped:
            lines.append(f"{self.dropped} row(s) dropped for missing values")
        width = max(12, *(len(str(n)) for n in self.params.index))
        lines.append(f"{'':<{width}} {'coef':>10} {'se':>10} {'t':>8} {'p':>8}")
        for name in self.params.index:
            lines.append(f"{name!s:<{width}} {self.params[name]:>10.5f} "
                         f"{self.std_errors[name]:>10.5f} {self.tstats[name]:>8.3f} "
                         f"{self.pvalues[name]:>8.4f}")
        if self.descriptive_only:
            lines.append(f"note: {self.notice}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _formula_columns(formula: str) -> list[str]:
    """Names a formula uses as variables (heuristic: identifiers not called or qualified)."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", " ", formula)
    names: list[str] = []
    for m in re.finditer(r"(?<![\w.])([A-Za-z_]\w*)", text):
        rest = text[m.end():].lstrip()
        if rest.startswith(("(", ".")) or (rest.startswith("=") and not rest.startswith("==")):
            continue
        name = m.group(1)
        if name not in _FORMULA_NAMES and name not in names:
            names.append(name)
    return names


def cross_sectional_regression(
    data: pd.DataFrame,
    formula: str,
    *,
    cov_type: str = "HC1",
    min_nobs: int = DESCRIPTIVE_MIN_NOBS,
    min_df_resid: int = DESCRIPTIVE_MIN_DF_RESID,
) -> CrossSectionResults:
    """Regress CARs on characteristics with a formula (statsmodels), robust SEs.

    Parameters
    ----------
    data
        One row per security: the CAR and the characteristics (numbers or text;
        text enters through ``C(...)``).
    formula
        A patsy formula, e.g. ``car ~ hbm_exposure + C(exchange)``.
    cov_type
        statsmodels covariance type: ``HC1`` (default), ``HC0``, ``HC2``, ``HC3``
        or ``nonrobust``.
    min_nobs, min_df_resid
        The descriptive-only rule: below either, ``descriptive_only`` is True.

    Notes
    -----
    Rows with a missing value in a variable of the formula are dropped (counted in
    ``dropped``). The t statistics are compared with t(df_resid), also for the
    robust covariances (statsmodels' default there is the normal, which is too
    optimistic with few securities).

    Returns
    -------
    CrossSectionResults

    Raises
    ------
    ValueError
        If the formula is malformed, names a column that ``data`` does not have
        (the message lists the available columns), or leaves no residual degree
        of freedom.
    """
    allowed = ("nonrobust", "HC0", "HC1", "HC2", "HC3")
    if cov_type not in allowed:
        raise ValueError(f"cov_type must be one of {allowed}, got {cov_type!r}")
    columns = [str(c) for c in data.columns]
    available = ", ".join(columns) if columns else "(none)"
    if formula.count("~") != 1 or not formula.split("~")[0].strip() \
            or not formula.split("~")[1].strip():
        raise ValueError(f"formula {formula!r} must have the form 'car ~ x + C(group)'; "
                         f"available columns: {available}")
    missing = [n for n in _formula_columns(formula) if n not in columns]
    if missing:
        which = ", ".join(f"'{n}'" for n in missing)
        raise ValueError(f"formula {formula!r} uses column(s) {which} that the data do not "
                         f"have; available columns: {available}")
    try:
        model = smf.ols(formula, data=data, missing="drop")
    except Exception as exc:  # patsy/formulaic raise their own types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"cannot use formula {formula!r}: {first}; available columns: "
                         f"{available}") from exc
    nobs = int(model.nobs)
    df_resid = round(float(model.df_resid))
    if df_resid < 1:
        raise ValueError(f"formula {formula!r} has {round(float(model.df_model)) + 1} parameters "
                         f"for {nobs} securities: it needs more securities than parameters")
    res = model.fit(cov_type=cov_type, use_t=True)
    descriptive = nobs < min_nobs or df_resid < min_df_resid
    notice = ""
    if descriptive:
        notice = (f"with {nobs} securities the regression is descriptive, not inferential "
                  f"(rule: fewer than {min_nobs} securities or fewer than {min_df_resid} "
                  f"residual degrees of freedom; here {df_resid})")
    return CrossSectionResults(
        formula=formula, cov_type=cov_type, nobs=nobs, df_resid=df_resid,
        params=res.params, std_errors=res.bse, tstats=res.tvalues, pvalues=res.pvalues,
        rsquared=float(res.rsquared), rsquared_adj=float(res.rsquared_adj),
        descriptive_only=descriptive, notice=notice, dropped=len(data) - nobs,
    )


# ---------------------------------------------------------------------------
# Security attributes file
# ---------------------------------------------------------------------------

class SecurityAttributesError(InputError):
    """A security-attributes CSV is invalid.

    Parameters
    ----------
    path
        The file.
    message
        What is wrong and how to fix it.
    line
        The line of the file, if known.
    """

    def __init__(self, path: str, message: str, *, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.detail = message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def read_security_attributes(path: str | Path) -> pd.DataFrame:
    """Read a CSV of security characteristics: a ``ticker`` column and attributes.

    Parameters
    ----------
    path
        A UTF-8 CSV file with a header line. The ``ticker`` column is required and
        its values must be unique; other columns are attributes. A column whose
        non-empty values all parse as numbers becomes float; the others stay text.
        Empty cells are missing values; blank lines are skipped.

    Returns
    -------
    pandas.DataFrame
        One row per ticker, in file order: ``ticker`` first, then the attributes.

    Raises
    ------
    SecurityAttributesError
        (an :class:`impact.errors.InputError`) naming the file, the line and the
        fix: missing file, no header, no ``ticker`` column, duplicate column, a row
        with the wrong number of fields, an empty or duplicate ticker.
    """
    p = Path(path)
    where = str(p)
    if not p.is_file():
        raise SecurityAttributesError(where, "file not found: check the path (a CSV with a "
                                      "'ticker' column and one column per attribute)")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecurityAttributesError(where, f"cannot read the file ({exc}): save it as "
                                      "UTF-8 CSV") from exc
    reader = csv.reader(text.splitlines())
    rows: list[tuple[int, list[str]]] = []
    try:
        for rec in reader:
            if rec and any(c.strip() for c in rec):
                rows.append((reader.line_num, [c.strip() for c in rec]))
    except csv.Error as exc:
        raise SecurityAttributesError(where, f"not a valid CSV: {exc}",
                                      line=reader.line_num) from exc
    if not rows:
        raise SecurityAttributesError(where, "the file is empty: add a header line such as "
                                      "'ticker,hbm_exposure' and one line per security")
    header_line, header = rows[0]
    if "ticker" not in header:
        raise SecurityAttributesError(
            where, f"no 'ticker' column (columns: {', '.join(header)}): name the column of "
            "Yahoo tickers 'ticker' in the header line", line=header_line)
    seen_col: dict[str, int] = {}
    for j, name in enumerate(header):
        if not name:
            raise SecurityAttributesError(where, f"column {j + 1} has no name: add one to the "
                                          "header line", line=header_line)
        if name in seen_col:
            raise SecurityAttributesError(where, f"column '{name}' appears twice in the header: "
                                          "rename or drop one", line=header_line)
        seen_col[name] = j
    first_line: dict[str, int] = {}
    records: list[list[str]] = []
    for line, rec in rows[1:]:
        if len(rec) != len(header):
            raise SecurityAttributesError(
                where, f"{len(rec)} field(s) where the header has {len(header)}: "
                "check for a missing or extra comma (quote text that contains commas)",
                line=line)
        tk = rec[seen_col["ticker"]]
        if not tk:
            raise SecurityAttributesError(where, "empty ticker: fill it in or delete the line",
                                          line=line)
        if tk in first_line:
            raise SecurityAttributesError(
                where, f"ticker '{tk}' appears on lines {first_line[tk]} and {line}: keep one "
                "line per ticker", line=line)
        first_line[tk] = line
        records.append(rec)
    frame = pd.DataFrame(records, columns=header, dtype=object)
    out: dict[str, pd.Series] = {"ticker": frame["ticker"].astype(str)}
    for name in header:
        if name == "ticker":
            continue
        col = frame[name].replace("", np.nan)
        num = pd.to_numeric(col, errors="coerce")
        if bool((num.notna() == col.notna()).all()):
            out[name] = num.astype(float)
        else:
            out[name] = col
    return pd.DataFrame(out)
