"""Edge cases of the compiled kernels (impact.engine_kernels) against the per-pair reference.

The reference is ``impact.estimation.fit``/``car`` for the dense model and
``impact.inference.run_tests``/``mean_pairwise_correlation`` for the test battery;
``tests/test_engine_tests.py`` provides the study helpers (``build``, ``compare``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from scipy import stats

import impact.engine_tests as et
import tests.test_engine_tests as tet
from impact import engine_kernels as kernels
from impact.engine import Exclusions, _window_sums, dense_market_model, stable_order
from impact.engine_tests import ENGINE_TESTS, event_tests
from impact.estimation import EventSeries, car, fit
from impact.inference import mean_pairwise_correlation
from tests.test_engine_tests import Study, Ticker, build, compare, series

TESTS = list(ENGINE_TESTS)


# --------------------------------------------------------------------------- helpers


def wide_series(t: Ticker, day0: int, est: tuple[int, int], ev: tuple[int, int],
                excluded: list[tuple[int, int]] | None = None) -> EventSeries | None:
    """As ``tests.test_engine_tests.series``, but over both windows whatever their order
    (an estimation window inside, after or past the end of the event window)."""
    return series(t, day0, est, ev, excluded, wide=True)


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """``build`` uses :func:`wide_series` for the reference fits."""
    monkeypatch.setattr(tet, "series", wide_series)


def make_tickers(seed: int, n: int, n_sessions: int, gap: float = 0.03,
                 mgap: float = 0.01, stale: int = 0) -> list[Ticker]:
    """Tickers with random spans, gaps, benchmark gaps and (``stale``) tied zero days."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0003, 0.011, n_sessions)
    out: list[Ticker] = []
    off = 0
    for _ in range(n):
        lo = int(rng.integers(0, 20))
        hi = n_sessions - 1 - int(rng.integers(0, 20))
        idx = np.arange(lo, hi + 1)
        mkt = market[idx].copy()
        ret = (rng.normal(0, 0.003) + rng.uniform(0.4, 1.6) * mkt
               + 0.015 * rng.standard_t(5, len(idx)))
        ret[rng.random(len(idx)) < gap] = np.nan
        mkt[rng.random(len(idx)) < mgap] = np.nan
        if stale:
            days = rng.choice(len(idx), stale, replace=False)
            ret[days] = 0.0
            mkt[days] = 0.0
        out.append(Ticker(lo, off, ret, mkt))
        off += len(idx)
    return out


def make(tks: list[Ticker], pairs: list[tuple[int, int, int]]) -> Study:
    return Study(tks, np.concatenate([t.ret for t in tks]),
                 np.concatenate([t.mkt for t in tks]), pairs)


def random_events(seed: int, tks: list[Ticker], sizes: list[int],
                  day0: tuple[int, int]) -> list[tuple[int, int, int]]:
    """Events of the given sizes, one day 0 each, securities in random order."""
    rng = np.random.default_rng(seed)
    pairs: list[tuple[int, int, int]] = []
    for code, n in enumerate(sizes):
        d = int(rng.integers(*day0))
        pairs.extend((code, int(k), d) for k in rng.choice(len(tks), n, replace=False))
    return pairs


def check(study: Study, est: tuple[int, int], ev: tuple[int, int],
          windows: list[tuple[int, int]], tests: list[str] = TESTS,
          excl: dict[int, list[tuple[int, int]]] | None = None) -> dict[str, float]:
    panel, fits = build(study, est, ev, excl)
    assert panel.ok.any()
    got = event_tests(panel, estimation=est, event=ev, windows=windows, tests=tests)
    return compare(got, fits, int(panel.event.max()) + 1, windows, tests)


# --------------------------------------------------------------------------- event_tests


