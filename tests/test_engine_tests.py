"""The set-based test battery (impact.engine_tests) against the per-event reference.

The reference is ``impact.inference.run_tests`` on the fits of
``impact.estimation.fit`` of each event's securities, one call per event and window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

import impact.engine_tests as et
from impact import engine_kernels as kernels
from impact.engine import Exclusions
from impact.engine_tests import ENGINE_TESTS, PanelArrays, event_tests
from impact.estimation import EventSeries, Fit, fit
from impact.inference import run_tests

RTOL = 1e-9
ATOL = 1e-12  # for values that are ~0
D0 = date(2000, 1, 1)


@dataclass
class Ticker:
    lo: int  # first session on the common calendar
    off: int  # position of that session in the dense global arrays
    ret: np.ndarray
    mkt: np.ndarray

    @property
    def hi(self) -> int:
        return self.lo + len(self.ret) - 1


@dataclass
class Study:
    tickers: list[Ticker]
    ret: np.ndarray  # dense global layout
    mkt: np.ndarray
    pairs: list[tuple[int, int, int]]  # (event code, ticker, day-0 session)


def make_tickers(rng: np.random.Generator, n_tickers: int, n_sessions: int,
                 short: dict[int, int] | None = None,
                 gaps: tuple[float, float] = (0.03, 0.01)) -> list[Ticker]:
    """Tickers with gaps, stale days (ties of residuals) and, for ``short``, a given first
    session."""
    market = rng.normal(0.0003, 0.011, n_sessions)
    out: list[Ticker] = []
    off = 0
    for k in range(n_tickers):
        lo = (short or {}).get(k, int(rng.integers(0, 40)))
        hi = int(rng.integers(n_sessions - 30, n_sessions)) if k % 3 else n_sessions - 1
        idx = np.arange(lo, hi + 1)
        mkt = market[idx].copy()
        beta = rng.uniform(0.4, 1.6)
        ret = rng.normal(0.0002, 0.003) + beta * mkt + 0.015 * rng.standard_t(5, len(idx))
        ret[rng.random(len(idx)) < gaps[0]] = np.nan
        mkt[rng.random(len(idx)) < gaps[1]] = np.nan
        if k % 4 == 1:  # stale days: equal residuals, i.e. ties in the ranks
            stale = rng.choice(len(idx), 6, replace=False)
            ret[stale] = 0.0
            mkt[stale] = 0.0
        if k == 2:  # a long gap
            ret[100:130] = np.nan
        if short and k in short:  # the first sessions complete (exactly 4 usable returns)
            ret[:8] = rng.normal(0, 0.01, 8)
            mkt[:8] = market[lo:lo + 8]
        out.append(Ticker(lo, off, ret, mkt))
        off += len(idx)
    return out


def make_study(seed: int, est: tuple[int, int], ev: tuple[int, int],
               gaps: tuple[float, float] = (0.03, 0.01)) -> Study:
    rng = np.random.default_rng(seed)
    n_sessions = 420
    s0 = 300
    # ticker 0 starts so that day 0 = s0 has exactly 4 estimation-window sessions
    tickers = make_tickers(rng, 40, n_sessions, short={0: s0 + est[1] - 3}, gaps=gaps)
    pairs: list[tuple[int, int, int]] = []

    def add(code: int, tks: list[int], day0: int | list[int]) -> None:
        days = day0 if isinstance(day0, list) else [day0] * len(tks)
        pairs.extend((code, k, d) for k, d in zip(tks, days, strict=True))

    add(0, list(range(1, 31)), s0)  # 30 securities
    add(1, [0, *range(5, 16)], s0)  # includes the 4-return security (Patell not computed)
    add(2, [7, 8, 9], n_sessions - 6)  # near the end: some windows incomplete
    add(3, [11, 12], 200)
    add(4, [13], 250)  # one security
    add(5, [14, 15, 16], 3)  # every fit fails (no estimation window)
    add(6, [17, 18], n_sessions + 10)  # every window incomplete (day 0 after the data)
    # code 7: no pairs at all
    for code in range(8, 14):
        n = int(rng.integers(2, 31))
        tks = [int(t) for t in rng.choice(np.arange(1, 40), n, replace=False)]
        add(code, tks, int(rng.integers(150, n_sessions - 2)))
    add(14, [21, 22, 23, 24], [s0, s0 + 1, s0 - 3, s0])  # different day-0 sessions
    add(15, [25], 280)  # one security, all residuals shifted below 0 (gsign 0)
    add(16, [26, 27, 28], 290)  # the second one with zero residual variance
    ret = np.concatenate([t.ret for t in tickers])
    mkt = np.concatenate([t.mkt for t in tickers])
    order = rng.permutation(len(pairs))  # the pairs of an event need not be adjacent
    return Study(tickers, ret, mkt, [pairs[i] for i in order])


def series(t: Ticker, day0: int, est: tuple[int, int], ev: tuple[int, int],
           excluded: list[tuple[int, int]] | None = None, *, wide: bool = False
           ) -> EventSeries | None:
    """The reference's series of a pair: from the estimation window's start to the event
    window's end (``wide``: over both windows whatever their order)."""
    start = max(t.lo, day0 + (min(est[0], ev[0]) if wide else est[0]))
    end = min(t.hi, day0 + (max(est[1], ev[1]) if wide else ev[1]))
    if end < start:
        return None
    idx = np.arange(start, end + 1)
    mask = np.zeros(len(idx), dtype=bool)
    for a, b in excluded or []:
        mask |= (idx - day0 >= max(a, est[0])) & (idx - day0 <= min(b, est[1]))
    return EventSeries(rel_day=idx - day0,
                       dates=tuple(D0 + timedelta(days=int(i)) for i in idx),
                       ret=t.ret[idx - t.lo], mkt=t.mkt[idx - t.lo], excluded=mask)


