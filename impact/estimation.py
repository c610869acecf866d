"""Expected-return models, abnormal returns, CARs and single-security tests.

Pure functions on numpy arrays: no I/O, no calendars, no database. The
definitions are those of ``../shared/docs/methods.md`` (MacKinlay 1997):

* models: market model (OLS ``a + b R_m``), constant mean, market-adjusted;
* ``AR_t = R_t - E[R_t]``; ``s^2 = sum_E AR^2 / (L1 - k)``;
* the forecast-error-corrected covariance of the event-window ARs,
  ``V = s^2 [I + X_W (X_E' X_E)^-1 X_W']`` (``V = s^2 I`` when no parameter is
  estimated), so that ``Var(CAR) = 1' V 1`` keeps the covariance of the
  parameter errors across the window's days (for the market model this is
  ``s^2 [L + L^2/L1 + (sum_W (R_m - Rbar_m))^2 / S_mm]``);
* ``t = CAR / sqrt(Var(CAR))`` against ``t(L1 - k)``;
* the sample-quantile (SQ) test of Gelbach, Helland and Klick (2013): the share
  of the estimation window's L-day sums of residuals at least as extreme as the
  CAR in the direction of the CAR, ``min(share(sums <= CAR), share(sums >= CAR))``
  (one-sided; double it for a two-sided test). It uses the empirical quantiles,
  so it stays valid when the sums are not centred on zero (market-adjusted
  model). The most extreme residual itself has p = 1/L1;
* BHAR: ``prod(1 + R) - prod(1 + E[R])`` over the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
from scipy import stats

#: Number of estimated parameters of the built-in models.
MODEL_K = {"market": 2, "constant-mean": 1, "market-adjusted": 0, "scholes-williams": 2,
           "dimson": 2}

#: Why a fit fails (``ValueError`` messages; the set-based engine gives the same).
INSUFFICIENT = "only {n} usable estimation-window returns for {k} parameters"
COLLINEAR = ("the regressors are collinear or constant over the estimation window (e.g. a "
             "benchmark whose returns do not vary)")
NONSYNC_ROWS = ("only {n} estimation-window returns with a leading and lagging benchmark "
                "return")
MISSING_FACTOR = ("model {model!r} needs factor {factor!r}, which is not among the series' "
                  "factors ({have})")


@dataclass(frozen=True)
class ModelSpec:
    """An expected-return model.

    ``kind`` is one of the built-in names of :data:`MODEL_K` or ``multi-factor``;
    a multi-factor model regresses the security's return on a constant, the
    benchmark (when ``market``) and the named factor series of the
    :class:`EventSeries` (OLS).
    """

    name: str
    kind: str
    factors: tuple[str, ...] = ()
    market: bool = True

    @property
    def uses_market(self) -> bool:
        """Whether the benchmark's return enters the model."""
        return self.kind != "constant-mean" and (self.kind != "multi-factor" or self.market)


def builtin(name: str) -> ModelSpec:
    """The spec of a built-in model by name."""
    if name not in MODEL_K:
        raise ValueError(f"unknown model {name!r}")
    return ModelSpec(name=name, kind=name)


@dataclass(frozen=True)
class EventSeries:
    """Aligned inputs for one event and one security.

    All arrays have one entry per session of the security's exchange, from the
    first estimation-window session to the last event-window session available.
    """

    #: Session offsets from day 0.
    rel_day: np.ndarray
    #: Session dates.
    dates: tuple[date, ...]
    #: Security returns (NaN where there is a gap).
    ret: np.ndarray
    #: Benchmark returns (NaN where there is a gap).
    mkt: np.ndarray
    #: True for estimation-window sessions excluded because another studied
    #: event's window covers them.
    excluded: np.ndarray
    #: Factor series aligned on the same sessions (NaN where missing), by name.
    factors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Fit:
    """A fitted expected-return model and its event-window abnormal returns."""

    model: str
    #: Intercept (market model) or mean (constant mean); NaN when not estimated.
    alpha: float
    #: Slope on the benchmark (market model); NaN when not estimated.
    beta: float
    #: Residual standard deviation, sqrt(SSR / (L1 - k)).
    sigma: float
    #: Number of estimation-window returns used (L1).
    nobs: int
    #: Number of estimated parameters (k).
    k: int
    #: R-squared of the market model; NaN otherwise.
    r2: float
    est_start: date
    est_end: date
    #: Estimation-window residuals by session (NaN where not used), and their rel days.
    est_rel_day: np.ndarray
    est_resid: np.ndarray
    #: Event window: rel days, dates, returns, benchmark returns, expected returns, ARs.
    ev_rel_day: np.ndarray
    ev_dates: tuple[date, ...]
    ev_ret: np.ndarray
    ev_mkt: np.ndarray
    ev_expected: np.ndarray
    ev_ar: np.ndarray
    #: Forecast-error-corrected covariance of the event-window ARs (NaN rows at gaps).
    ev_cov: np.ndarray
    #: All estimated parameters and their names (e.g. alpha, beta, a factor's loading).
    params: tuple[float, ...] = ()
    param_names: tuple[str, ...] = ()

    @property
    def df(self) -> int:
        """Degrees of freedom of the t tests, L1 - k."""
        return self.nobs - self.k

    @property
    def ar_se(self) -> np.ndarray:
        """Standard error of each event-window AR (S_it)."""
        return np.sqrt(np.diag(self.ev_cov))