@pytest.mark.usefixtures("wide")
@pytest.mark.parametrize(("est", "ev", "windows"), [
    ((-60, 8), (-3, 5), [(0, 0), (-1, 1), (-3, 5), (5, 5)]),  # estimation past the end
    ((-60, 5), (-3, 5), [(0, 0), (-3, 5), (-3, -3)]),  # ends with the event window
    ((-10, 10), (-12, 12), [(0, 0), (-12, 12), (-1, 3)]),  # estimation inside the event
    ((6, 80), (-3, 5), [(0, 0), (-3, 5), (4, 7)]),  # estimation after the event window
    ((-3, 5), (-3, 5), [(0, 0), (-1, 1), (5, 5)]),  # the same window
])
def test_overlapping_and_reordered_windows(est: tuple[int, int], ev: tuple[int, int],
                                           windows: list[tuple[int, int]]) -> None:
    """Rank panel columns (``cols``, ``k_col``, ``rank_split``) for every window order."""
    tks = make_tickers(1, 45, 330, stale=6)
    pairs = random_events(2, tks, [1, 2, 3, 9, 30, 12, 2, 25], (110, 300))
    worst = check(make(tks, pairs), est, ev, windows)
    assert {"corrado", "corrado_cowan", "kp_bmp", "gsign"} <= set(worst)


@pytest.mark.usefixtures("wide")
@pytest.mark.parametrize(("est", "ev"), [((-120, -11), (-5, 10)), ((-20, 10), (-5, 5)),
                                         ((3, 40), (-3, 2))])
def test_event_windows_outside_the_data(est: tuple[int, int], ev: tuple[int, int]) -> None:
    """Day 0 around (and beyond) each ticker's first and last session; test windows
    partly or wholly outside the event window."""
    tks = make_tickers(3, 40, 300, gap=0.05, mgap=0.02)
    rng = np.random.default_rng(4)
    pairs: list[tuple[int, int, int]] = []
    for code in range(15):
        where = code % 3
        for k in rng.choice(40, int(rng.integers(1, 20)), replace=False):
            t = tks[k]
            d = (int(rng.integers(t.lo - 12, t.lo + 12)) if where == 0
                 else int(rng.integers(t.hi - 12, t.hi + 12)) if where == 1
                 else int(rng.integers(t.lo, t.hi)))
            pairs.append((code, int(k), d))
    v0, v1 = ev
    windows = [(v0, v1), (0, 0), (v1, v1), (v0 - 1, v0), (v1, v1 + 2), (v1 + 1, v1 + 3)]
    check(make(tks, pairs), est, ev, windows)


def test_short_estimation_window() -> None:
    """Four estimation days (Patell not computed, pairs with fewer than 3 common days)."""
    tks = make_tickers(5, 40, 200, gap=0.25, mgap=0.05)
    pairs = random_events(6, tks, [2, 3, 5, 8, 20, 35], (20, 190))
    worst = check(make(tks, pairs), (-6, -3), (-2, 2), [(0, 0), (-2, 2), (1, 2)])
    assert "kp_bmp" in worst


def test_exclusions_of_the_whole_estimation_window() -> None:
    """Pairs whose exclusions leave fewer than 4 returns (not ok) among partly excluded ones."""
    est, ev = (-60, -6), (-5, 5)
    tks = make_tickers(7, 30, 260, gap=0.02)
    pairs = random_events(8, tks, [3, 10, 25], (90, 240))
    rng = np.random.default_rng(9)
    excl: dict[int, list[tuple[int, int]]] = {}
    for i in range(len(pairs)):
        u = rng.random()
        if u < 0.2:
            excl[i] = [(est[0] - 5, est[1] + 3)]  # everything
        elif u < 0.3:
            excl[i] = [(est[0], est[1] - 3)]  # all but 3 days: insufficient
        elif u < 0.7:
            a = int(rng.integers(est[0], est[1]))
            excl[i] = [(a, a + int(rng.integers(0, 30))), (est[1] - 2, est[1] + 8)]
    panel, fits = build(make(tks, pairs), est, ev, excl)
    assert 0 < int(panel.ok.sum()) < len(pairs) - 5
    windows = [(0, 0), (-1, 1), (-5, 5)]
    got = event_tests(panel, estimation=est, event=ev, windows=windows)
    compare(got, fits, int(panel.event.max()) + 1, windows, TESTS)