def shifted(f: Fit, shift: float) -> Fit:
    """The fit with alpha moved by ``shift`` (every residual and AR moves by -shift)."""
    return replace(f, alpha=f.alpha + shift, est_resid=f.est_resid - shift,
                   ev_ar=f.ev_ar - shift, ev_expected=f.ev_expected + shift)


def build(study: Study, est: tuple[int, int], ev: tuple[int, int],
          excl: dict[int, list[tuple[int, int]]] | None = None,
          zero_var: frozenset[tuple[int, int]] = frozenset({(16, 27)})
          ) -> tuple[PanelArrays, dict[int, list[Fit]]]:
    """PanelArrays and, per event code, the ok fits in pair order (``excl``: per pair index,
    estimation-window runs left out; ``zero_var``: (event, ticker) fits made of zero
    residual variance)."""
    cols: dict[str, list[float]] = {k: [] for k in (
        "event", "day0_pos", "lo_pos", "hi_pos", "ok", "nobs", "alpha", "beta", "sigma",
        "rbar_m", "s_mm")}
    fits: dict[int, list[Fit]] = {}
    for i_pair, (code, k, day0) in enumerate(study.pairs):
        t = study.tickers[k]
        s = series(t, day0, est, ev, (excl or {}).get(i_pair))
        f: Fit | None = None
        if s is not None:
            try:
                f = fit(s, "market", est, ev)
            except ValueError:
                f = None
        if f is not None and code == 15:
            f = shifted(f, 1.0)
        if f is not None and (code, k) in zero_var:
            f = replace(f, sigma=0.0, ev_cov=f.ev_cov * 0.0)
        rbar_m = s_mm = math.nan
        if f is not None and s is not None:
            use = ((s.rel_day >= est[0]) & (s.rel_day <= est[1]) & np.isfinite(s.ret)
                   & np.isfinite(s.mkt) & ~s.excluded)
            m = s.mkt[use]
            rbar_m = float(m.mean())
            s_mm = float(((m - rbar_m) ** 2).sum())
            fits.setdefault(code, []).append(f)
        vals = {"event": code, "day0_pos": t.off + day0 - t.lo, "lo_pos": t.off,
                "hi_pos": t.off + len(t.ret) - 1, "ok": f is not None,
                "nobs": f.nobs if f else 0, "alpha": f.alpha if f else math.nan,
                "beta": f.beta if f else math.nan, "sigma": f.sigma if f else math.nan,
                "rbar_m": rbar_m, "s_mm": s_mm}
        for key, v in vals.items():
            cols[key].append(v)
    ints = {"event", "day0_pos", "lo_pos", "hi_pos", "nobs"}
    arrays = {k: np.array(v, dtype=np.int64 if k in ints else bool if k == "ok" else float)
              for k, v in cols.items()}
    items = [(k, a, b) for k, runs in (excl or {}).items() for a, b in runs]
    ex = None if excl is None else Exclusions(
        pair=np.array([i[0] for i in items], dtype=np.int64),
        lo=np.array([i[1] for i in items], dtype=np.int64),
        hi=np.array([i[2] for i in items], dtype=np.int64))
    return PanelArrays(ret=study.ret, mkt=study.mkt, **arrays, exclusions=ex), fits


