"""Set-based cross-sectional test battery of the market model, per event.

The per-pair reference is :func:`impact.inference.run_tests` (one call per event
and window, on the :class:`impact.estimation.Fit` of each of the event's
securities). :func:`event_tests` computes the same tests for every event of a
study at once, from the dense return arrays and the per-pair fit results the
set-based engine holds (:class:`PanelArrays`): the Python loops run over chunks of
thousands of pairs and over cache-sized batches of events (one event at a time only
for events of more than ~180 securities), never over pairs or securities.

Tests (names of :data:`impact.inference.TEST_NAMES`): ``t_cs``, ``patell``,
``bmp``, ``kp_bmp``, ``gsign``, ``corrado`` (one-day windows) and
``corrado_cowan``, with the reference's definitions, "not computed" reasons and
p-value conventions.

Method
------
The ``ok`` pairs are sorted by event (inside an event, by their position in the
input, which is the security order of the reference: "security #i" in a reason
is the i-th ok pair of the event). Events are processed in chunks of whole events
of similar size (:data:`CHUNK_ELEMS` gathered values each), on a small thread pool
(numpy releases the GIL in the heavy operations):

1. *Residual pass.* Each pair's returns and benchmark returns from the first
   gathered day to the last are copied with one fancy index into a sliding-window
   view of the dense arrays (the estimation window is gathered only when a test
   needs its residuals); residuals and ARs are ``ret - (alpha + beta mkt)``, NaN at
   gaps and outside the ticker's span. The CARs, the count of missing ARs and
   ``sum_W (R_m - Rbar_m)`` of every window are products with a (days x windows)
   0/1 matrix; ``Var(CAR) = s^2 [L + L^2/L1 + (sum_W (R_m - Rbar_m))^2 / S_mm]``.
2. *Grouped moments* over each event's used securities: ``np.add.reduceat`` over
   the sorted pairs (two passes for the standard deviations, like numpy's).
3. *Ranks* (Corrado). Each pair's estimation residuals and event ARs are ranked
   exactly with two SIMD sorts and no argsort: the values, with their column index
   packed into the lowest mantissa bits, are sorted (exact unless two values agree
   to within those bits: such rows, i.e. ties, are ranked again by a stable argsort
   with tied values averaged), then the columns, with their sorted position
   packed in, are sorted back. The rank deviations are summed per (event, day);
   the securities not used in a window are subtracted. Rank deviations are
   multiples of 1/2, so every such sum is exact in any order.
4. *Mean pairwise correlation* (Kolari-Pynnönen), pairwise complete as
   :func:`impact.inference.mean_pairwise_correlation`: for two securities without
   a missing estimation-window day the correlation is ``z_i . z_j`` of their
   standardized residuals, so the sum over all such pairs costs O(N D) per event;
   the pairs with a security that misses days use the masked sums of
   :func:`_corr_sums` (O(N_gaps N D)), over events padded to the same size and
   stacked so that each product is one batched ``matmul``, in cache-sized batches
   (:data:`CORR_BLOCK`). The mean over a window's used securities is ``u' C u``
   over the valid correlations ``C``.

The results differ from the reference by rounding only (the rank statistics not
at all); see ``tests/test_engine_tests.py``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import special
from threadpoolctl import threadpool_limits

from impact.engine import Exclusions, check_window

__all__ = ["ENGINE_TESTS", "PanelArrays", "event_tests"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
_S = TypeVar("_S", bound=np.generic)

#: The tests :func:`event_tests` computes, in its default order.
ENGINE_TESTS: tuple[str, ...] = ("t_cs", "patell", "bmp", "kp_bmp", "gsign", "corrado",
                                 "corrado_cowan")

# name -> null distribution (as impact.inference._SPEC)
_DIST: dict[str, str] = {"t_cs": "t", "patell": "normal", "bmp": "t", "kp_bmp": "t",
                         "gsign": "normal", "corrado": "normal", "corrado_cowan": "normal"}

#: Gathered values (pairs x days) per chunk of whole events (an event larger than
#: that is a chunk of its own).
CHUNK_ELEMS = 1 << 19
#: Elements of one (events x rows x securities) correlation temporary (cache-sized);
#: events are batched, or processed in blocks of rows, to stay near it.
CORR_BLOCK = 1 << 15
#: Use the sparse sums for the missing values when they are fewer than
#: 1/SPARSE_RATIO of (securities x days with a missing value) of an event batch.
SPARSE_RATIO = 25
#: Threads over chunks (1: no pool).
WORKERS = max(1, min(2, os.cpu_count() or 1))
#: While the pool runs, limit numpy's OpenBLAS to one thread per caller (its own
#: threads on the small per-event products only contend with the pool's). This
#: changes the process-wide OpenBLAS setting for the duration of the call; it is
#: restored afterwards. No effect when numpy's BLAS is not its bundled OpenBLAS.
PIN_BLAS = True

_BIG = np.finfo(np.float64).max
_NONE = np.iinfo(np.int64).max

_NO_SECURITIES = "no securities"
_NO_COMPLETE = "no security has an abnormal return on every day of the window"
_FEW2 = "needs at least 2 securities"
_NOT_FINITE = "the statistic is not finite"


@dataclass(frozen=True)
class PanelArrays:
    """Dense returns of all series and the per-pair fit results, as the engine holds them.

    Attributes
    ----------
    ret
        Dense global layout: all tickers' sessions back to back; NaN = gap.
    mkt
        Same layout, the ticker's benchmark return; NaN = missing.
    event
        Per pair: event group code 0..E-1 (pairs sharing an event are tested together).
    day0_pos
        Per pair: index into ``ret``/``mkt`` of day 0 (may lie past ``hi_pos``).
    lo_pos, hi_pos
        Per pair: index of the ticker's first and last session.
    ok
        Per pair: the fit succeeded (the others are ignored by every test).
    nobs
        Per pair: usable estimation-window returns (L1).
    alpha, beta
        Market-model parameters.
    sigma
        Residual sd, ``s = sqrt(SSR / (nobs - 2))``.
    rbar_m
        Mean benchmark return over the usable estimation-window sessions.
    s_mm
        Sum over those sessions of ``(mkt - rbar_m)^2``.
    exclusions
        Estimation-window sessions each pair left out of its fit (their residuals
        are missing, as in the reference); ``None``: none.
    """

    ret: npt.NDArray[np.float64]
    mkt: npt.NDArray[np.float64]
    event: npt.NDArray[np.int64]
    day0_pos: npt.NDArray[np.int64]
    lo_pos: npt.NDArray[np.int64]
    hi_pos: npt.NDArray[np.int64]
    ok: npt.NDArray[np.bool_]
    nobs: npt.NDArray[np.int64]
    alpha: npt.NDArray[np.float64]
    beta: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64]
    rbar_m: npt.NDArray[np.float64]
    s_mm: npt.NDArray[np.float64]
    exclusions: Exclusions | None = None


# --------------------------------------------------------------------------- BLAS threads


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Limit BLAS to one thread while the worker threads run (threadpoolctl).

    numpy's OpenBLAS threads fight the two worker threads on the small per-event
    products (about 2x slower). OpenBLAS's setting is process-wide, so other threads
    doing BLAS at the same time are limited too; ``PIN_BLAS = False`` turns it off.
    """
    if not PIN_BLAS:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Ctx:
    """Everything a chunk needs: the gathered layout, the pair arrays and what to compute."""

    p: PanelArrays
    swv_ret: FloatArray  # (n + pads - ltot + 1, ltot) sliding-window view
    swv_mkt: FloatArray
    pad: int  # NaNs prepended to ret/mkt
    base: int  # relative day of the first gathered column
    ltot: int  # gathered columns
    est_off: int  # column of the first estimation-window day
    n_est: int  # D, estimation-window days
    ev_off: int  # column of the first event-window day
    n_ev: int  # event-window days
    event0: int  # relative day of the first event-window day
    windows: tuple[tuple[int, int], ...]
    need_rank: bool
    need_corr: bool
    need_share: bool
    # estimation-window days before the event window; first one after it (columns of est)
    rank_split: tuple[int, int]
    # exclusions: per pair the first interval and their count; per interval the columns
    ex_first: IntArray | None = None
    ex_count: IntArray | None = None
    ex_lo_col: IntArray | None = None
    ex_hi_col: IntArray | None = None