def test_large_events_and_chunks_smaller_than_an_event(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """Events of 400 securities (each larger than CHUNK_ELEMS) with small ones, one or two
    threads: every chunking equals the reference."""
    est, ev = (-100, -11), (-5, 10)
    tks = make_tickers(10, 420, 260, gap=0.01, mgap=0.003)
    sizes = [400, 1, 2, 3, 250, 2, 37, 400, 5]
    panel, fits = build(make(tks, random_events(11, tks, sizes, (120, 245))), est, ev)
    windows = [(0, 0), (-1, 1), (-5, 10)]
    seen: list[int] = []
    orig = et._chunk

    def spy(ctx: et._Ctx, rows: np.ndarray, seg: np.ndarray, events: np.ndarray) -> et._Out:
        seen.append(len(rows) * ctx.ltot)
        return orig(ctx, rows, seg, events)

    monkeypatch.setattr(et, "_chunk", spy)
    base = None
    for chunk, workers in ((1 << 19, 1), (1000, 2), (1, 2)):
        monkeypatch.setattr(et, "CHUNK_ELEMS", chunk)
        monkeypatch.setattr(et, "WORKERS", workers)
        seen.clear()
        got = event_tests(panel, estimation=est, event=ev, windows=windows)
        if base is None:
            compare(got, fits, len(sizes), windows, TESTS)
            base = got
        else:
            assert max(seen) > chunk  # a single event larger than a chunk
            assert got.drop("statistic", "p").equals(base.drop("statistic", "p"))
            for key in ("statistic", "p"):
                a, b = got[key].to_numpy(), base[key].to_numpy()
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gap", [0.0, 0.02, 0.3])
def test_larger_event_before_smaller_in_a_chunk(monkeypatch: pytest.MonkeyPatch,
                                                gap: float) -> None:
    """Work buffers sized for the largest event and reused: events in decreasing size
    (the engine orders them increasing) leak nothing into the next event."""
    est, ev = (-100, -11), (-5, 10)
    tks = make_tickers(20, 100, 260, gap=gap, mgap=gap / 3)
    sizes = [int(s) for s in np.random.default_rng(21).integers(1, 80, 14)]
    panel, fits = build(make(tks, random_events(22, tks, sizes, (120, 245))), est, ev)
    orig = et._chunk
    reordered: list[bool] = []

    def descending(ctx: et._Ctx, rows: np.ndarray, seg: np.ndarray, events: np.ndarray
                   ) -> et._Out:
        size = np.diff(np.append(seg, len(rows)))
        order = np.argsort(-size, kind="stable")
        new_rows = np.concatenate([rows[seg[i]:seg[i] + size[i]] for i in order])
        reordered.append(len(order) > 1 and bool(np.any(np.diff(size[order]) < 0)))
        new_seg = np.cumsum(size[order]) - size[order]
        return orig(ctx, new_rows, new_seg, events[order])

    monkeypatch.setattr(et, "_chunk", descending)
    monkeypatch.setattr(et, "WORKERS", 1)
    windows = [(0, 0), (-1, 1), (-5, 10), (3, 4)]
    got = event_tests(panel, estimation=est, event=ev, windows=windows)
    assert any(reordered)
    compare(got, fits, len(sizes), windows, TESTS)


def test_main_thread_scratch_reused_across_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """One thread, calls with large then small gathered shapes (the ``_scratch`` buffers)."""
    monkeypatch.setattr(et, "WORKERS", 1)
    tks = make_tickers(30, 60, 300, gap=0.05)
    big = make(tks, random_events(31, tks, [60, 50], (200, 280)))
    small = make(tks, random_events(32, tks, [3, 7, 2], (100, 280)))
    check(big, (-180, -11), (-10, 15), [(0, 0), (-10, 15)])
    check(small, (-30, -6), (-2, 3), [(0, 0), (-1, 1)])
    check(big, (-180, -11), (-10, 15), [(0, 0), (-10, 15)])
    assert not vars(et._SCRATCH)  # the calling thread keeps no work arrays afterwards


# --------------------------------------------------------------------------- kernels


def _pairwise(x: np.ndarray, used: np.ndarray) -> Iterator[tuple[int, float | None]]:
    for j in range(used.shape[1]):
        cols = np.flatnonzero(used[:, j])
        yield j, (mean_pairwise_correlation(x[cols].T) if x.shape[1] else None)


def test_corr_sums_small_shapes() -> None:
    """1-6 securities, 0-6 days, gaps, all-missing rows, exact constants (zero variance)."""
    rng = np.random.default_rng(40)
    computed = 0
    for _ in range(600):
        n, d, w = int(rng.integers(1, 7)), int(rng.integers(0, 7)), int(rng.integers(1, 4))
        x = rng.normal(size=(n, d))
        if rng.random() < 0.5:
            x = np.round(x)  # ties, constant rows, zeros
        x[rng.random(x.shape) < rng.random() * 0.6] = np.nan
        if rng.random() < 0.3:
            x[rng.integers(n)] = 0.5
        used = rng.random((n, w)) < 0.8
        s, c = et._corr_sums(x, used)
        for j, want in _pairwise(x, used):
            if want is None:
                assert c[j] == 0, (x, used[:, j], s[j], c[j])
            else:
                computed += 1
                assert c[j] > 0 and tet.close(s[j] / c[j], want), (x, used[:, j], s[j], c[j])
    assert computed > 100


def test_corr_event_work_buffer_reused_from_larger_events() -> None:
    """One work buffer for events of decreasing size, as ``event_sums`` does."""
    rng = np.random.default_rng(41)
    d, nw = 30, 2
    sizes = [40, 25, 25, 7, 3, 2, 1]
    n_max = max(sizes)
    work = rng.normal(size=kernels.corr_work(n_max, d, nw)) * 1e3  # garbage, not NaN
    iwork = rng.integers(0, d, n_max * (d + 2)).astype(np.int64)
    for k, n in enumerate(sizes):
        x = rng.normal(size=(n, d)) + rng.normal(size=(1, d))
        x[rng.random(x.shape) < (0.3 if k % 2 else 0.02)] = np.nan
        used = np.ascontiguousarray(rng.random((n, nw)) < 0.85)
        s, c = np.zeros(nw), np.zeros(nw)
        kernels.corr_event(np.ascontiguousarray(x), 0, n, 0, d, used, s, c, work, iwork)
        for j, want in _pairwise(x, used):
            if want is None:
                assert c[j] == 0
            else:
                assert tet.close(s[j] / c[j], want), (n, j, s[j] / c[j], want)


def test_rank_dev_scratch_reuse_ties_and_signed_zeros() -> None:
    """``_rank_dev`` on a large then smaller shapes (its work arrays are reused), with ties,
    -0.0/0.0, all-missing rows and a column subset."""
    rng = np.random.default_rng(42)
    for rows, cols in ((500, 300), (3, 2), (40, 1), (1, 7), (200, 65)):
        x = np.round(rng.normal(size=(rows, cols)) * 4) / 4
        x[x == 0] = np.where(rng.random(int((x == 0).sum())) < 0.5, -0.0, 0.0)
        if cols > 2:  # rows whose only tie is -0.0 and 0.0 (no other tie to trigger a re-rank)
            x[1::2] = rng.normal(size=(len(x[1::2]), cols))
            x[1::2, 0], x[1::2, cols - 1] = -0.0, 0.0
        x[rng.random(x.shape) < 0.15] = np.nan
        x[0] = np.nan
        sub = np.arange(cols - 1, -1, -2, dtype=np.int64)
        for c in (None, sub):
            dev = et._rank_dev(x, c).copy()
            v = x if c is None else x[:, c]
            fin = np.isfinite(v)
            want = stats.rankdata(v, axis=1, nan_policy="omit") - (fin.sum(1)[:, None] + 1) / 2
            assert np.array_equal(dev, np.where(fin, want, np.nan), equal_nan=True)


def test_rank_keys_runs_of_columns_and_infinities() -> None:
    """``rank_keys`` reads ``cols`` run by run of consecutive columns (the engine's rank panel
    is two runs) and takes +-inf, as NaN, for missing: the ranks equal ``rankdata`` of the
    finite values for runs of any length, at either end, out of order or of one column."""
    rng = np.random.default_rng(44)
    x = rng.normal(size=(120, 40))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    x[rng.random(x.shape) < 0.05] = -np.inf
    x[:10, 3] = x[:10, 9]  # ties
    x[10:20, 0], x[10:20, 39] = -0.0, 0.0
    finite = np.where(np.isfinite(x), x, np.nan)
    for cols in (np.r_[0:24, 29:40], np.r_[3:6, 9:11, 0:2], np.r_[39, 0:39], np.r_[17],
                 np.r_[39:-1:-1], rng.permutation(40)):
        c = np.asarray(cols, dtype=np.int64)
        dev = et._rank_dev(x, c)
        v = finite[:, c]
        fin = np.isfinite(v)
        want = stats.rankdata(v, axis=1, nan_policy="omit") - (fin.sum(1)[:, None] + 1) / 2
        assert np.array_equal(dev, np.where(fin, want, np.nan), equal_nan=True), cols


@pytest.mark.parametrize("n_codes", [1, 3, 1 << 16, (1 << 16) + 1, 1 << 20])
def test_stable_order_is_numpys_stable_argsort(n_codes: int) -> None:
    """Both paths (16-bit radix up to 2^16 codes, else numpy's own), ties in input order."""
    rng = np.random.default_rng(n_codes)
    codes = rng.integers(0, n_codes, 50_000).astype(np.int64)
    codes[:3] = n_codes - 1  # the largest code, tied
    np.testing.assert_array_equal(stable_order(codes, n_codes),
                                  np.argsort(codes, kind="stable"))


def test_window_sums_empty_and_one_session_series() -> None:
    """Series of 0 and 1 sessions, every query including a_pos == b_pos, in any order."""
    rng = np.random.default_rng(43)
    span = np.array([0, 1, 3, 0, 5, 1, 0, 40, 2, 1], dtype=np.int64)
    n = int(span.sum())
    ret, mkt = rng.normal(0, 0.02, n), rng.normal(0, 0.01, n)
    ret[rng.random(n) < 0.2] = np.nan
    mkt[rng.random(n) < 0.1] = np.nan
    starts = np.cumsum(span) - span
    q = np.array([(t, starts[t] + i, starts[t] + j) for t in range(len(span))
                  for i in range(span[t] + 1) for j in range(i, span[t] + 1)], dtype=np.int64)
    q = q[rng.permutation(len(q))]
    out, mu = _window_sums(ret, mkt, span, q[:, 0], q[:, 1], q[:, 2])
    for t in range(len(span)):
        sl = slice(starts[t], starts[t] + span[t])
        use = np.isfinite(ret[sl]) & np.isfinite(mkt[sl])
        want_r = ret[sl][use].mean() if use.any() else 0.0
        want_m = mkt[sl][use].mean() if use.any() else 0.0
        assert tet.close(mu["r"][t], want_r) and tet.close(mu["m"][t], want_m)
    for k, (t, a, b) in enumerate(q):
        r, m = ret[a:b], mkt[a:b]
        use = np.isfinite(r) & np.isfinite(m)
        rc, mc = r[use] - mu["r"][t], m[use] - mu["m"][t]
        cnt = int(use.sum())
        want = [cnt, rc.sum(), mc.sum(), (rc * mc).sum() - cnt * mu["rm"][t],
                (mc * mc).sum() - cnt * mu["mm"][t], (rc * rc).sum() - cnt * mu["rr"][t]]
        np.testing.assert_allclose(out[:, k], want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("est", "ev", "windows"), [
    ((-120, -11), (-5, 10), [(-5, 10), (0, 0), (-1, 1)]),
    ((-6, -3), (-2, 2), [(-2, 2), (0, 0)]),  # 4 estimation days: nobs 4 at most
    ((-20, 10), (-5, 5), [(-5, 5), (0, 0), (5, 5)]),  # estimation past the event window
    ((3, 40), (-3, 2), [(-3, 2), (2, 2)]),  # estimation after it
])
def test_dense_model_edge_spans(est: tuple[int, int], ev: tuple[int, int],
                                windows: list[tuple[int, int]]) -> None:
    """``window_sums`` and ``ar_cars``: day 0 before the first / after the last session,
    short estimation windows, exclusions of everything, against fit and car."""
    tks = make_tickers(50, 25, 260)
    rng = np.random.default_rng(51)
    pairs: list[tuple[int, int]] = []
    for _ in range(220):
        k = int(rng.integers(0, len(tks)))
        t, u = tks[k], rng.random()
        d = (int(rng.integers(t.lo - 45, t.lo + 25)) if u < 0.25
             else int(rng.integers(t.hi - 25, t.hi + 45)) if u < 0.5
             else int(rng.integers(t.lo, t.hi)))
        pairs.append((k, d))
    excl = {i: [(est[0] - 3, est[1] + 3)] for i in range(0, len(pairs), 17)}
    excl.update({i: [(est[0] + 1, est[0] + 2), (est[1] - 1, est[1])]
                 for i in range(5, len(pairs), 13)})
    items = [(i, a, b) for i, runs in excl.items() for a, b in runs]
    ex = Exclusions(pair=np.array([i for i, _, _ in items], dtype=np.int64),
                    lo=np.array([a for _, a, _ in items], dtype=np.int64),
                    hi=np.array([b for _, _, b in items], dtype=np.int64))
    m = dense_market_model(
        np.concatenate([t.ret for t in tks]), np.concatenate([t.mkt for t in tks]),
        np.array([len(t.ret) for t in tks]), np.array([k for k, _ in pairs]),
        np.array([d - tks[k].lo for k, d in pairs]), np.ones(len(pairs), dtype=bool),
        estimation=est, event=ev, car_windows=windows, exclusions=ex)
    row_of = {int(p): r for r, p in enumerate(m.okp)}
    nw = len(windows)
    n_ok = n_car = 0
    for i, (k, day0) in enumerate(pairs):
        s = wide_series(tks[k], day0, est, ev, excl.get(i))
        try:
            f = fit(s, "market", est, ev) if s is not None else None
        except ValueError:
            f = None
        assert (f is not None) == bool(m.ok[i]), (i, int(m.status[i]))
        if f is None:
            continue
        n_ok += 1
        assert m.nobs[i] == f.nobs
        for got, want in ((m.alpha[i], f.alpha), (m.beta[i], f.beta),
                          (np.sqrt(m.s2[i]), f.sigma)):
            assert tet.close(got, want), (i, got, want)
        r = row_of[i]
        sel = np.isin(m.rel, f.ev_rel_day)
        assert np.array_equal(m.inside[r], sel)
        fin = np.isfinite(f.ev_ar)
        assert np.array_equal(np.isfinite(m.ar[r][sel]), fin)
        np.testing.assert_allclose(m.ar[r][sel][fin], f.ev_ar[fin], rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(m.var_ar[r][sel][fin], np.diag(f.ev_cov)[fin], rtol=1e-9)
        for w, win in enumerate(windows):
            c, j = car(f, win), i * nw + w
            assert m.cars["n_days"][j] == c.n_days, (i, win)
            assert (m.cars["status"][j] == 0) == (c.status == "ok"), (i, win)
            if c.status == "ok":
                n_car += 1
                got = {k: m.cars[k][j] for k in ("car", "var_car")}
                got["t"] = got["car"] / np.sqrt(got["var_car"])  # as the view engine_car
                for key, want in (("car", c.car), ("var_car", c.var), ("t", c.t)):
                    assert tet.close(got[key], want), (i, win, key)
            else:
                assert m.cars["reason"][j] == (1 if "sessions have prices" in c.reason else 2)
    assert n_ok > 50 and n_car > 50
    assert int((m.status == 1).sum()) > 10  # insufficient: short histories, exclusions


def test_correlation_work_grows_linearly_with_the_event() -> None:
    """The correlation kernel's memory is O(N D) per event, not O(N^2).

    (Before the Gram products were blocked, an event of 6,000 securities added about
    1.1 GB; 20,000 securities would have needed 13 GB per thread.)
    """
    d, nw = 240, 5
    small, big = kernels.corr_work(2_000, d, nw), kernels.corr_work(20_000, d, nw)
    assert big / small < 10.5
    assert big * 8 < 150 * 2**20  # doubles, for 20,000 securities x 240 days


def test_correlation_blocks_of_a_large_event() -> None:
    """An event of 700 securities: the gapped securities span several blocks."""
    rng = np.random.default_rng(43)
    n, d = 700, 60
    x = rng.normal(size=(n, d)) + rng.normal(size=(1, d))
    x[rng.random(x.shape) < 0.02] = np.nan
    x[5, :] = np.nan  # no residual at all
    x[9, 3:] = 0.25  # nearly constant
    used = np.ascontiguousarray(rng.random((n, 2)) < 0.9)
    gapped = int(np.isnan(x).any(axis=1).sum())
    assert gapped > 3 * (kernels.CORR_BLOCK // n)  # several blocks
    s, c = et._corr_sums(x, used)
    for j in range(2):
        want = mean_pairwise_correlation(x[used[:, j]].T)
        assert want is not None and tet.close(s[j] / c[j], want), (j, s[j] / c[j], want)


def test_events_whose_smaller_one_needs_more_correlation_work() -> None:
    """A chunk's work buffer is sized for its largest event and must serve the smaller
    ones: corr_work is monotone in the event size (it once was not, with blocks of
    CORR_BLOCK // n rows, and 257 then 256 securities found the buffer short)."""
    d, nw = 30, 2
    sizes = [*range(1, 600), *range(8_000, 8_400), kernels.CORR_BLOCK, kernels.CORR_BLOCK + 1]
    work = [kernels.corr_work(n, d, nw) for n in sizes]
    assert all(b >= a for a, b in itertools.pairwise(work))
    tks = make_tickers(1, 600, 200, gap=0.05)
    est, ev = (-100, -11), (-5, 10)
    panel, fits = build(make(tks, random_events(2, tks, [257, 256], (120, 180))), est, ev)
    got = event_tests(panel, estimation=est, event=ev, windows=[(0, 0)], tests=["kp_bmp"])
    compare(got, fits, 2, [(0, 0)], ["kp_bmp"])


def test_rank_keys_extreme_ranges() -> None:
    """Rows whose range overflows (+-1e308), underflows (subnormals), mixes tiny and huge
    magnitudes or holds one finite value: the 32-bit buckets never invert two values, and
    rows with values in one bucket are ranked exactly (as ``rankdata``)."""
    rng = np.random.default_rng(45)
    tiny = np.finfo(float).smallest_subnormal
    rows = [
        np.r_[1e308, -1e308, 0.0, 1.0, -1.0, 1e307, -1e307, 5.0],  # hi - lo overflows
        np.arange(8) * tiny,  # a subnormal range: (2^23 - 2) / range overflows
        np.r_[np.arange(7) * tiny, 0.5],
        np.r_[1e-300, 2e-300, 3e-300, 1e300, -1e-300, 0.0, -0.0, np.nan],
        np.r_[np.nan, 3.0, np.nan, np.inf, -np.inf, np.nan, np.nan, np.nan],  # one finite
        np.r_[1.0, np.nextafter(1.0, 2.0), 1.0 + 2**-30, 2.0, 1.5, 1.25, 1.0, 0.0],
    ]
    x = np.vstack(rows + [rng.standard_t(2, size=8) * 10.0 ** rng.integers(-5, 5)
                          for _ in range(40)])
    finite = np.where(np.isfinite(x), x, np.nan)
    dev = et._rank_dev(x)
    fin = np.isfinite(finite)
    want = stats.rankdata(finite, axis=1, nan_policy="omit") - (fin.sum(1)[:, None] + 1) / 2
    assert np.array_equal(dev, np.where(fin, want, np.nan), equal_nan=True)