def close(a: float, b: float) -> bool:
    return abs(a - b) <= max(RTOL * abs(b), ATOL)


def compare(got: pl.DataFrame, fits: dict[int, list[Fit]], n_events: int,
            windows: list[tuple[int, int]], tests: list[str]) -> dict[str, float]:
    """Assert every row equals the reference; the worst relative errors by test."""
    assert got.height == n_events * len(windows) * len(tests)
    rows = got.rows(named=True)
    worst: dict[str, float] = {}
    i = 0
    for code in range(n_events):
        for w in windows:
            ref = run_tests(fits.get(code, []), w, tests=tests)
            for r in ref:
                g = rows[i]
                i += 1
                where = (code, w, r.name, g, r)
                assert (g["event"], g["window_start"], g["window_end"], g["test"]) == (
                    code, w[0], w[1], r.name), where
                assert (g["n"], g["status"], g["reason"], g["distribution"]) == (
                    r.n, r.status, r.reason, r.distribution), where
                for key in ("statistic", "p", "df"):
                    want, have = getattr(r, key), g[key]
                    assert (want is None) == (have is None), (key, *where)
                    if want is not None:
                        assert close(have, want), (key, *where)
                        err = abs(have - want) / max(abs(want), 1e-300)
                        worst[r.name] = max(worst.get(r.name, 0.0), err if abs(want) > ATOL
                                            else 0.0)
    return worst


WINDOWS_A = [(-1, 1), (0, 0), (0, 1), (-5, 10), (0, 10), (-5, -1), (3, 3), (-6, 0), (10, 10)]
WINDOWS_B = [(-3, 5), (0, 0), (-1, 1), (5, 5), (4, 6)]


@pytest.mark.parametrize(("seed", "est", "ev", "windows", "gaps"), [
    (1, (-120, -11), (-5, 10), WINDOWS_A, (0.03, 0.01)),
    (2, (-60, -4), (-3, 5), WINDOWS_B, (0.03, 0.01)),
    (3, (-120, -11), (-5, 10), WINDOWS_A, (0.001, 0.0)),  # most securities without a gap
])
def test_equals_reference(seed: int, est: tuple[int, int], ev: tuple[int, int],
                          windows: list[tuple[int, int]], gaps: tuple[float, float]
                          ) -> None:
    study = make_study(seed, est, ev, gaps)
    panel, fits = build(study, est, ev)
    tests = list(ENGINE_TESTS)
    got = event_tests(panel, estimation=est, event=ev, windows=windows, tests=tests)
    n_events = int(panel.event.max()) + 1
    worst = compare(got, fits, n_events, windows, tests)
    print(seed, {k: f"{v:.1e}" for k, v in worst.items()})
    assert set(worst) == set(tests)  # every test computed somewhere
    # the study exercises the "not computed" paths
    reasons = set(got["reason"].unique())
    expected = {"", "no securities", "needs at least 2 securities",
                "no security has an abnormal return on every day of the window",
                "needs more than k + 2 estimation-window returns per security",
                "one-day test: see corrado_cowan for a window",
                "the share of positive estimation-window residuals is 0 or 1"}
    assert expected <= reasons, expected - reasons
    assert any(r.startswith("zero variance of the CAR of security #") for r in reasons)