@dataclass
class _Out:
    """Per (event, window) sums over the used securities, for the events of a chunk."""

    events: IntArray  # (B,) event codes
    n_input: IntArray  # (B,) ok pairs
    n: IntArray  # (B, W) used pairs
    car_sum: FloatArray
    car_ssd: FloatArray
    n_pos: IntArray
    bad_first: IntArray  # position (in the event) of the first used pair with Var(CAR) <= 0
    scar_sum: FloatArray
    scar_ssd: FloatArray
    dof_bad: IntArray
    patell_den: FloatArray
    share_sum: FloatArray
    share_cnt: IntArray
    corr_sum: FloatArray
    corr_cnt: FloatArray
    k_s: FloatArray  # S(K)
    k_first: FloatArray  # Kbar on the window's first day
    k_sum: FloatArray  # sum of Kbar over the window


def _segment_sum(x: npt.NDArray[_S], seg: IntArray) -> npt.NDArray[_S]:
    """Sums of consecutive row segments starting at ``seg`` (all non-empty)."""
    out: npt.NDArray[_S] = np.add.reduceat(x, seg, axis=0)
    return out


def _bincount(idx: npt.NDArray[np.intp], weights: npt.NDArray[Any], size: int) -> FloatArray:
    """``np.bincount`` with weights (float64), of length ``size``."""
    out: FloatArray = np.bincount(idx, weights.ravel(), size).astype(np.float64, copy=False)
    return out


def _group_rows(x: npt.NDArray[np.generic], seg: IntArray) -> FloatArray:
    """Row sums of consecutive groups starting at ``seg``, for values summed exactly.

    The values must be multiples of 1/2 (rank deviations, counts) so that any order of
    summation gives the same result (``np.add.reduceat`` along the rows is slow).
    """
    n = x.shape[0]
    sizes = np.diff(np.append(seg, n))
    if sizes.size and np.all(sizes == sizes[0]):
        out: FloatArray = x.reshape(sizes.size, sizes[0], -1).sum(axis=1, dtype=np.float64)
        return out
    ind = np.zeros((sizes.size, n))
    ind[np.repeat(np.arange(sizes.size), sizes), np.arange(n)] = 1.0
    out = ind @ x.astype(np.float64, copy=False)
    return out


# --------------------------------------------------------------------------- ranks


def _rank_dev(x: FloatArray) -> tuple[FloatArray, BoolArray]:
    """Rank deviations ``K - (T + 1)/2`` of each row's finite values (0 where not finite).

    The ranks are those of ``scipy.stats.rankdata(row, nan_policy="omit")``
    (average ranks for ties) that the reference uses, T the number of finite values of
    the row.

    Parameters
    ----------
    x
        Matrix (rows x columns), NaN where missing; finite values must be below
        1e308 in absolute value.

    Returns
    -------
    (dev, finite)
        The deviations and ``np.isfinite(x)``.
    """
    cols = x.shape[1]
    bits = max(1, (cols - 1).bit_length())
    low = (1 << bits) - 1
    col = np.arange(cols, dtype=np.int64)
    fin = np.isfinite(x)
    t = fin.sum(axis=1)
    # missing values -> increasing sentinels near the largest double, one per column,
    # whose high bits all differ (so that they never look tied)
    top = int(np.array(np.finfo(np.float64).max).view(np.int64)) & ~low
    sentinel = (top - ((cols - col) << bits)).view(np.float64)
    v = np.where(fin, x, sentinel)
    v += 0.0  # -0.0 -> +0.0 (rankdata ties them)
    # the values with their column in the lowest `bits` mantissa bits, sorted: their order
    # is exact unless two values agree to within those bits (then the row is redone)
    key = v.view(np.int64)
    key &= np.int64(~low)
    key |= col
    v.sort(axis=1)
    near = (key[:, 1:] ^ key[:, :-1]).view(np.uint64) <= np.uint64(low)
    redo = np.flatnonzero(near.any(axis=1))
    # the columns with their sorted position packed in, sorted by column: the ranks
    if 2 * bits <= 16:
        k2: npt.NDArray[np.unsignedinteger[npt.NBitBase]] = key.astype(np.uint16)
        k2 &= np.uint16(low)
        k2 <<= np.uint16(bits)
        k2 |= col.astype(np.uint16)
        k2.sort(axis=1)
        k2 &= np.uint16(low)
    else:
        k2 = key.astype(np.uint64)
        k2 &= np.uint64(low)
        k2 <<= np.uint64(bits)
        k2 |= col.astype(np.uint64)
        k2.sort(axis=1)
        k2 &= np.uint64(low)
    dev = k2.astype(np.float64)
    dev += (1.0 - (t + 1.0) / 2.0)[:, None]
    dev *= fin
    if redo.size:
        exact = _average_ranks(x[redo])
        exact -= ((t[redo] + 1.0) / 2.0)[:, None]
        dev[redo] = np.where(fin[redo], exact, 0.0)
    return dev, fin