@dataclass(frozen=True)
class CarResult:
    """A cumulative abnormal return over one window, with its tests."""

    window: tuple[int, int]
    n_days: int
    #: ``ok``, or ``incomplete`` when a day of the window has no AR.
    status: str
    reason: str
    car: float = float("nan")
    var: float = float("nan")
    se: float = float("nan")
    t: float = float("nan")
    df: int = 0
    p: float = float("nan")
    #: Sample-quantile p-value (one-sided, in the CAR's direction), and the number of sums.
    sq_p: float = float("nan")
    sq_n: int = 0
    bhar: float = float("nan")
    #: Dates of the window's first and last sessions.
    start_date: date | None = None
    end_date: date | None = None


def _regressors(spec: ModelSpec, series: EventSeries, rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Regressors X and fixed offset on ``rows`` (expected = offset + X @ params)."""
    mkt = series.mkt[rows]
    n = len(mkt)
    if spec.kind in ("market", "scholes-williams", "dimson"):
        return np.column_stack([np.ones(n), mkt]), np.zeros(n)
    if spec.kind == "constant-mean":
        return np.ones((n, 1)), np.zeros(n)
    if spec.kind == "market-adjusted":
        return np.empty((n, 0)), mkt.astype(float)
    if spec.kind == "multi-factor":
        cols = [np.ones(n)] + ([mkt] if spec.market else [])
        for name in spec.factors:
            if name not in series.factors:
                raise ValueError(MISSING_FACTOR.format(model=spec.name, factor=name,
                                                       have=", ".join(series.factors)))
            cols.append(series.factors[name][rows])
        return np.column_stack(cols), np.zeros(n)
    raise ValueError(f"unknown model kind {spec.kind!r}")


def _regressors_ok(spec: ModelSpec, series: EventSeries) -> np.ndarray:
    """Sessions where every input of the expected return is known."""
    ok = np.ones(len(series.ret), dtype=bool)
    if spec.uses_market:
        ok &= np.isfinite(series.mkt)
    for name in spec.factors:
        ok &= np.isfinite(series.factors.get(name, np.full(len(ok), np.nan)))
    return ok


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """X shifted by k sessions (k = 1: the previous session's value), NaN-padded."""
    out = np.full(len(x), np.nan)
    if k > 0:
        out[k:] = x[:-k]
    elif k < 0:
        out[:k] = x[-k:]
    else:
        out[:] = x
    return out


def _nonsync_beta(spec: ModelSpec, series: EventSeries, use: np.ndarray
                  ) -> tuple[float, float, np.ndarray]:
    """Scholes-Williams or Dimson (one lag, one lead) beta, with alpha = mean(R) - b mean(R_m).

    Returns alpha, beta and the rows used (those with the lag and lead available).
    """
    r, m = series.ret, series.mkt
    lag, lead = _shift(m, 1), _shift(m, -1)
    rows = use & np.isfinite(lag) & np.isfinite(lead)
    y, m0, m1, p1 = r[rows], m[rows], lag[rows], lead[rows]
    if len(y) < 6:
        raise ValueError(NONSYNC_ROWS.format(n=len(y)))
    if spec.kind == "scholes-williams":
        def slope(x: np.ndarray) -> float:
            xc = x - x.mean()
            return float(xc @ (y - y.mean()) / (xc @ xc))

        rho = float(np.corrcoef(m0, m1)[0, 1])
        beta = (slope(m1) + slope(m0) + slope(p1)) / (1.0 + 2.0 * rho)
    else:  # dimson: sum of the lag, contemporaneous and lead coefficients
        x = np.column_stack([np.ones(len(y)), m1, m0, p1])
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        beta = float(coef[1:].sum())
    alpha = float(y.mean() - beta * m0.mean())
    return alpha, beta, rows


def fit(series: EventSeries, model: str | ModelSpec, estimation: tuple[int, int],
        event: tuple[int, int]) -> Fit:
    """Fit a model over the estimation window and compute the event window's ARs.

    Parameters
    ----------
    series
        Aligned returns for one event and security.
    model
        A built-in model name (``market``, ``constant-mean``, ``market-adjusted``,
        ``scholes-williams``, ``dimson``) or a :class:`ModelSpec`.
    estimation, event
        Windows in sessions relative to day 0, both ends included.

    Returns
    -------
    Fit

    Raises
    ------
    ValueError
        If the estimation window has fewer usable returns than parameters + 2,
        or the regressors are collinear (e.g. a constant benchmark).

    Notes
    -----
    Scholes-Williams and Dimson betas are not OLS estimates; their abnormal returns
    use the forecast-error correction of the market model (``X = [1, R_m]``), the
    usual approximation.
    """
    spec = builtin(model) if isinstance(model, str) else model
    rel = series.rel_day
    in_est = (rel >= estimation[0]) & (rel <= estimation[1])
    inputs_ok = _regressors_ok(spec, series)
    ok = inputs_ok & np.isfinite(series.ret)
    use = in_est & ok & ~series.excluded
    y = series.ret[use]
    x_e, off_e = _regressors(spec, series, use)
    k = x_e.shape[1]
    n = int(use.sum())
    if n < k + 2:
        raise ValueError(INSUFFICIENT.format(n=n, k=k))
    if k:
        xtx = x_e.T @ x_e
        if np.linalg.matrix_rank(xtx) < k:
            raise ValueError(COLLINEAR)
        xtx_inv = np.linalg.inv(xtx)
    else:
        xtx_inv = np.empty((0, 0))
    if spec.kind in ("scholes-williams", "dimson"):
        alpha, beta, _rows = _nonsync_beta(spec, series, use)
        params = np.array([alpha, beta])
    elif k:
        params = xtx_inv @ (x_e.T @ (y - off_e))
    else:
        params = np.empty(0)
    resid = y - off_e - (x_e @ params if k else 0.0)
    s2 = float(resid @ resid) / (n - k)
    r2 = float("nan")
    if spec.kind in ("market", "multi-factor"):
        tss = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - float(resid @ resid) / tss if tss > 0 else float("nan")

    est_resid = np.full(int(in_est.sum()), np.nan)
    est_resid[use[in_est]] = resid
    est_dates = [d for d, u in zip(series.dates, use, strict=True) if u]

    in_ev = (rel >= event[0]) & (rel <= event[1])
    ev_ok = ok[in_ev]
    filled = _filled(series)
    x_w, _ = _regressors(spec, filled, in_ev)
    expected = expected_returns(spec, series, params)[in_ev]
    ret_w = series.ret[in_ev]
    ar = np.where(ev_ok, ret_w - expected, np.nan)
    cov = s2 * (np.eye(len(ar)) + (x_w @ xtx_inv @ x_w.T if k else 0.0))
    cov[~ev_ok, :] = np.nan
    cov[:, ~ev_ok] = np.nan
    slope_on_market = 1 if spec.uses_market and spec.kind != "market-adjusted" else None
    return Fit(
        model=spec.name,
        alpha=float(params[0]) if k >= 1 else float("nan"),
        beta=float(params[slope_on_market]) if slope_on_market and k >= 2 else float("nan"),
        sigma=float(np.sqrt(s2)),
        nobs=n,
        k=k,
        r2=r2,
        est_start=est_dates[0],
        est_end=est_dates[-1],
        est_rel_day=rel[in_est],
        est_resid=est_resid,
        ev_rel_day=rel[in_ev],
        ev_dates=tuple(d for d, m in zip(series.dates, in_ev, strict=True) if m),
        ev_ret=ret_w,
        ev_mkt=series.mkt[in_ev],
        ev_expected=expected,
        ev_ar=ar,
        ev_cov=cov,
        params=tuple(float(v) for v in params),
        param_names=param_names(spec),
    )


def _filled(series: EventSeries) -> EventSeries:
    """The series with missing benchmark and factor returns read as 0."""
    return EventSeries(series.rel_day, series.dates, series.ret,
                       np.where(np.isfinite(series.mkt), series.mkt, 0.0), series.excluded,
                       {f: np.where(np.isfinite(v), v, 0.0) for f, v in series.factors.items()})


def expected_returns(spec: ModelSpec, series: EventSeries, params: np.ndarray | tuple[float, ...]
                     ) -> np.ndarray:
    """A model's expected return on every session of a series.

    Parameters
    ----------
    spec
        The model.
    series
        Aligned inputs.
    params
        The fitted parameters, in the order of :func:`param_names`.

    Returns
    -------
    numpy.ndarray
        ``offset + X params`` per session; NaN where an input of the model (the
        benchmark, a factor) is missing: never a made-up value.
    """
    p = np.asarray(params, dtype=float)
    x, off = _regressors(spec, _filled(series), np.ones(len(series.ret), dtype=bool))
    out = off + (x @ p if len(p) else 0.0)
    return np.where(_regressors_ok(spec, series), out, np.nan)


def param_names(spec: ModelSpec) -> tuple[str, ...]:
    """Names of a model's parameters, in the order of :attr:`Fit.params`.

    Parameters
    ----------
    spec
        The model.

    Returns
    -------
    tuple of str
    """
    if spec.kind == "constant-mean":
        return ("mean",)
    if spec.kind == "market-adjusted":
        return ()
    if spec.kind == "multi-factor":
        return ("alpha", *(("beta",) if spec.market else ()), *spec.factors)
    return ("alpha", "beta")


def moving_sums(resid: np.ndarray, length: int) -> np.ndarray:
    """All sums of ``length`` consecutive residuals that have no gap (NaN)."""
    if length < 1 or len(resid) < length:
        return np.empty(0)
    windows = np.lib.stride_tricks.sliding_window_view(resid, length)
    sums: np.ndarray = np.asarray(windows.sum(axis=1), dtype=float)
    out: np.ndarray = sums[np.isfinite(sums)]
    return out


def sq_pvalue(value: float, resid: np.ndarray, length: int) -> tuple[float, int]:
    """Sample-quantile p-value of an L-day abnormal return (one-sided, observed direction).

    Parameters
    ----------
    value
        The CAR (or one-day AR) to test.
    resid
        Estimation-window residuals in session order (NaN at gaps).
    length
        L, the number of days summed in ``value``.

    Returns
    -------
    (p, n)
        ``min(share of sums <= value, share of sums >= value)`` over the n
        estimation-window L-day sums, and n. p = 0 means more extreme than every
        sum (p < 1/n); NaN if there is no sum.
    """
    sums = moving_sums(resid, length)
    if sums.size == 0 or not np.isfinite(value):
        return float("nan"), int(sums.size)
    return float(min(np.mean(sums <= value), np.mean(sums >= value))), int(sums.size)


def t_pvalue(t: float, df: int) -> float:
    """Two-sided p-value of a t statistic."""
    return float(2.0 * stats.t.sf(abs(t), df))


def car(f: Fit, window: tuple[int, int], *,
        sums: tuple[float, float] | None = None) -> CarResult:
    """CAR over a window of the event window, with its t, SQ and BHAR.

    Parameters
    ----------
    f
        A fit from :func:`fit` (or :func:`impact.engine.fit_series`).
    window
        [start, end] in sessions relative to day 0, inside the event window.
    sums
        The CAR and its variance when already computed (by the set-based engine,
        :func:`impact.engine.fit_series`); ``None``: sum the ARs and their covariance.

    Returns
    -------
    CarResult
        ``status`` is ``incomplete`` (numbers NaN, ``reason`` says why) when a
        day of the window has no abnormal return.
    """
    a, b = window
    length = b - a + 1
    sel = (f.ev_rel_day >= a) & (f.ev_rel_day <= b)
    idx = np.flatnonzero(sel)
    dates = [f.ev_dates[i] for i in idx]
    start_date = dates[0] if dates else None
    end_date = dates[-1] if dates else None
    if len(idx) < length:
        return CarResult(
            window=window, n_days=len(idx), status="incomplete",
            reason=f"only {len(idx)} of {length} sessions have prices yet",
            start_date=start_date, end_date=end_date,
        )
    ar = f.ev_ar[idx]
    if not np.all(np.isfinite(ar)):
        missing = [str(f.ev_dates[i]) for i in idx if not np.isfinite(f.ev_ar[i])]
        return CarResult(
            window=window, n_days=len(idx), status="incomplete",
            reason=f"no abnormal return on {', '.join(missing)} (price gap)",
            start_date=start_date, end_date=end_date,
        )
    if sums is None:
        total = float(ar.sum())
        var = float(f.ev_cov[np.ix_(idx, idx)].sum())
    else:
        total, var = float(sums[0]), float(sums[1])
    se = float(np.sqrt(var))
    t = total / se if se > 0 else float("nan")  # a perfect fit (e.g. a stale price): no t
    sq_p, sq_n = sq_pvalue(total, f.est_resid, length)
    bhar = float(np.prod(1.0 + f.ev_ret[idx]) - np.prod(1.0 + f.ev_expected[idx]))
    return CarResult(
        window=window, n_days=length, status="ok", reason="",
        car=total, var=var, se=se, t=t, df=f.df, p=t_pvalue(t, f.df),
        sq_p=sq_p, sq_n=sq_n, bhar=bhar, start_date=start_date, end_date=end_date,
    )