def test_exclusions_equal_reference() -> None:
    """Residuals of excluded estimation-window sessions are missing, as in the reference."""
    est, ev = (-120, -11), (-5, 10)
    study = make_study(7, est, ev, (0.01, 0.002))
    rng = np.random.default_rng(7)
    excl: dict[int, list[tuple[int, int]]] = {}
    for i in range(len(study.pairs)):
        if rng.random() < 0.6:
            runs = []
            for _ in range(int(rng.integers(1, 4))):
                a = int(rng.integers(est[0] - 10, ev[1]))
                runs.append((a, a + int(rng.integers(0, 25))))
            excl[i] = runs
    panel, fits = build(study, est, ev, excl)
    assert any(np.isnan(f.est_resid).sum() > 20 for fs in fits.values() for f in fs)
    tests = list(ENGINE_TESTS)
    got = event_tests(panel, estimation=est, event=ev, windows=WINDOWS_A, tests=tests)
    worst = compare(got, fits, int(panel.event.max()) + 1, WINDOWS_A, tests)
    assert set(worst) == set(tests)
    # without the exclusions the rank and correlation tests differ
    plain = event_tests(replace(panel, exclusions=None), estimation=est, event=ev,
                        windows=WINDOWS_A, tests=["kp_bmp", "corrado"])
    mine = got.filter(pl.col("test").is_in(["kp_bmp", "corrado"]))
    assert not np.allclose(plain["statistic"].fill_null(0).to_numpy(),
                           mine["statistic"].fill_null(0).to_numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="do not overlap"):
        event_tests(panel, estimation=(-120, 0), event=ev, windows=[(0, 0)])


def test_test_subset_order_and_dtypes() -> None:
    est, ev = (-60, -4), (-3, 5)
    panel, fits = build(make_study(3, est, ev), est, ev)
    tests = ["gsign", "t_cs", "corrado"]
    got = event_tests(panel, estimation=est, event=ev, windows=[(0, 0), (-1, 2)], tests=tests)
    assert got.schema == pl.Schema({
        "event": pl.Int64, "window_start": pl.Int32, "window_end": pl.Int32,
        "test": pl.String, "n": pl.Int64, "statistic": pl.Float64, "p": pl.Float64,
        "df": pl.Float64, "distribution": pl.String, "status": pl.String, "reason": pl.String})
    compare(got, fits, int(panel.event.max()) + 1, [(0, 0), (-1, 2)], tests)