def _average_ranks(x: FloatArray) -> FloatArray:
    """Ranks of each row's values, ties averaged (``rankdata`` "average"); junk at NaN."""
    cols = x.shape[1]
    order = np.argsort(x, axis=1, kind="stable")  # NaN last
    xs = np.take_along_axis(x, order, axis=1)
    pos = np.arange(1, cols + 1, dtype=np.float64)
    first = np.ones(xs.shape, dtype=bool)  # a value differs from the previous one
    first[:, 1:] = xs[:, 1:] != xs[:, :-1]
    last = np.ones(xs.shape, dtype=bool)
    last[:, :-1] = first[:, 1:]
    lo = np.maximum.accumulate(np.where(first, pos, 0.0), axis=1)
    hi = np.minimum.accumulate(np.where(last, pos, np.inf)[:, ::-1], axis=1)[:, ::-1]
    out = np.empty_like(x)
    np.put_along_axis(out, order, (lo + hi) / 2.0, axis=1)
    return out


# --------------------------------------------------------------------------- correlations


def _corr_sums(x: FloatArray, miss: BoolArray, u: FloatArray, n_days: int
               ) -> tuple[FloatArray, FloatArray]:
    """Sums and counts of the valid pairwise correlations among each event's used securities.

    Parameters
    ----------
    x
        (B, N, D) estimation-window residuals, 0 where missing (and for padding). In
        each event the securities with a missing value come first.
    miss
        (B, N, D) True where the residual is missing (False for padding).
    u
        (B, N, W) 1 where the security is used in the window, else 0.
    n_days
        D.

    Returns
    -------
    (sum, count)
        (B, W) sums over the ordered pairs i != j of used securities of their
        correlation, and the number of such pairs with a valid correlation
        (``impact.inference.mean_pairwise_correlation``, ``min_overlap=3``).

    Notes
    -----
    Two securities with no missing day have the correlation ``z_i . z_j`` of their
    standardized series, so the sum over all such pairs is ``|sum_j z_j|^2 - sum_j
    |z_j|^2`` (:func:`_complete_sums`). The pairs with a security that misses days use
    the pairwise-complete sums (:func:`_corr_block`): with ``G`` the 0/1 missing
    indicator, ``n = D - c_i - c_j + G'G``, ``s = S_i - X'G``, ``q = Q_i - (X^2)'G``,
    ``p = X'X`` (``c``, ``S``, ``Q``: per-security totals). The products with ``G`` are
    taken over the days where some security misses (dense), or, when few values are
    missing, as sums of the rows of ``X`` on each missing value's day (sparse).
    """
    b, n, _ = x.shape
    w = u.shape[2]
    out_sum = np.zeros((b, w))
    out_cnt = np.zeros((b, w))
    # events in sub-batches (and rows in blocks) keeping (events x rows x N) temporaries
    # near CORR_BLOCK elements (cache-sized)
    bs = max(1, min(n, CORR_BLOCK // max(1, n)))
    eb = max(1, CORR_BLOCK // max(1, bs * n))
    for e0 in range(0, b, eb):
        e1 = min(b, e0 + eb)
        nb = e1 - e0
        xb, mb, ub = x[e0:e1], miss[e0:e1], u[e0:e1]
        tot = (mb.sum(axis=2).astype(np.float64), xb.sum(axis=2),
               np.einsum("bnd,bnd->bn", xb, xb))
        gaps = int((tot[0] > 0).sum(axis=1).max())  # securities 0..gaps-1 miss days
        if gaps < n:  # pairs of securities without a missing day
            s, k = _complete_sums(xb[:, gaps:], tot[1][:, gaps:], tot[2][:, gaps:],
                                  ub[:, gaps:], n_days)
            out_sum[e0:e1] += s
            out_cnt[e0:e1] += k
        if not gaps:
            continue
        # the rows 0..gaps-1 against all columns; the pairs (complete j, gapped i) are
        # counted from the row side twice (symmetry)
        twice = np.concatenate([ub, np.where(np.arange(n)[:, None] >= gaps, ub, 0.0)], axis=2)
        xt = np.ascontiguousarray(xb.transpose(0, 2, 1))  # (b, D, N)
        mt = np.ascontiguousarray(mb.transpose(0, 2, 1))
        row_gap = mt.any(axis=2)
        r = int(row_gap.sum(axis=1).max())
        if bs == n and int(tot[0].sum()) * SPARSE_RATIO < gaps * r * nb:
            # [e, j, i]: sums over the days j misses of g_i, x_i and x_i^2
            ej_i, d_i = np.divmod(np.flatnonzero(mb), mb.shape[2])
            rows = xt[ej_i // n, d_i]  # (missing values, N)
            idx = ((ej_i * n)[:, None] + np.arange(n)).ravel()
            gg, xg_t, x2g_t = (_bincount(idx, v, nb * n * n).reshape(nb, n, n)
                               for v in (mt[ej_i // n, d_i], rows, rows * rows))
            prods = (gg[:, :gaps], xg_t.transpose(0, 2, 1)[:, :gaps],
                     x2g_t.transpose(0, 2, 1)[:, :gaps])
            trans = None if gaps == n else (xg_t[:, :gaps], x2g_t[:, :gaps])
            s, k = _corr_block(xb, tot, twice, n_days, 0, gaps, prods, trans)
            out_sum[e0:e1] += s[:, :w] + s[:, w:]
            out_cnt[e0:e1] += k[:, :w] + k[:, w:]
            continue
        bi = np.arange(nb)[:, None]
        order = np.argsort(~row_gap, axis=1, kind="stable")[:, :r]
        xc = xt[bi, order]  # (b, r, N): the days where some security misses
        gc = mt[bi, order].astype(np.float64)
        x2c = xc * xc
        for i0 in range(0, gaps, bs):
            i1 = min(gaps, i0 + bs)
            gt_i = gc[:, :, i0:i1].transpose(0, 2, 1)
            prods = (gt_i @ gc, xc[:, :, i0:i1].transpose(0, 2, 1) @ gc,
                     x2c[:, :, i0:i1].transpose(0, 2, 1) @ gc)
            trans = None if i1 - i0 == n else (gt_i @ xc, gt_i @ x2c)
            s, k = _corr_block(xb, tot, twice, n_days, i0, i1, prods, trans)
            out_sum[e0:e1] += s[:, :w] + s[:, w:]
            out_cnt[e0:e1] += k[:, :w] + k[:, w:]
    return out_sum, out_cnt


def _complete_sums(x: FloatArray, s_tot: FloatArray, q_tot: FloatArray, u: FloatArray,
                   n_days: int) -> tuple[FloatArray, FloatArray]:
    """The part of :func:`_corr_sums` of the pairs of securities without a missing day."""
    b, _, _ = x.shape
    w = u.shape[2]
    if n_days < 3:
        return np.zeros((b, w)), np.zeros((b, w))
    var = q_tot - s_tot * s_tot / n_days  # the reference's var_i for such a pair
    good = var > 0
    z = x - (s_tot / n_days)[:, :, None]
    z /= np.sqrt(np.where(good, var, 1.0))[:, :, None]
    wgt = u * good[:, :, None]  # (b, n, W)
    zsum = z.transpose(0, 2, 1) @ wgt  # (b, D, W)
    norm2 = np.einsum("bnd,bnd->bn", z, z)
    total = np.einsum("bdw,bdw->bw", zsum, zsum) - (wgt * norm2[:, :, None]).sum(axis=1)
    k = wgt.sum(axis=1)
    return total, k * k - k


def _corr_block(x: FloatArray, tot: tuple[FloatArray, FloatArray, FloatArray], u: FloatArray,
                n_days: int, i0: int, i1: int, prods: tuple[FloatArray, FloatArray, FloatArray],
                trans: tuple[FloatArray, FloatArray] | None) -> tuple[FloatArray, FloatArray]:
    """The part of :func:`_corr_sums` of the rows ``i0:i1`` (all columns).

    ``tot`` holds the missing days, sum and sum of squares of each security; ``prods``
    G'G, X'G and (X^2)'G of the rows ([i, j]: sums over the days j misses of g_i, x_i,
    x_i^2); ``trans`` (None when the rows are all the columns) their transposed
    counterparts (sums over the days i misses of x_j, x_j^2).
    """
    c, s_tot, q_tot = tot
    cov = x[:, i0:i1] @ x.transpose(0, 2, 1)  # sum over common days of x_i x_j
    n_ij = prods[0] + ((n_days - c[:, i0:i1, None]) - c[:, None, :])  # common days
    s_ij = np.subtract(s_tot[:, i0:i1, None], prods[1])  # sum of x_i over the common days
    var_i = np.subtract(q_tot[:, i0:i1, None], prods[2])
    if trans is None:
        s_ji = s_ij.transpose(0, 2, 1)
    else:
        s_ji = s_tot[:, None, :] - trans[0]
        q_ji = q_tot[:, None, :] - trans[1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s_n = s_ij / n_ij
        cov -= s_n * s_ji  # the covariance (times n_ij)
        s_n *= s_ij
        var_i -= s_n
        var_j = var_i.transpose(0, 2, 1) if trans is None else q_ji - s_ji * s_ji / n_ij
        ok = var_i > 0
        ok &= var_j > 0
        if n_days - c[:, i0:i1].max(initial=0.0) - c.max(initial=0.0) < 3:
            ok &= n_ij >= 3  # else every pair has 3 common days
        den = var_i * var_j
        np.sqrt(den, out=den)
        cov /= den  # the correlations
        ok &= np.isfinite(cov)
    diag = np.arange(i0, i1)
    ok[:, diag - i0, diag] = False
    cov[~ok] = 0.0
    half = u[:, i0:i1, : u.shape[2] // 2]  # the rows' own weights, for both halves of u
    ui = np.concatenate([half, half], axis=2)
    return (np.einsum("biw,biw->bw", ui, cov @ u),
            np.einsum("biw,biw->bw", ui, ok.astype(np.float64) @ u))


# --------------------------------------------------------------------------- chunks


def _residuals(ctx: _Ctx, rows: IntArray) -> tuple[FloatArray, FloatArray]:
    """Residuals and ARs of the pairs over the gathered days, and event-window benchmarks.

    Returns ``(x, mkt_ev)``: x (pairs, ltot), NaN where ret or mkt is missing or the
    session is outside the ticker's span; mkt_ev (pairs, event days).
    """
    p = ctx.p
    start = p.day0_pos[rows] + (ctx.base + ctx.pad)
    ret = ctx.swv_ret[start]  # copies
    mkt = ctx.swv_mkt[start]
    lo_k = p.lo_pos[rows] + ctx.pad - start
    hi_k = p.hi_pos[rows] + ctx.pad - start
    part = np.flatnonzero((lo_k > 0) | (hi_k < ctx.ltot - 1))
    if part.size:  # sessions outside the ticker's span belong to other tickers
        k = np.arange(ctx.ltot)
        sub = ret[part]
        sub[(k < lo_k[part, None]) | (k > hi_k[part, None])] = np.nan
        ret[part] = sub
    mkt_ev = mkt[:, ctx.ev_off:ctx.ev_off + ctx.n_ev].copy()
    mkt *= p.beta[rows][:, None]
    mkt += p.alpha[rows][:, None]
    ret -= mkt  # ret - (alpha + beta mkt)
    if ctx.ex_count is not None and ctx.ex_first is not None:
        cnt = ctx.ex_count[rows]
        if cnt.any():  # the excluded estimation-window sessions have no residual
            assert ctx.ex_lo_col is not None and ctx.ex_hi_col is not None
            which = _ranges(ctx.ex_first[rows], cnt)
            at = np.repeat(np.arange(len(rows)), cnt)
            diff = np.zeros((len(rows), ctx.ltot + 1), dtype=np.int32)
            np.add.at(diff, (at, ctx.ex_lo_col[which]), 1)
            np.add.at(diff, (at, ctx.ex_hi_col[which] + 1), -1)
            ret[np.cumsum(diff, axis=1)[:, :ctx.ltot] > 0] = np.nan
    return ret, mkt_ev


def _chunk(ctx: _Ctx, rows: IntArray, seg: IntArray, events: IntArray) -> _Out:
    """All per (event, window) sums for the events of one chunk.

    ``rows`` are the chunk's ok pairs sorted by event, ``seg`` the start of each
    event in ``rows`` and ``events`` their codes.
    """
    p = ctx.p
    n_rows = len(rows)
    n_ev = len(seg)
    sizes = np.diff(np.append(seg, n_rows))
    seg_id = np.repeat(np.arange(n_ev), sizes)
    pos_in_event = np.arange(n_rows) - seg[seg_id]
    n_win = len(ctx.windows)
    d_est, d_ev = ctx.n_est, ctx.n_ev

    x, mkt_ev = _residuals(ctx, rows)
    est = x[:, ctx.est_off:ctx.est_off + d_est]
    ar = x[:, ctx.ev_off:ctx.ev_off + d_ev]

    # per pair and window: complete?, CAR, Var(CAR)
    sigma = p.sigma[rows]
    nobs = p.nobs[rows].astype(np.float64)
    rbar_m = p.rbar_m[rows][:, None]
    s_mm = p.s_mm[rows]
    # sums over each window's days: products with a (days x windows) 0/1 matrix
    ind = np.zeros((d_ev, n_win))
    inside = np.zeros(n_win, dtype=bool)
    for j, (a, b) in enumerate(ctx.windows):
        if a >= ctx.event0 and b < ctx.event0 + d_ev:  # else no security is complete
            ind[a - ctx.event0:b - ctx.event0 + 1, j] = 1.0
            inside[j] = True
    lengths = np.array([b - a + 1 for a, b in ctx.windows], dtype=np.float64)
    gap = np.isnan(ar)
    used = ((gap @ ind) == 0) & inside
    car = np.where(gap, 0.0, ar) @ ind
    dm = np.where(gap, 0.0, mkt_ev) @ ind - lengths * rbar_m  # sum_W (R_m - Rbar_m)
    with np.errstate(divide="ignore", invalid="ignore"):
        var_car = (sigma**2)[:, None] * (lengths + lengths * lengths / nobs[:, None]
                                         + dm * dm / s_mm[:, None])
    car = np.where(used, car, 0.0)
    n_used = _segment_sum(used.astype(np.int64), seg)
    with np.errstate(divide="ignore", invalid="ignore"):
        car_mean = _segment_sum(car, seg) / n_used
        car_dev = np.where(used, car - car_mean[seg_id], 0.0)
        var_ok = var_car > 0
        bad = used & ~var_ok
        bad_first = np.minimum.reduceat(np.where(bad, pos_in_event[:, None], _NONE), seg, axis=0)
        scar = np.where(used & var_ok, car / np.sqrt(np.where(var_ok, var_car, 1.0)), 0.0)
        scar_mean = _segment_sum(scar, seg) / n_used
        scar_dev = np.where(used, scar - scar_mean[seg_id], 0.0)
        dof = nobs - 2.0
        den = np.where(dof > 2, dof / (dof - 2.0), 0.0)[:, None]
    out = _Out(
        events=events, n_input=sizes.astype(np.int64), n=n_used,
        car_sum=_segment_sum(car, seg), car_ssd=_segment_sum(car_dev * car_dev, seg),
        n_pos=_segment_sum((used & (car > 0)).astype(np.int64), seg),
        bad_first=bad_first,
        scar_sum=_segment_sum(scar, seg), scar_ssd=_segment_sum(scar_dev * scar_dev, seg),
        dof_bad=_segment_sum((used & (dof <= 2)[:, None]).astype(np.int64), seg),
        patell_den=_segment_sum(np.where(used, den, 0.0), seg),
        share_sum=np.zeros((n_ev, n_win)), share_cnt=np.zeros((n_ev, n_win), dtype=np.int64),
        corr_sum=np.zeros((n_ev, n_win)), corr_cnt=np.zeros((n_ev, n_win)),
        k_s=np.full((n_ev, n_win), np.nan), k_first=np.full((n_ev, n_win), np.nan),
        k_sum=np.full((n_ev, n_win), np.nan),
    )
    est_fin: BoolArray | None = None
    if ctx.need_rank:
        # rank panel: the estimation-window days before the event window, the event
        # window, the estimation-window days after it (the event window wins on overlap)
        pre, post = ctx.rank_split
        if pre == d_est and ctx.ev_off == ctx.est_off + d_est:
            panel = x[:, ctx.est_off:ctx.ev_off + d_ev]
        else:
            panel = np.concatenate([est[:, :pre], ar, est[:, post:]], axis=1)
        dev, fin = _rank_dev(panel)
        if pre == d_est:
            est_fin = fin[:, :d_est]
        _corrado_sums(out, dev, fin, used, seg, seg_id, ctx)
    if ctx.need_share or ctx.need_corr:
        if est_fin is None:
            est_fin = np.isfinite(est)
        if ctx.need_share:
            n_est = est_fin.sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = (est > 0).sum(axis=1) / n_est
            has_est = (n_est > 0)[:, None] & used
            out.share_sum = _segment_sum(np.where(has_est, share[:, None], 0.0), seg)
            out.share_cnt = _segment_sum(has_est.astype(np.int64), seg)
        if ctx.need_corr:
            n_pad = int(sizes.max())
            miss = ~est_fin
            # in each event, the securities with a missing value first (any order serves)
            order = np.argsort(seg_id * 2 + ~miss.any(axis=1), kind="stable")
            x0 = np.where(est_fin[order], est[order], 0.0)
            miss = miss[order]
            uf = used[order].astype(np.float64)
            if n_pad * n_ev != n_rows:  # pad the events to the largest one
                slot = seg_id * n_pad + pos_in_event
                x0p = np.zeros((n_ev * n_pad, d_est))
                x0p[slot] = x0
                missp = np.zeros((n_ev * n_pad, d_est), dtype=bool)
                missp[slot] = miss
                ufp = np.zeros((n_ev * n_pad, n_win))
                ufp[slot] = uf
                x0, miss, uf = x0p, missp, ufp
            out.corr_sum, out.corr_cnt = _corr_sums(
                x0.reshape(n_ev, n_pad, d_est), miss.reshape(n_ev, n_pad, d_est),
                uf.reshape(n_ev, n_pad, n_win), d_est)
    return out


def _corrado_sums(out: _Out, dev: FloatArray, fin: BoolArray, used: BoolArray, seg: IntArray,
                  seg_id: IntArray, ctx: _Ctx) -> None:
    """S(K), Kbar on the window's first day and the sum of Kbar over it, per event and window."""
    n_ev, n_win = len(seg), used.shape[1]
    # sums over each event's ok pairs, less those not used in the window (exact: halves)
    ks = np.repeat(_group_rows(dev, seg)[None], n_win, axis=0)  # (W, B, days)
    kc = np.repeat(_group_rows(fin, seg)[None], n_win, axis=0)
    some = np.flatnonzero(~used.all(axis=1))
    if some.size:
        w_i, k_i = np.nonzero(~used[some].T)
        ind = np.zeros((n_win, n_ev, some.size))
        ind[w_i, seg_id[some][k_i], k_i] = 1.0
        ind2 = ind.reshape(n_win * n_ev, some.size)
        ks -= (ind2 @ dev[some]).reshape(ks.shape)
        kc -= (ind2 @ fin[some].astype(np.float64)).reshape(kc.shape)
    have = kc > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        kbar = np.where(have, ks / np.where(have, kc, 1.0), 0.0)
        out.k_s[:] = np.sqrt((kbar * kbar).sum(axis=2) / have.sum(axis=2)).T
    for j, (a, b) in enumerate(ctx.windows):
        if a >= ctx.event0 and b < ctx.event0 + ctx.n_ev:
            c0 = ctx.rank_split[0] + a - ctx.event0
            win = kbar[j, :, c0:c0 + b - a + 1]
            out.k_first[:, j] = win[:, 0]
            out.k_sum[:, j] = win.sum(axis=1)


def _chunks(sizes: IntArray, cap: int) -> IntArray:
    """Chunk number of each event, for about ``cap`` pairs per chunk.

    Chunks hold whole events, in the given order (which groups similar sizes); an event
    of more than ``cap / 2`` pairs gets a chunk of its own.
    """
    if not sizes.size:
        return np.zeros(0, dtype=np.int64)
    start = np.cumsum(sizes) - sizes
    big = sizes * 2 > cap
    new = np.ones(len(sizes), dtype=bool)
    new[1:] = (start[1:] // cap != start[:-1] // cap) | big[1:] | big[:-1]
    out: IntArray = np.cumsum(new) - 1
    return out


# --------------------------------------------------------------------------- statistics


def _first_reason(n_cells: int, rules: Sequence[tuple[BoolArray, npt.NDArray[np.str_] | str]]
                  ) -> tuple[BoolArray, npt.NDArray[np.object_]]:
    """The first applicable reason of ``rules`` (condition, reason) per cell; "" if none."""
    reason = np.full(n_cells, "", dtype=object)
    done = np.zeros(n_cells, dtype=bool)
    for cond, why in rules:
        take = cond & ~done
        if isinstance(why, str):
            reason[take] = why
        else:
            reason[take] = why[take]
        done |= take
    return done, reason


def _p_t(t: FloatArray, df: FloatArray) -> FloatArray:
    """Two-sided t p-values, ``2 * scipy.stats.t.sf(|t|, df)`` (which is ``stdtr(df, -|t|)``)."""
    out = np.full(t.shape, np.nan)
    f = np.isfinite(t) & (df > 0)
    out[f] = 2.0 * special.stdtr(df[f], -np.abs(t[f]))
    return out


def _p_normal(z: FloatArray) -> FloatArray:
    """Two-sided normal p-values, ``2 * scipy.stats.norm.sf(|z|)`` (``ndtr(-|z|)``)."""
    out = np.full(z.shape, np.nan)
    f = np.isfinite(z)
    out[f] = 2.0 * special.ndtr(-np.abs(z[f]))
    return out


def _test_rows(name: str, o: dict[str, npt.NDArray[Any]], lengths: FloatArray
               ) -> dict[str, npt.NDArray[Any]]:
    """Statistic, p, df, n, status and reason of one test for all (event, window) cells."""
    n = o["n"].astype(np.int64)
    nf = n.astype(np.float64)
    cells = n.size
    zero = n == 0
    none_why = np.where(o["n_input"] == 0, _NO_SECURITIES, _NO_COMPLETE)
    rules: list[tuple[BoolArray, npt.NDArray[np.str_] | str]] = [(zero, none_why)]
    df = np.full(cells, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scar_bad = o["bad_first"] != _NONE
        scar_why = np.char.add(np.char.add("zero variance of the CAR of security #",
                                           np.where(scar_bad, o["bad_first"], 0).astype(str)),
                               " (zero residuals)")
        scar_sd = np.sqrt(o["scar_ssd"] / (nf - 1.0))
        bmp_t = np.sqrt(nf) * (o["scar_sum"] / nf) / scar_sd
        bmp_rules: list[tuple[BoolArray, npt.NDArray[np.str_] | str]] = [
            (scar_bad, scar_why), (n < 2, _FEW2),
            (~(scar_sd > 0), "zero cross-sectional variance of the SCARs")]
        if name == "t_cs":
            sd = np.sqrt(o["car_ssd"] / (nf - 1.0))
            rules += [(n < 2, _FEW2), (~(sd > 0), "zero cross-sectional variance of the CARs")]
            stat = np.sqrt(nf) * (o["car_sum"] / nf) / sd
            df = nf - 1.0
            pv = _p_t(stat, df)
        elif name == "patell":
            rules += [(scar_bad, scar_why),
                      (o["dof_bad"] > 0,
                       "needs more than k + 2 estimation-window returns per security")]
            stat = o["scar_sum"] / np.sqrt(o["patell_den"])
            pv = _p_normal(stat)
        elif name == "bmp":
            rules += bmp_rules
            stat = bmp_t
            df = nf - 1.0
            pv = _p_t(stat, df)
        elif name == "kp_bmp":
            r = o["corr_sum"] / o["corr_cnt"]
            r_txt = np.char.mod("%.4f", np.where(np.isfinite(r), r, 0.0))
            r_why = np.char.add(np.char.add("mean residual correlation ", r_txt),
                                " gives no valid adjustment")
            rules += [
                *bmp_rules,
                (o["corr_cnt"] == 0,
                 "no pair of securities has 3 common estimation-window residuals"),
                (~((1.0 + (nf - 1.0) * r > 0) & (r < 1)), r_why)]
            stat = bmp_t * np.sqrt((1.0 - r) / (1.0 + (nf - 1.0) * r))
            df = nf - 1.0
            pv = _p_t(stat, df)
        elif name == "gsign":
            ph = o["share_sum"] / o["share_cnt"]
            rules += [(~((ph > 0) & (ph < 1)), "the share of positive estimation-window "
                                                "residuals is 0 or 1")]
            stat = (o["n_pos"] - nf * ph) / np.sqrt(nf * ph * (1 - ph))
            pv = _p_normal(stat)
        elif name in ("corrado", "corrado_cowan"):
            if name == "corrado":
                rules += [(lengths != 1, "one-day test: see corrado_cowan for a window")]
                stat = o["k_first"] / o["k_s"]
            else:
                stat = o["k_sum"] / (np.sqrt(lengths) * o["k_s"])
            rules += [(~(o["k_s"] > 0), "zero variance of the mean ranks")]
            pv = _p_normal(stat)
        else:  # pragma: no cover - names are checked by event_tests
            raise ValueError(name)
    rules.append((~(np.isfinite(stat) & np.isfinite(pv)), _NOT_FINITE))
    failed, reason = _first_reason(cells, rules)
    ok = ~failed
    return {
        "n": np.where(zero, 0, n),
        "statistic": np.where(ok, stat, np.nan),
        "p": np.where(ok, np.clip(pv, 0.0, 1.0), np.nan),
        "df": np.where(ok, df, np.nan) if _DIST[name] == "t" else np.full(cells, np.nan),
        "status": np.where(ok, "ok", "not computed"),
        "reason": reason,
    }


# --------------------------------------------------------------------------- entry point


def event_tests(p: PanelArrays, *, estimation: tuple[int, int], event: tuple[int, int],
                windows: Sequence[tuple[int, int]],
                tests: Sequence[str] = ENGINE_TESTS) -> pl.DataFrame:
    """Cross-sectional tests of every event and window, equal to the per-event reference.

    For each event (the pairs sharing an ``event`` code), window and test, the
    result of ``impact.inference.run_tests(fits, window, tests=[test])`` where
    ``fits`` are the fits of the event's ``ok`` pairs in the order of the pairs.

    Parameters
    ----------
    p
        Returns and per-pair fit results.
    estimation, event
        Estimation and event windows in sessions relative to day 0, both ends
        included (the same as the fits'). Where they overlap, the rank tests rank
        the event window's ARs (as the reference).
    windows
        Test windows ``(start, end)``, both ends included. A window leaving the
        event window has no complete security (as in the reference).
    tests
        Names among :data:`ENGINE_TESTS`, in the order of the output.

    Returns
    -------
    polars.DataFrame
        One row per (event, window, test), ordered so, for the event codes
        ``0 .. max(event)``: ``event`` (Int64), ``window_start``, ``window_end``
        (Int32), ``test``, ``n`` (securities used), ``statistic``, ``p``, ``df``
        (null unless computed with a t distribution), ``distribution``, ``status``
        (``ok`` or ``not computed``) and ``reason`` (``""`` when ok).
        ``statistic`` and ``p`` are null when not computed.

    Raises
    ------
    ValueError
        If a window ends before it starts, a test name is unknown, the pair arrays
        differ in length or an event code is negative.
    """
    names = list(tests)
    unknown = [t for t in names if t not in _DIST]
    if unknown:
        raise ValueError(f"unknown or unsupported test(s) {unknown}; choose from "
                         f"{list(ENGINE_TESTS)}")
    e0, e1 = check_window("estimation", estimation)
    v0, v1 = check_window("event", event)
    wins = tuple(check_window("test", w) for w in windows)
    need_rank = bool({"corrado", "corrado_cowan"} & set(names))
    n_pairs = len(p.event)
    for f in ("day0_pos", "lo_pos", "hi_pos", "ok", "nobs", "alpha", "beta", "sigma", "rbar_m",
              "s_mm"):
        if len(getattr(p, f)) != n_pairs:
            raise ValueError(f"PanelArrays.{f} has {len(getattr(p, f))} entries for "
                             f"{n_pairs} pairs")
    if len(p.ret) != len(p.mkt):
        raise ValueError("PanelArrays.ret and .mkt differ in length")
    event_code = np.asarray(p.event, dtype=np.int64)
    n_events = int(event_code.max()) + 1 if n_pairs else 0
    if n_pairs and int(event_code.min()) < 0:
        raise ValueError("event codes must be >= 0")

    # layout of the gathered columns: [base, base + ltot) relative days (the estimation
    # window only when a test uses its residuals)
    need_est = need_rank or bool({"kp_bmp", "gsign"} & set(names))
    base, top = (min(e0, v0), max(e1, v1)) if need_est else (v0, v1)
    ltot = top - base + 1
    ok_idx = np.flatnonzero(np.asarray(p.ok, dtype=bool))
    day0 = np.asarray(p.day0_pos, dtype=np.int64)
    pad_lo = max(0, -int((day0[ok_idx] + base).min())) if ok_idx.size else 0
    pad_hi = max(0, int((day0[ok_idx] + top).max()) - (len(p.ret) - 1)) if ok_idx.size else 0
    ret = np.asarray(p.ret, dtype=np.float64)
    mkt = np.asarray(p.mkt, dtype=np.float64)
    if pad_lo or pad_hi or len(ret) < ltot:
        pad_hi = max(pad_hi, ltot - len(ret) - pad_lo)
        ret = np.concatenate([np.full(pad_lo, np.nan), ret, np.full(pad_hi, np.nan)])
        mkt = np.concatenate([np.full(pad_lo, np.nan), mkt, np.full(pad_hi, np.nan)])
    ctx = _Ctx(
        p=PanelArrays(
            ret=p.ret, mkt=p.mkt, event=event_code, day0_pos=day0,
            lo_pos=np.asarray(p.lo_pos, dtype=np.int64),
            hi_pos=np.asarray(p.hi_pos, dtype=np.int64), ok=np.asarray(p.ok, dtype=bool),
            nobs=np.asarray(p.nobs, dtype=np.int64),
            alpha=np.asarray(p.alpha, dtype=np.float64),
            beta=np.asarray(p.beta, dtype=np.float64),
            sigma=np.asarray(p.sigma, dtype=np.float64),
            rbar_m=np.asarray(p.rbar_m, dtype=np.float64),
            s_mm=np.asarray(p.s_mm, dtype=np.float64)),
        swv_ret=np.lib.stride_tricks.sliding_window_view(ret, ltot),
        swv_mkt=np.lib.stride_tricks.sliding_window_view(mkt, ltot),
        pad=pad_lo, base=base, ltot=ltot, est_off=e0 - base if need_est else 0,
        n_est=e1 - e0 + 1 if need_est else 0,
        ev_off=v0 - base, n_ev=v1 - v0 + 1, event0=v0, windows=wins,
        need_rank=need_rank, need_corr="kp_bmp" in names, need_share="gsign" in names,
        rank_split=(max(0, min(e1, v0 - 1) - e0 + 1), min(e1 - e0 + 1, max(0, v1 + 1 - e0))),
        **_exclusion_columns(p.exclusions, n_pairs, (e0, e1), (v0, v1), base, need_est))

    # ok pairs by event (then input order); events by size, then code
    counts = np.bincount(event_code[ok_idx], minlength=n_events).astype(np.int64)
    rows = ok_idx[np.argsort(event_code[ok_idx], kind="stable")]
    ev_start = np.cumsum(counts) - counts
    present = np.flatnonzero(counts)
    present = present[np.argsort(counts[present], kind="stable")]
    chunk_of = _chunks(counts[present], max(1, CHUNK_ELEMS // ltot))
    first = np.ones(chunk_of.size, dtype=bool)
    first[1:] = chunk_of[1:] != chunk_of[:-1]
    bounds = np.append(np.flatnonzero(first), chunk_of.size)

    def jobs() -> Iterator[tuple[IntArray, IntArray, IntArray]]:
        for c0, c1 in itertools.pairwise(bounds):
            evs = present[c0:c1]
            sz = counts[evs]
            yield rows[_ranges(ev_start[evs], sz)], np.cumsum(sz) - sz, evs

    results: list[_Out]
    if WORKERS > 1 and len(bounds) > 2:
        with _one_blas_thread(), ThreadPoolExecutor(WORKERS) as pool:
            results = list(pool.map(lambda j: _chunk(ctx, *j), jobs()))
    else:
        results = [_chunk(ctx, *j) for j in jobs()]
    return _frame(results, n_events, wins, names)


def _exclusion_columns(ex: Exclusions | None, n_pairs: int, estimation: tuple[int, int],
                       event: tuple[int, int], base: int, need_est: bool
                       ) -> dict[str, IntArray]:
    """The :class:`_Ctx` fields of the exclusions (none when no test needs residuals)."""
    if ex is None or not need_est:
        return {}
    m = ex.merged(estimation)
    if not len(m.pair):
        return {}
    if estimation[1] >= event[0] and event[1] >= estimation[0]:
        raise ValueError("exclusions need estimation and event windows that do not overlap")
    if int(m.pair.max()) >= n_pairs or int(m.pair.min()) < 0:
        raise ValueError("Exclusions.pair refers to a pair that does not exist")
    count = np.bincount(m.pair, minlength=n_pairs).astype(np.int64)
    return {"ex_first": np.cumsum(count) - count, "ex_count": count,
            "ex_lo_col": m.lo - base, "ex_hi_col": m.hi - base}


def _ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """Concatenated ``arange(s, s + l)`` for each start s and length l."""
    total = int(lengths.sum())
    offs = np.cumsum(lengths) - lengths
    out: IntArray = np.arange(total, dtype=np.int64) - np.repeat(offs - starts, lengths)
    return out


def _frame(results: list[_Out], n_events: int, wins: tuple[tuple[int, int], ...],
           names: list[str]) -> pl.DataFrame:
    """Assemble the per-chunk sums and compute every test's row."""
    n_win = len(wins)
    fields = ("n", "car_sum", "car_ssd", "n_pos", "bad_first", "scar_sum", "scar_ssd", "dof_bad",
              "patell_den", "share_sum", "share_cnt", "corr_sum", "corr_cnt", "k_s", "k_first",
              "k_sum")
    o: dict[str, npt.NDArray[Any]] = {}
    for f in fields:
        fill: float | int = _NONE if f == "bad_first" else 0
        arr = np.full((n_events, n_win), fill,
                      dtype=np.int64 if f in ("n", "n_pos", "bad_first", "dof_bad", "share_cnt")
                      else np.float64)
        for r in results:
            arr[r.events] = getattr(r, f)
        o[f] = arr.ravel()
    n_input = np.zeros(n_events, dtype=np.int64)
    for r in results:
        n_input[r.events] = r.n_input
    o["n_input"] = np.repeat(n_input, n_win)
    lengths = np.tile(np.array([b - a + 1 for a, b in wins], dtype=np.float64), n_events)
    parts = {name: _test_rows(name, o, lengths) for name in names}
    n_tests = len(names)
    cells = n_events * n_win

    def stack(key: str) -> npt.NDArray[Any]:
        if not names:
            return np.zeros(0)
        return np.stack([parts[nm][key] for nm in names], axis=1).ravel()  # (cell, test)

    starts = np.array([a for a, _ in wins], dtype=np.int32)
    ends = np.array([b for _, b in wins], dtype=np.int32)
    stat = stack("statistic").astype(np.float64)
    pv = stack("p").astype(np.float64)
    df = stack("df").astype(np.float64)
    return pl.DataFrame({
        "event": pl.Series(np.repeat(np.arange(n_events, dtype=np.int64), n_win * n_tests),
                           dtype=pl.Int64),
        "window_start": pl.Series(np.tile(np.repeat(starts, n_tests), n_events),
                                  dtype=pl.Int32),
        "window_end": pl.Series(np.tile(np.repeat(ends, n_tests), n_events), dtype=pl.Int32),
        "test": pl.Series(np.tile(np.array(names, dtype=object), cells), dtype=pl.String),
        "n": pl.Series(stack("n").astype(np.int64), dtype=pl.Int64),
        "statistic": pl.Series(stat, dtype=pl.Float64, nan_to_null=True),
        "p": pl.Series(pv, dtype=pl.Float64, nan_to_null=True),
        "df": pl.Series(df, dtype=pl.Float64, nan_to_null=True),
        "distribution": pl.Series(np.tile(np.array([_DIST[nm] for nm in names], dtype=object),
                                          cells), dtype=pl.String),
        "status": pl.Series(stack("status").astype(object), dtype=pl.String),
        "reason": pl.Series(stack("reason").astype(object), dtype=pl.String),
    })