def test_chunking_blocks_and_threads_do_not_change_results(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    est, ev = (-120, -11), (-5, 10)
    panel, _ = build(make_study(4, est, ev), est, ev)
    kw = {"estimation": est, "event": ev, "windows": WINDOWS_A}
    monkeypatch.setattr(et, "WORKERS", 1)
    base = event_tests(panel, **kw)  # type: ignore[arg-type]
    for chunk, workers in ((7 * 200, 2), (64 * 200, 1), (1, 2), (1 << 30, 1)):
        monkeypatch.setattr(et, "CHUNK_ELEMS", chunk)
        monkeypatch.setattr(et, "WORKERS", workers)
        got = event_tests(panel, **kw)  # type: ignore[arg-type]
        assert got.drop("statistic", "p").equals(base.drop("statistic", "p"))
        for key in ("statistic", "p"):
            a, b = got[key].to_numpy(), base[key].to_numpy()
            assert np.array_equal(np.isnan(a), np.isnan(b))
            f = ~np.isnan(a)
            np.testing.assert_allclose(a[f], b[f], rtol=1e-12, atol=1e-14)


def test_corrado_ranks_estimation_days() -> None:
    """Changing only estimation-window returns changes the rank tests (and stays exact)."""
    est, ev = (-60, -4), (-3, 5)
    study = make_study(5, est, ev)
    windows = [(0, 0), (-1, 1)]
    tests = ["corrado", "corrado_cowan"]
    panel, _ = build(study, est, ev)
    before = event_tests(panel, estimation=est, event=ev, windows=windows, tests=tests)
    # event 0 (day 0 = session 300): large positive returns on 20 estimation-window days
    for k in range(1, 31):
        t = study.tickers[k]
        days = np.arange(300 - 40, 300 - 20) - t.lo
        t.ret[days] = np.where(np.isfinite(t.ret[days]), t.ret[days] + 0.5, np.nan)
    study.ret[:] = np.concatenate([t.ret for t in study.tickers])
    panel2, fits2 = build(study, est, ev)
    after = event_tests(panel2, estimation=est, event=ev, windows=windows, tests=tests)
    compare(after, fits2, int(panel2.event.max()) + 1, windows, tests)
    sel = (pl.col("event") == 0) & (pl.col("status") == "ok")
    s0 = before.filter(sel)["statistic"].to_numpy()
    s1 = after.filter(sel)["statistic"].to_numpy()
    assert len(s0) == len(s1) == 3  # corrado on (0, 0), corrado_cowan on both windows
    assert np.all(np.abs(s0 - s1) > 1e-3), (s0, s1)


def test_row_ranks_equal_rankdata() -> None:
    rng = np.random.default_rng(7)
    for cols in (1, 2, 17, 256, 257, 700):
        x = rng.normal(size=(300, cols))
        x[rng.random(x.shape) < 0.1] = np.nan
        if cols > 8:
            x[:40, 3] = x[:40, 5]  # ties
            x[40:50, 2] = -0.0
            x[40:50, 7] = 0.0
            x[50:60, 4] = np.nextafter(x[50:60, 6], np.inf)  # 1 ulp apart
            x[60:70] = 1.0  # all tied
            x[70:75] = np.nan  # all missing
        dev = et._rank_dev(x)
        fin = np.isfinite(x)
        want = stats.rankdata(x, axis=1, nan_policy="omit") - (fin.sum(axis=1)[:, None] + 1) / 2
        assert np.array_equal(dev, np.where(fin, want, np.nan), equal_nan=True), cols
    # the exact fallback on its own: many ties, -0.0 and 0.0, NaN
    x = rng.integers(-3, 4, size=(500, 40)).astype(float)
    x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
    x[rng.random(x.shape) < 0.1] = np.nan
    fin = np.isfinite(x)
    dev = et._rank_dev(x)
    want = stats.rankdata(x, axis=1, nan_policy="omit") - (fin.sum(axis=1)[:, None] + 1) / 2
    assert np.array_equal(dev[fin], want[fin])
    # a subset of the columns, in another order
    cols = np.array([5, 1, 30, 2], dtype=np.int64)
    dev = et._rank_dev(x, cols)
    fin = np.isfinite(x[:, cols])
    want = stats.rankdata(x[:, cols], axis=1, nan_policy="omit")
    want -= (fin.sum(axis=1)[:, None] + 1) / 2
    assert np.array_equal(dev, np.where(fin, want, np.nan), equal_nan=True)


@pytest.mark.parametrize("rate", [0.2, 0.004])
def test_mean_pairwise_correlation_blocks(rate: float) -> None:
    """The per-event correlation sums equal the reference helper (complete and gapped pairs)."""
    from impact.inference import mean_pairwise_correlation

    rng = np.random.default_rng(8)
    b, n, d, w = 4, 9, 40, 2
    x = rng.normal(size=(b, n, d)) + rng.normal(size=(b, 1, d))
    x[rng.random(x.shape) < rate] = np.nan
    x[0, 4, :] = np.nan  # no residual at all
    x[1, 2, :-2] = np.nan  # only 2 days: no pair with 3 common days
    x[2, 5, :] = 0.5  # constant: zero variance
    x[2, 5, 1] = np.nan
    x[3, 6, :] = 0.25  # constant without a gap
    x[3, :4, 7] = np.nan  # a day that 4 securities miss
    u = rng.random((b, n, w)) < 0.8
    u[0, :, 1] = True
    for i in range(b):
        s, c = et._corr_sums(x[i], u[i])
        for j in range(w):
            cols = np.flatnonzero(u[i, :, j])
            want = mean_pairwise_correlation(x[i, cols].T)
            if want is None:
                assert c[j] == 0
            else:
                assert close(s[j] / c[j], want), (i, j)


@pytest.mark.parametrize("n", [14, 20])
def test_mean_pairwise_correlation_short_histories(n: int) -> None:
    """Securities missing most days (listed by the days they have) give the reference's sums.

    Pairs of two such securities, of one with a gapped or a complete security; 2, 3
    and 4 common days; exactly half the days missing (not short) and one more (short);
    a constant over the common days; 14 securities (one strip of the kernel) and 20 (two).
    """
    from impact.inference import mean_pairwise_correlation

    assert kernels.CORR_STRIP < 20
    rng = np.random.default_rng(21)
    d = 30
    for trial in range(6):
        x = rng.normal(size=(n, d)) + rng.normal(size=(1, d))
        x[rng.random(x.shape) < 0.1] = np.nan
        x[0, :] = rng.normal(size=d)  # complete
        keep = {1: [0, 1, 2], 2: [0, 1, 2, 3], 3: [1, 2, 9, 10, 11], 4: [2, 3, 20],
                5: list(range(15)), 6: list(range(14)), 7: [5, 6], 8: [0, 3, 5, 7, 11, 13]}
        for i, days in keep.items():
            row = x[i].copy()
            x[i] = np.nan
            x[i, days] = np.where(np.isnan(row[days]), rng.normal(size=len(days)), row[days])
        x[8, [0, 3, 5]] = 0.75  # constant over its common days with security 1
        if trial % 2:
            x = x[rng.permutation(n)]
        u = rng.random((n, 3)) < 0.85
        u[:, 0] = True
        s, c = et._corr_sums(x, u)
        for j in range(3):
            cols = np.flatnonzero(u[:, j])
            want = mean_pairwise_correlation(x[cols].T)
            if want is None:
                assert c[j] == 0
            else:
                assert close(s[j] / c[j], want), (trial, j)
            # the count: pairs with 3 common days and non-zero variances
            valid = 0
            for a in cols:
                for b in cols:
                    both = np.isfinite(x[a]) & np.isfinite(x[b])
                    if a != b and both.sum() >= 3 and np.std(x[a, both]) > 0 and \
                            np.std(x[b, both]) > 0:
                        valid += 1
            assert c[j] == valid, (trial, j)


def test_bad_input() -> None:
    est, ev = (-60, -4), (-3, 5)
    panel, _ = build(make_study(6, est, ev), est, ev)
    with pytest.raises(ValueError, match="unknown"):
        event_tests(panel, estimation=est, event=ev, windows=[(0, 0)], tests=["wilcoxon"])
    with pytest.raises(ValueError, match="before its start"):
        event_tests(panel, estimation=est, event=ev, windows=[(1, 0)])


def test_reason_texts_per_cell() -> None:
    """Reasons that carry a number (the mean correlation, a security's index) are made
    for their own cells, beside cells of other reasons and of none, as the reference."""
    est, ev = (-120, -11), (-5, 10)
    study = make_study(1, est, ev)
    s0 = 300
    # a twin of ticker 3: the same returns but on the event window's days, so the two
    # have estimation-window residuals correlated 1 and different SCARs
    t3 = study.tickers[3]
    ret = t3.ret.copy()
    days = np.arange(s0 + ev[0], s0 + ev[1] + 1) - t3.lo
    ret[days] = np.random.default_rng(0).normal(0.0, 0.02, len(days))
    twin = Ticker(t3.lo, len(study.ret), ret, t3.mkt.copy())
    study.tickers.append(twin)
    study.ret = np.concatenate([study.ret, twin.ret])
    study.mkt = np.concatenate([study.mkt, twin.mkt])
    k = len(study.tickers) - 1
    study.pairs.extend([(17, 3, s0), (17, k, s0), (18, 4, s0), (18, 5, s0), (18, 6, s0)])
    # event 19: a security of zero residual variance in another place than event 16's
    study.pairs.extend([(19, 28, 290), (19, 29, 290), (19, 30, 290), (19, 27, 290)])
    panel, fits = build(study, est, ev, zero_var=frozenset({(16, 27), (19, 27)}))
    tests = list(ENGINE_TESTS)
    got = event_tests(panel, estimation=est, event=ev, windows=WINDOWS_A, tests=tests)
    compare(got, fits, int(panel.event.max()) + 1, WINDOWS_A, tests)
    kp = got.filter(pl.col("test") == "kp_bmp")
    why = kp.filter(pl.col("event") == 17)["reason"].unique().to_list()
    assert "mean residual correlation 1.0000 gives no valid adjustment" in why, why
    assert "ok" in kp.filter(pl.col("event") == 18)["status"].to_list()
    zero = {r for r in got["reason"].unique().to_list() if "zero variance of the CAR" in r}
    assert len(zero) == 2, zero


def test_overlapping_windows() -> None:
    """Where the estimation and event windows overlap, the ranks use the event window's ARs.

    (An estimation window ending after the event window is not compared: the reference's
    series, as built here, stops at the event window's end.)
    """
    est, ev = (-60, -2), (-3, 5)
    panel, fits = build(make_study(7, est, ev), est, ev)
    windows = [(0, 0), (-1, 1)]
    tests = list(ENGINE_TESTS)
    got = event_tests(panel, estimation=est, event=ev, windows=windows, tests=tests)
    compare(got, fits, int(panel.event.max()) + 1, windows, tests)


def test_event_window_only() -> None:
    """Without a test on estimation-window residuals only the event window is read."""
    est, ev = (-120, -11), (-5, 10)
    panel, fits = build(make_study(8, est, ev), est, ev)
    tests = ["t_cs", "patell", "bmp"]
    got = event_tests(panel, estimation=est, event=ev, windows=WINDOWS_A, tests=tests)
    compare(got, fits, int(panel.event.max()) + 1, WINDOWS_A, tests)


def test_speed_smoke() -> None:
    """A larger random panel runs through (not timed)."""
    rng = np.random.default_rng(9)
    n_tk, n_s = 300, 700
    n_pairs = 30_000
    market = rng.normal(0, 0.01, n_s)
    ret = (rng.normal(0, 0.02, (n_tk, n_s)) + market).ravel()
    mkt = np.tile(market, n_tk)
    ret[rng.random(ret.size) < 0.005] = np.nan
    tk = rng.integers(0, n_tk, n_pairs)
    ev = np.repeat(np.arange(n_pairs // 100), 100)
    day0 = np.repeat(rng.integers(260, n_s - 11, n_pairs // 100), 100)
    panel = PanelArrays(
        ret=ret, mkt=mkt, event=ev, day0_pos=tk * n_s + day0, lo_pos=tk * n_s,
        hi_pos=tk * n_s + n_s - 1, ok=rng.random(n_pairs) < 0.98,
        nobs=np.full(n_pairs, 230), alpha=rng.normal(0, 1e-3, n_pairs),
        beta=rng.uniform(0.5, 1.5, n_pairs), sigma=rng.uniform(0.01, 0.03, n_pairs),
        rbar_m=rng.normal(0, 1e-3, n_pairs), s_mm=rng.uniform(0.02, 0.03, n_pairs))
    got = event_tests(panel, estimation=(-250, -11), event=(-5, 10),
                      windows=[(-1, 1), (0, 0), (0, 1), (-5, 10), (0, 10)])
    assert got.height == (n_pairs // 100) * 5 * len(ENGINE_TESTS)
    multi_day = (pl.col("test") == "corrado") & (pl.col("window_start") != pl.col("window_end"))
    rest = got.filter(~multi_day)
    ok = rest.filter(pl.col("status") == "ok")
    assert ok.height == rest.height
    assert got.filter(multi_day)["reason"].unique().to_list() == [
        "one-day test: see corrado_cowan for a window"]
    assert ok["p"].is_between(0, 1).all()


def test_mean_pairwise_correlation_several_gram_blocks() -> None:
    """An event of 300 securities: the kernel's Gram rows come in two blocks of strips
    (``CORR_BLOCK`` products each), with gapped, short and complete securities."""
    from impact.inference import mean_pairwise_correlation

    n, d = 300, 24
    assert kernels.CORR_BLOCK // n < n  # more than one block
    rng = np.random.default_rng(22)
    x = rng.normal(size=(n, d)) + rng.normal(size=(1, d))
    x[rng.random(x.shape) < 0.08] = np.nan
    x[rng.choice(n, 20, replace=False)] = rng.normal(size=(20, d))  # complete
    short = rng.choice(n, 15, replace=False)
    x[short, 5:] = np.nan  # 5 days at most
    u = rng.random((n, 2)) < 0.9
    s, c = et._corr_sums(x, u)
    for j in range(2):
        want = mean_pairwise_correlation(x[np.flatnonzero(u[:, j])].T)
        assert want is not None and close(s[j] / c[j], want), j
