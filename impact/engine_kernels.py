"""Compiled kernels of the per-event test battery (:mod:`impact.engine_tests`).

The battery needs, for every pair, one pass over its ~260 estimation- and
event-window residuals: the CARs and their variances per window, the share of
positive residuals (generalized sign), the rank of every residual (Corrado) and the
sums behind the pairwise-complete residual correlations (Kolari-Pynnönen). In
numpy each of those is a handful of whole-array passes with fresh temporaries;
compiled with numba (``nogil``, so :mod:`impact.engine_tests`' worker threads run
them in parallel) they are one pass per pair and per event, and the Gram matrix of
an event's residuals is one BLAS product. The kernels are pure functions of their
arrays (outputs are arguments they fill): no I/O, no Python objects.

numba caches the compiled code beside this file (``__pycache__``; numba falls back
to a per-user cache directory when that is not writable): the first call after an
install compiles for a few seconds, later processes load the cache.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llvmlite.binding as llvm
import numba as nb
import numpy as np
import numpy.typing as npt
from numba import types
from scipy.linalg import cython_blas

__all__ = ["corr_event", "event_sums", "rank_dev", "rank_keys", "residuals",
           "scatter_returns"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# error_model="numpy": 0/0 is NaN (as numpy), not a ZeroDivisionError
_jit = nb.njit(cache=True, nogil=True, error_model="numpy")
#: "no such position" (as impact.engine_tests._NONE)
NONE = np.iinfo(np.int64).max


def _blas_address(name: str) -> int:
    """The address of BLAS routine ``name`` of SciPy's ``cython_blas`` (numba's own BLAS)."""
    capsule = cython_blas.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return int(get_pointer(capsule, get_name(capsule)))


# dsyrk and dgemm (Fortran calling convention: every argument by address), called from the
# kernels by these symbol names: numba's np.dot has no symmetric product, and a name (not
# an address) keeps the kernels cacheable; the symbols are registered at each import
for _name in ("dsyrk", "dgemm"):
    llvm.add_symbol(f"impact_{_name}", _blas_address(_name))
_P = types.voidptr
_dsyrk: Any = types.ExternalFunction("impact_dsyrk", types.void(*([_P] * 10)))
_dgemm: Any = types.ExternalFunction("impact_dgemm", types.void(*([_P] * 13)))

#: Pairs per group of :func:`residuals` and :func:`ar_cars`: a group's returns are first
#: read one value per cache line, so that their cache misses overlap, then computed (about
#: 40% faster than one pair after the other, whose misses come one at a time, in the
#: residual pass; about 20% in ``ar_cars``).
RESID_GROUP = 16


@_jit
def _read_ahead(ret: FloatArray, mkt: FloatArray, a: int, b: int) -> float:
    """The sum of ``ret`` and ``mkt`` at every 8th position from ``a`` on, and at ``b - 1``.

    At least one value per cache line of ``a .. b - 1`` (the last one too, when the
    run does not start on a line), read ahead of a group's computation so that its
    cache misses overlap (see :data:`RESID_GROUP`); the sum keeps the compiler from
    dropping the reads.
    """
    touch = 0.0
    for j in range(a, b, 8):
        touch += ret[j] + mkt[j]
    if b > a:
        touch += ret[b - 1] + mkt[b - 1]
    return touch


@_jit
def _span_cols(q: int, day0_pos: IntArray, lo_pos: IntArray, hi_pos: IntArray, base: int,
               ltot: int) -> tuple[int, int, int]:
    """Pair ``q``'s first gathered position and its columns ``k0 .. k1 - 1`` inside its span."""
    s = day0_pos[q] + base
    k0 = min(max(lo_pos[q] - s, 0), ltot)
    return s, k0, max(min(hi_pos[q] - s + 1, ltot), k0)


@_jit
def residuals(ret: FloatArray, mkt: FloatArray, rows: IntArray, day0_pos: IntArray,
              lo_pos: IntArray, hi_pos: IntArray, alpha: FloatArray, beta: FloatArray,
              base: int, ex_first: IntArray, ex_count: IntArray, ex_lo_col: IntArray,
              ex_hi_col: IntArray, win_col: IntArray, win_len: IntArray, x: FloatArray,
              msum: FloatArray, share_col: int, share_len: int, share: FloatArray) -> float:
    """Fill ``x[r, k]`` with the residual of pair ``rows[r]`` on relative day ``base + k``.

    The residual is ``ret - (beta mkt + alpha)``; NaN where ``ret`` or ``mkt`` is
    missing, where the session lies outside the ticker's span ``[lo_pos, hi_pos]``
    and on the pair's excluded sessions (runs ``ex_first[q] .. + ex_count[q]`` of
    columns ``ex_lo_col .. ex_hi_col``; empty arrays: no exclusions). The pairs go in
    groups of :data:`RESID_GROUP` (see there). ``msum[r, w]`` receives the sum of the
    benchmark returns over columns ``win_col[w] .. + win_len[w] - 1`` (in that order)
    when they lie in the span, else NaN: :func:`event_sums` needs it for the CAR
    variances, and reads it here, where the values are in cache. When ``share`` has
    rows, ``share[r]`` receives the share of positive residuals among the finite ones
    of columns ``share_col .. + share_len - 1`` (the generalized sign test's estimation
    window; NaN if none is finite), counted while the row is in cache. Returns the
    sum of the values read ahead (so that the compiler keeps those reads; of no other
    use).
    """
    n, ltot = x.shape
    has_ex = ex_count.shape[0] > 0
    need_share = share.shape[0] > 0
    touch = 0.0
    for g0 in range(0, n, RESID_GROUP):
        g1 = min(n, g0 + RESID_GROUP)
        for r in range(g0, g1):
            s, k0, k1 = _span_cols(rows[r], day0_pos, lo_pos, hi_pos, base, ltot)
            touch += _read_ahead(ret, mkt, s + k0, s + k1)
        for r in range(g0, g1):
            q = rows[r]
            s, k0, k1 = _span_cols(q, day0_pos, lo_pos, hi_pos, base, ltot)
            a = alpha[q]
            b = beta[q]
            row = x[r]
            row[:k0] = np.nan
            row[k1:] = np.nan
            for k in range(k0, k1):
                row[k] = ret[s + k] - (b * mkt[s + k] + a)
            for w in range(win_col.shape[0]):
                c0, c1 = win_col[w], win_col[w] + win_len[w]
                tot_m = np.nan
                if c0 >= k0 and c1 <= k1:
                    tot_m = 0.0
                    for k in range(c0, c1):
                        tot_m += mkt[s + k]
                msum[r, w] = tot_m
            if has_ex:
                for e in range(ex_first[q], ex_first[q] + ex_count[q]):
                    for k in range(ex_lo_col[e], ex_hi_col[e] + 1):
                        x[r, k] = np.nan
            if need_share:
                fin = 0
                pos = 0
                for k in range(share_col, share_col + share_len):
                    v = row[k]
                    fin += np.isfinite(v)
                    pos += v > 0.0  # False for NaN
                share[r] = pos / fin if fin > 0 else np.nan
    return touch


@_jit
def rank_keys(x: FloatArray, cols: IntArray, bits: int, keys: npt.NDArray[np.int32],
              count: IntArray) -> None:
    """32-bit sort keys of each row's values ``x[r, cols]``, for :func:`rank_dev`.

    A finite value ``v`` of a row whose finite values span ``[lo, hi]`` becomes the
    bucket ``q = floor((v - lo) (2^vb - 2) / (hi - lo))`` (``vb = 31 - bits``; 8.4 M
    buckets for the engine's 256-day rank panel), shifted above its column ``c`` in
    the lowest ``bits`` bits; a missing value (NaN or +-inf) becomes a key above every
    finite one. IEEE subtraction, multiplication and truncation are monotone, so a
    smaller value never gets a larger bucket: sorting a row's keys (``numpy.sort``)
    sorts its values exactly unless two of them share a bucket (``-0.0`` and ``0.0``,
    ties, near-ties: about 1% of the benchmark's rows), which :func:`rank_dev` sees and
    ranks again exactly. A row whose range overflows or underflows puts its values in
    the first and last buckets (all ties, ranked exactly). On a CPU without AVX-512,
    numpy sorts 32-bit keys about 2.5 times as fast as 64-bit ones (256 keys: 0.84
    against 2.14 us). Two passes per row, each run by run of consecutive ``cols``
    (the engine's rank panel is two runs), with no branch. ``count[r]`` is the number
    of finite values. Needs ``bits <= 20``.
    """
    if bits > 20:
        raise ValueError("rank_keys: at most 2^20 columns")
    vb = 31 - bits
    qmax = np.float64((1 << vb) - 2)
    miss = np.int32(((1 << vb) - 1) << bits)
    n = x.shape[0]
    t = cols.shape[0]
    # runs of consecutive columns: run s is key columns run_at[s] .. run_at[s + 1] - 1,
    # read from x's columns cols[run_at[s]] onwards
    run_at = np.empty(t + 1, dtype=np.int64)
    n_runs = 0
    for c in range(t):
        if c == 0 or cols[c] != cols[c - 1] + 1:
            run_at[n_runs] = c
            n_runs += 1
    run_at[n_runs] = t
    for r in range(n):
        lo = np.inf
        hi = -np.inf
        for s in range(n_runs):
            c0, c1 = run_at[s], run_at[s + 1]
            src = x[r, cols[c0]:cols[c0] + c1 - c0]
            for c in range(c1 - c0):
                v = src[c]
                ok = np.abs(v) < np.inf  # finite
                lo = min(lo, v if ok else np.inf)
                hi = max(hi, v if ok else -np.inf)
        scale = qmax / (hi - lo) if hi > lo else 0.0  # inf where hi - lo underflows
        fin = 0
        kr = keys[r]
        for s in range(n_runs):
            c0, c1 = run_at[s], run_at[s + 1]
            src = x[r, cols[c0]:cols[c0] + c1 - c0]
            for c in range(c0, c1):
                v = src[c - c0]
                ok = np.abs(v) < np.inf
                # >= 0; NaN (0 * inf, inf * 0) only where the range under- or overflows,
                # and then the top bucket, like every larger value of the row
                q = (v - lo) * scale
                q = q if q < qmax else qmax
                kr[c] = (np.int32(q) << bits | np.int32(c)) if ok else (miss | np.int32(c))
                fin += 1 if ok else 0
        count[r] = fin


@_jit
def _exact_row(x: FloatArray, r: int, cols: IntArray, dev: FloatArray) -> None:
    """Average ranks (ties averaged, as ``scipy.stats.rankdata``) of one row, as deviations."""
    t = cols.shape[0]
    vals = np.empty(t)
    where = np.empty(t, dtype=np.int64)
    m = 0
    for c in range(t):
        v = x[r, cols[c]]
        if np.isfinite(v):
            vals[m] = v
            where[m] = c
            m += 1
    half = (m + 1.0) / 2.0
    order = np.argsort(vals[:m], kind="mergesort")
    p = 0
    while p < m:
        q = p
        while q + 1 < m and vals[order[q + 1]] == vals[order[p]]:
            q += 1
        avg = (p + 1.0 + q + 1.0) / 2.0
        for s in range(p, q + 1):
            dev[r, where[order[s]]] = avg - half
        p = q + 1


@_jit
def rank_dev(keys: npt.NDArray[np.int32], count: IntArray, x: FloatArray, cols: IntArray,
             bits: int, dev: FloatArray) -> None:
    """Rank deviations ``K - (T + 1)/2`` of each row from its sorted :func:`rank_keys`.

    ``dev[r, c]`` is the deviation of ``x[r, cols[c]]`` (NaN where missing), the rank
    ``K`` that of ``scipy.stats.rankdata(row, nan_policy="omit")`` and ``T`` the
    row's finite values. A row whose sorted keys show two values in one bucket (ties,
    or near-ties: the same key above the lowest ``bits`` bits) is ranked again exactly.
    """
    low = (np.int32(1) << bits) - 1
    n, t = keys.shape
    for r in range(n):
        m = count[r]
        half = (m + 1.0) / 2.0
        tie = False
        for p in range(m):
            k = keys[r, p]
            dev[r, k & low] = (p + 1.0) - half
            if p > 0 and (k >> bits) == (keys[r, p - 1] >> bits):
                tie = True
        for p in range(m, t):  # the missing values' keys sort last: each column once
            dev[r, keys[r, p] & low] = np.nan
        if tie:
            _exact_row(x, r, cols, dev)


@_jit
def _view(buf: FloatArray, rows: int, cols: int) -> FloatArray:
    """A C-contiguous (rows, cols) view of the start of a flat work buffer."""
    return buf[:rows * cols].reshape((rows, cols))


#: Elements of one strip of :func:`corr_event`'s Gram products (securities with a
#: missing day x securities): keeps its memory O(N D), not O(N^2), for events of
#: thousands of securities.
CORR_BLOCK = 1 << 16
#: Securities with a missing day per strip of :func:`corr_event` (at most): each strip
#: multiplies only with the securities after its first, so the products cover about
#: half of the N x N Gram matrix. 16 on an AVX2 machine (AMD EPYC, 993 events of 100
#: securities, one thread, 11 interleaved runs): 0.327-0.349 s against 0.374-0.406 s
#: for 8 and 0.416-0.433 s for 24 (minimum to first quartile); on an AVX-512 machine,
#: 4 to 12 had measured about the same.
CORR_STRIP = 16


@_jit
def _gram_upper(xe: FloatArray, r0: int, r1: int, out: FloatArray, ldc: int) -> None:
    """``out[b * ldc + j - r0] = xe[r0 + b] . xe[j]`` for ``r0 + b < r1`` and ``j >= r0 + b``.

    The upper part of rows ``r0 .. r1 - 1`` of the Gram matrix of ``xe``'s rows, from
    column ``r0`` on, in one symmetric product (BLAS ``dsyrk``, half the products of a
    square block) and one ``dgemm`` for the columns from ``r1`` on. Entries left of a
    row's diagonal are not written. ``out`` is C-contiguous, ``ldc >= xe.shape[0] - r0``.
    """
    n, d = xe.shape
    sq, nc = r1 - r0, n - r1
    if sq <= 0:
        return
    if d == 0:
        out[:(sq - 1) * ldc + n - r0] = 0.0
        return
    ch = np.empty(3, dtype=np.uint8)
    ch[0], ch[1], ch[2] = 76, 84, 78  # "L", "T", "N"
    iv = np.empty(4, dtype=np.int32)
    iv[0], iv[1], iv[2], iv[3] = sq, d, ldc, nc
    dv = np.empty(2)
    dv[0], dv[1] = 1.0, 0.0
    rows = xe[r0:]
    # row-major (sq, d) rows are a column-major (d, sq) matrix A: C = A^T A, stored
    # column-major with leading dimension ldc, is row b's columns b.. ("L" of C^T)
    _dsyrk(ch[0:1].ctypes.data, ch[1:2].ctypes.data, iv[0:1].ctypes.data,
           iv[1:2].ctypes.data, dv[0:1].ctypes.data, rows.ctypes.data, iv[1:2].ctypes.data,
           dv[1:2].ctypes.data, out.ctypes.data, iv[2:3].ctypes.data)
    if nc > 0:  # out[b * ldc + sq + j] = xe[r1 + j] . xe[r0 + b]: C (nc x sq) = B^T A
        _dgemm(ch[1:2].ctypes.data, ch[2:3].ctypes.data, iv[3:4].ctypes.data,
               iv[0:1].ctypes.data, iv[1:2].ctypes.data, dv[0:1].ctypes.data,
               xe[r1:].ctypes.data, iv[1:2].ctypes.data, rows.ctypes.data,
               iv[1:2].ctypes.data, dv[1:2].ctypes.data, out[sq:].ctypes.data,
               iv[2:3].ctypes.data)


@_jit
def corr_event(x: FloatArray, r0: int, n: int, est_off: int, d: int, used: BoolArray,
               corr_sum: FloatArray, corr_cnt: FloatArray, work: FloatArray,
               iwork: IntArray) -> None:
    """Add the sums and counts over ordered pairs of used securities of their valid correlations.

    As ``impact.inference.mean_pairwise_correlation`` (pairwise complete, at least 3
    common days, non-zero variances) of the estimation-window residuals
    ``x[r0:r0 + n, est_off:est_off + d]``, per window (``used[:, w]``). Two
    securities without a missing day have the correlation ``z_i . z_j`` of their
    standardized residuals, so the sum over all such pairs is ``|sum z|^2 - sum |z|^2``
    (O(N D)). The securities are reordered, those with a missing day first; a pair
    with one takes ``x_i . x_j`` (zeros at the missing days of either) from the upper
    part of the Gram matrix of such securities with all after them
    (:func:`_gram_upper`: a symmetric BLAS product and a rectangular one per block of
    strips, half the Gram matrix in all), and subtracts from each security's sums its
    values on the other's missing days. A security that misses most days ("short":
    a short history, say) is listed by its valid days instead, and a pair with it
    takes the other's sums over those days directly: its cost follows the days it
    has, not the days it misses. Each strip's pairs are then one branch-free loop
    over the other security (SIMD). The strips hold at most :data:`CORR_STRIP`
    securities, and their blocks :data:`CORR_BLOCK` products (or one strip's), so the
    memory stays O(N D) for events of thousands of securities. ``work`` and ``iwork`` are
    flat buffers of at least :func:`corr_work` doubles and ``n * (d + 2)`` integers
    (reused from event to event: fresh memory is slow, and page faults serialize
    threads).
    """
    nw = used.shape[1]
    if work.shape[0] < corr_work(n, d, nw) or iwork.shape[0] < n * (d + 2):
        raise ValueError("corr_event: work buffers too small")
    # order: securities with a missing day first (in input order), then the others
    perm = iwork[n * d:n * d + n]  # position -> security
    gapped = iwork[n * d + n:n * d + 2 * n]
    for i in range(n):
        gapped[i] = 0
        for k in range(d):
            if not np.isfinite(x[r0 + i, est_off + k]):
                gapped[i] = 1
                break
    g = 0  # securities with a missing day
    u = 0
    for flag in (1, 0):
        for i in range(n):
            if gapped[i] == flag:
                perm[u] = i
                u += 1
        if flag == 1:
            g = u
    xe = _view(work, n, d)  # by position; 0 where missing
    off = n * d
    xt = _view(work[off:], d, n)  # its transpose, NaN where missing
    off += n * d
    stats = _view(work[off:], 4, n)  # missing days, sum, sum of squares, short (1.0)
    off += 4 * n
    uf = _view(work[off:], nw, n)  # 1.0 where used in the window
    off += nw * n
    gram = work[off:off + _gram_size(n)]  # the Gram rows of a block of strips
    off += _gram_size(n)
    c, s, q, short = stats[0], stats[1], stats[2], stats[3]
    for a in range(n):
        i = perm[a]
        ca = 0
        sa = 0.0
        qa = 0.0
        for k in range(d):
            v = x[r0 + i, est_off + k]
            if np.isfinite(v):
                xe[a, k] = v
                xt[k, a] = v
                sa += v
                qa += v * v
            else:
                xe[a, k] = 0.0
                xt[k, a] = np.nan
                iwork[a * d + ca] = k  # the missing days of position a
                ca += 1
        c[a] = ca
        s[a] = sa
        q[a] = qa
        short[a] = 0.0
        if 2 * ca > d:  # short: list its valid days instead
            short[a] = 1.0
            t = 0
            for k in range(d):
                if np.isfinite(x[r0 + i, est_off + k]):
                    iwork[a * d + t] = k
                    t += 1
        for w in range(nw):
            uf[w, a] = 1.0 if used[i, w] else 0.0
    # pairs of securities without a missing day
    if d >= 3:
        zsum = _view(work[off:], nw, d)
        zsum[:, :] = 0.0
        z = work[off + nw * d:off + nw * d + d]
        for w in range(nw):
            nrm = 0.0
            kk = 0.0
            for a in range(g, n):
                if uf[w, a] == 0.0:
                    continue
                var = q[a] - s[a] * s[a] / d
                if not var > 0:
                    continue
                mean = s[a] / d
                sd = np.sqrt(var)
                row = zsum[w]
                for k in range(d):
                    z[k] = (xe[a, k] - mean) / sd
                    row[k] += z[k]
                    nrm += z[k] * z[k]
                kk += 1.0
            tot = 0.0
            for k in range(d):
                tot += zsum[w, k] * zsum[w, k]
            corr_sum[w] += tot - nrm
            corr_cnt[w] += kk * kk - kk
    # pairs (a, b > a) with a missing day at a, in strips of positions a
    h = min(CORR_STRIP, _corr_rows(n))  # h * n <= the strip bound of corr_work
    # blocks of strips share one Gram product (hb * n <= _gram_size(n))
    hb = max(1, _corr_rows(n) // h) * h
    g0 = 0
    ldg = n
    for p0 in range(0, g, h):
        nb = min(g, p0 + h) - p0
        m = n - p0  # the strip's columns: positions p0 .. n - 1
        if p0 % hb == 0:  # x_a . x_j of the block's rows a, columns j >= a, in gram
            g0, ldg = p0, n - p0
            _gram_upper(xe, p0, min(g, p0 + hb), gram, ldg)
        o = off
        # fw[0..2][b, j]: sums over the days strip row b misses (over the days it has,
        # when short) of x_j, x_j^2 and "j misses"; rv[0..1][j, b]: sums over the days j
        # misses (has, when short) of x_b, x_b^2; rt: rv transposed (rows b)
        fw = work[o:o + 3 * nb * m].reshape((3, nb, m))
        o += 3 * nb * m
        rv = work[o:o + 2 * nb * m].reshape((2, m, nb))
        o += 2 * nb * m
        rt = work[o:o + 2 * nb * m].reshape((2, nb, m))
        o += 2 * nb * m
        fwx, fwq, fwc, rvx, rvq = fw[0], fw[1], fw[2], rv[0], rv[1]
        rho = work[o:o + m]
        o += m
        ok = work[o:o + m]
        fw[:, :, :] = 0.0
        rv[:, :, :] = 0.0
        for b in range(nb):
            a = p0 + b
            for e in range(int(d - c[a] if short[a] else c[a])):
                xk = xt[iwork[a * d + e], p0:]
                for j in range(m):
                    v = xk[j]
                    have = v == v  # NaN: j misses the day
                    v = v if have else 0.0
                    fwx[b, j] += v
                    fwq[b, j] += v * v
                    fwc[b, j] += 0.0 if have else 1.0
        for j in range(g - p0):
            jj = p0 + j
            rx, rq = rvx[j], rvq[j]
            for e in range(int(d - c[jj] if short[jj] else c[jj])):
                xk = xt[iwork[jj * d + e], p0:p0 + nb]
                for b in range(nb):
                    v = xk[b]
                    v = v if v == v else 0.0
                    rx[b] += v
                    rq[b] += v * v
        for j in range(m):
            for b in range(nb):
                rt[0, b, j] = rvx[j, b]
                rt[1, b, j] = rvq[j, b]
        for b in range(nb):
            a = p0 + b
            ca, sa, qa = c[a], s[a], q[a]
            # x_a . x_j (0 at the missing days of either) for j = p0 ..; left of a's
            # diagonal, not computed (and not counted: the pair comes before)
            g_at = (a - g0) * ldg + p0 - g0
            pr, fx, fq, fc = gram[g_at:g_at + m], fwx[b], fwq[b], fwc[b]
            tx, tq, col_short = rt[0], rt[1], short[p0:]
            # branch-free (SIMD): a pair without 3 common days divides by zero, which
            # gives inf/NaN under error_model="numpy" and fails `good`; that test needs
            # IEEE NaN and inf (no fastmath). x_a's sums over the common days: its own
            # less those over j's missing days, or those over a short j's days directly
            if short[a]:  # x_j's sums over a's days, directly
                for j in range(m):
                    jj = p0 + j
                    si = tx[b, j] if col_short[j] else sa - tx[b, j]
                    qi = tq[b, j] if col_short[j] else qa - tq[b, j]
                    rho[j], ok[j] = _pair_corr(jj > a, d - ca - fc[j], pr[j], si, qi, fx[j],
                                               fq[j])
            else:
                for j in range(m):
                    jj = p0 + j
                    si = tx[b, j] if col_short[j] else sa - tx[b, j]
                    qi = tq[b, j] if col_short[j] else qa - tq[b, j]
                    rho[j], ok[j] = _pair_corr(jj > a, d - ca - c[jj] + fc[j], pr[j], si, qi,
                                               s[jj] - fx[j], q[jj] - fq[j])
            for w in range(nw):
                if uf[w, a] == 0.0:
                    continue
                tot, cnt = _masked_sums(rho, ok, uf[w, p0:])
                corr_sum[w] += 2.0 * tot
                corr_cnt[w] += 2.0 * cnt


@nb.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _pair_corr(after: bool, nij: float, pij: float, si: float, qi: float, sj: float,
               qj: float) -> tuple[float, float]:
    """One pair's correlation over its ``nij`` common days and 1.0 if it counts, else 0, 0.

    ``pij`` is the sum of the products, ``si``, ``qi`` (``sj``, ``qj``) the sums and sums
    of squares of each security over those days; the pair counts when it comes after
    (``after``), has 3 common days, non-zero variances and a finite correlation.
    """
    inv = 1.0 / nij
    cov = pij - si * sj * inv
    vi = qi - si * si * inv
    vj = qj - sj * sj * inv
    r = cov / np.sqrt(vi * vj)
    good = after & (nij >= 3.0) & (vi > 0.0) & (vj > 0.0) & (np.abs(r) < np.inf)
    return (r, 1.0) if good else (0.0, 0.0)


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def _masked_sums(v: FloatArray, flag: FloatArray, mask: FloatArray) -> tuple[float, float]:
    """``sum(v * mask)`` and ``sum(flag * mask)``, added in any order (SIMD)."""
    tot = 0.0
    cnt = 0.0
    for j in range(v.shape[0]):
        tot += v[j] * mask[j]
        cnt += flag[j] * mask[j]
    return tot, cnt


@_jit
def _corr_rows(n: int) -> int:
    """Rows of the Gram products of :func:`corr_event` that fit :data:`CORR_BLOCK`."""
    return max(1, CORR_BLOCK // max(n, 1))


@_jit
def _gram_size(n: int) -> int:
    """Doubles of :func:`corr_event`'s Gram rows for ``n`` securities (monotone in n)."""
    return min(n * n, max(CORR_STRIP * n, CORR_BLOCK))


@_jit
def corr_work(n: int, d: int, nw: int) -> int:
    """Doubles of :func:`corr_event`'s work buffer for ``n`` securities, ``d`` days."""
    # a bound on a strip's sums (rows x columns), monotone in n: so a buffer for
    # an event's size serves every smaller event
    strip = max(n, min(CORR_STRIP * n, CORR_BLOCK))
    return 2 * n * d + 4 * n + nw * n + _gram_size(n) + max(nw * d + d, 7 * strip + 2 * n)


@_jit
def event_sums(x: FloatArray, seg: IntArray, rows: IntArray, msum: FloatArray,
               sigma: FloatArray, nobs: IntArray,
               rbar_m: FloatArray, s_mm: FloatArray, win_col: IntArray, win_len: IntArray,
               win_in: BoolArray, est_off: int, n_est: int, share: FloatArray,
               need_corr: bool, dev: FloatArray, k_col: IntArray,
               o_int: IntArray, o_flt: FloatArray) -> None:
    """Per (event, window) sums over the used securities of the events of a chunk.

    ``x`` holds the residuals (rows: the chunk's pairs sorted by event; event ``e``
    is rows ``seg[e]:seg[e + 1]``), ``msum`` the sums of their benchmark returns over
    each window (both from :func:`residuals`); ``rows`` their pair indices into the
    per-pair arrays; ``share`` (empty: no sign test) each row's share of positive
    estimation-window residuals (also from :func:`residuals`). A security is used in a
    window (``win_col``, ``win_len``: first gathered column and days; ``win_in``:
    inside the event window) when it has every AR of it. ``dev`` (empty: no rank
    tests) holds the rank deviations of the rank panel, NaN where missing (``k_col``:
    a window's first rank column).

    Outputs, per event and window: ``o_int[e, w, :]`` = used securities, positive
    CARs, position in the event of the first used security with ``Var(CAR) <= 0``
    (:data:`NONE` if none), used securities with ``nobs - 2 <= 2``, securities in the
    generalized sign's share; ``o_flt[e, w, :]`` = sum and sum of squared deviations
    of the CARs, of the standardized CARs, sum of ``dof/(dof-2)``, sum of the shares
    of positive estimation-window residuals, sum and count of valid pairwise
    correlations, ``S(K)``, ``Kbar`` on the window's first day, sum of ``Kbar`` over
    the window (NaN where no rank test).
    """
    n_ev = seg.shape[0] - 1
    nw = win_len.shape[0]
    need_rank = dev.shape[0] > 0
    nt = dev.shape[1]
    # work arrays for the largest event, allocated once
    n_max = 0
    for e in range(n_ev):
        n_max = max(n_max, seg[e + 1] - seg[e])
    n_work = corr_work(n_max, n_est, nw) if need_corr else 0  # monotone in the size
    used_buf = np.empty(n_max * nw, dtype=np.bool_)
    car_buf = np.empty(n_max * nw)
    scar_buf = np.empty(n_max * nw)
    cs = np.empty(nw)
    cc = np.empty(nw)
    ks_all = np.empty(nt)
    kc_all = np.empty(nt)
    ks = np.empty(nt)
    kc = np.empty(nt)
    work = np.empty(n_work)
    iwork = np.empty(n_max * (n_est + 2) if need_corr else 0, dtype=np.int64)
    for e in range(n_ev):
        r0 = seg[e]
        n = seg[e + 1] - r0
        used = used_buf[:n * nw].reshape((n, nw))
        used[:, :] = False
        car = _view(car_buf, n, nw)
        scar = _view(scar_buf, n, nw)
        car[:, :] = 0.0
        scar[:, :] = 0.0
        for i in range(n):
            r = r0 + i
            q = rows[r]
            s2 = sigma[q] * sigma[q]
            nob = np.float64(nobs[q])
            dof = nob - 2.0
            den = dof / (dof - 2.0) if dof > 2 else 0.0
            sh = share[r] if share.shape[0] > 0 else np.nan
            for w in range(nw):
                if not win_in[w]:
                    continue
                tot = 0.0
                ok = True
                for k in range(win_col[w], win_col[w] + win_len[w]):
                    v = x[r, k]
                    if not np.isfinite(v):
                        ok = False
                        break
                    tot += v
                if not ok:
                    continue
                used[i, w] = True
                car[i, w] = tot
                ln = np.float64(win_len[w])
                dm = msum[r, w] - ln * rbar_m[q]
                var = s2 * (ln + ln * ln / nob + dm * dm / s_mm[q])
                o_int[e, w, 0] += 1
                if tot > 0:
                    o_int[e, w, 1] += 1
                if var > 0:
                    scar[i, w] = tot / np.sqrt(var)
                elif o_int[e, w, 2] == NONE:
                    o_int[e, w, 2] = i
                if dof <= 2:
                    o_int[e, w, 3] += 1
                o_flt[e, w, 4] += den
                o_flt[e, w, 0] += tot
                o_flt[e, w, 2] += scar[i, w]
                if np.isfinite(sh):
                    o_flt[e, w, 5] += sh
                    o_int[e, w, 4] += 1
        for w in range(nw):  # squared deviations from the means
            m_car = o_flt[e, w, 0] / o_int[e, w, 0]
            m_scar = o_flt[e, w, 2] / o_int[e, w, 0]
            for i in range(n):
                if used[i, w]:
                    o_flt[e, w, 1] += (car[i, w] - m_car) ** 2
                    o_flt[e, w, 3] += (scar[i, w] - m_scar) ** 2
        if need_corr:
            cs[:] = 0.0
            cc[:] = 0.0
            corr_event(x, r0, n, est_off, n_est, used, cs, cc, work, iwork)
            for w in range(nw):
                o_flt[e, w, 6] = cs[w]
                o_flt[e, w, 7] = cc[w]
        if need_rank:
            # sums of the rank deviations (multiples of 1/2: exact in any order) and of
            # the finite values, per day, over the event's pairs; per window less those
            # not used in it
            ks_all[:] = 0.0
            kc_all[:] = 0.0
            for i in range(n):
                for t in range(nt):
                    v = dev[r0 + i, t]
                    if v == v:  # not NaN: the value is not missing
                        ks_all[t] += v
                        kc_all[t] += 1.0
            for w in range(nw):
                ks[:] = ks_all
                kc[:] = kc_all
                for i in range(n):
                    if not used[i, w]:
                        for t in range(nt):
                            v = dev[r0 + i, t]
                            if v == v:
                                ks[t] -= v
                                kc[t] -= 1.0
                sq = 0.0
                have = 0
                for t in range(nt):
                    if kc[t] > 0:
                        ks[t] = ks[t] / kc[t]  # Kbar
                        sq += ks[t] * ks[t]
                        have += 1
                    else:
                        ks[t] = 0.0
                o_flt[e, w, 8] = np.sqrt(sq / have)
                if win_in[w]:
                    o_flt[e, w, 9] = ks[k_col[w]]
                    tot = 0.0
                    for t in range(k_col[w], k_col[w] + win_len[w]):
                        tot += ks[t]
                    o_flt[e, w, 10] = tot


@_jit
def scatter_returns(p: IntArray, r: FloatArray, m: FloatArray, ret: FloatArray,
                    mkt: FloatArray, seen: npt.NDArray[np.uint8]) -> int:
    """Put one batch of returns rows at their dense positions; the count of repeated ones.

    Row ``k`` of the batch goes to position ``p[k]`` of ``ret`` and ``mkt`` (its
    return ``r[k]`` and benchmark return ``m[k]``), and ``seen`` marks the position
    with 1. Returns how many of the batch's positions were already marked: a
    ``(ticker, session_idx)`` that the returns table holds more than once. One pass
    instead of numpy's three fancy-index assignments (0.02 s against 0.06 s for the
    benchmark's 8.2 M rows).
    """
    dup = 0
    for k in range(p.shape[0]):
        i = p[k]
        dup += seen[i]
        seen[i] = 1
        ret[i] = r[k]
        mkt[i] = m[k]
    return dup


@_jit
def _session(ret: FloatArray, mkt: FloatArray, i: int, use_mkt: bool
             ) -> tuple[bool, float, float]:
    """Session ``i`` of :func:`window_sums`: usable?, its return and benchmark return."""
    r, m = ret[i], mkt[i] if use_mkt else 0.0
    return bool(np.isfinite(r) and np.isfinite(m)), r, m


@_jit
def window_sums(ret: FloatArray, mkt: FloatArray, starts: IntArray, span: IntArray,
                t0: int, t1: int, q_order: IntArray, q_bounds: IntArray, a_pos: IntArray,
                b_pos: IntArray, out: FloatArray, mu: FloatArray, use_mkt: bool) -> None:
    """Estimation-window sums of the queries of series ``t0 .. t1 - 1`` (see ``engine``).

    Series ``t`` occupies ``ret[starts[t]:starts[t] + span[t]]``; its queries are
    ``q_order[q_bounds[t]:q_bounds[t + 1]]``, query ``k`` summing the sessions from
    dense index ``a_pos[k]`` to ``b_pos[k] - 1``. A session is usable when both
    returns are finite (``use_mkt``), or the security's (not ``use_mkt``: the
    benchmark is then read as 0). ``out[:, k]`` receives the sums over the query's sessions of
    1, r', m', r'm', m'^2, r'^2, where ``r' = r - mu_r``, ``m' = m - mu_m`` and the
    products are centred on their own means too (``mu[:, t]`` = means over the
    series' usable sessions of r, m, r'm', m'^2, r'^2): the running sums stay small,
    so their differences lose little. Each series' running sums start at 0.
    """
    n_max = 0
    for t in range(t0, t1):
        n_max = max(n_max, span[t])
    run = np.empty((6, n_max + 1))
    for t in range(t0, t1):
        s0 = starts[t]
        n = span[t]
        cnt = 0.0
        sr = 0.0
        sm = 0.0
        for i in range(s0, s0 + n):
            ok, r, m = _session(ret, mkt, i, use_mkt)
            if ok:
                cnt += 1.0
                sr += r
                sm += m
        den = max(cnt, 1.0)
        mu_r, mu_m = sr / den, sm / den
        srm = 0.0
        smm = 0.0
        srr = 0.0
        for i in range(s0, s0 + n):
            ok, r, m = _session(ret, mkt, i, use_mkt)
            if ok:
                rc, mc = r - mu_r, m - mu_m
                srm += rc * mc
                smm += mc * mc
                srr += rc * rc
        mu_rm, mu_mm, mu_rr = srm / den, smm / den, srr / den
        mu[0, t], mu[1, t], mu[2, t], mu[3, t], mu[4, t] = mu_r, mu_m, mu_rm, mu_mm, mu_rr
        c0 = c1 = c2 = c3 = c4 = c5 = 0.0
        for k in range(6):
            run[k, 0] = 0.0
        for i in range(n):
            ok, r, m = _session(ret, mkt, s0 + i, use_mkt)
            if ok:
                rc, mc = r - mu_r, m - mu_m
                c0 += 1.0
                c1 += rc
                c2 += mc
                c3 += rc * mc - mu_rm
                c4 += mc * mc - mu_mm
                c5 += rc * rc - mu_rr
            run[0, i + 1] = c0
            run[1, i + 1] = c1
            run[2, i + 1] = c2
            run[3, i + 1] = c3
            run[4, i + 1] = c4
            run[5, i + 1] = c5
        for j in range(q_bounds[t], q_bounds[t + 1]):
            q = q_order[j]
            a, b = a_pos[q] - s0, b_pos[q] - s0
            for k in range(6):
                out[k, q] = run[k, b] - run[k, a]


@_jit
def ar_cars(ret: FloatArray, mkt: FloatArray, okp: IntArray, r0: int, r1: int,
            day0: IntArray, pos0: IntArray, last: IntArray, alpha: FloatArray,
            beta: FloatArray, s2: FloatArray, nobs: IntArray, rbar_m: FloatArray,
            s_mm: FloatArray, v0: int, win_lo: IntArray, win_hi: IntArray,
            inside: BoolArray, m_ev: FloatArray, ar: FloatArray, var_ar: FloatArray,
            n_days: npt.NDArray[np.int32], status: npt.NDArray[np.uint8],
            reason: npt.NDArray[np.uint8], car: FloatArray,
            var_car: FloatArray, model: int) -> float:
    """Event-window ARs, their variances and the CARs of ok pairs ``okp[r0:r1]``.

    Row ``r`` of ``inside``, ``m_ev``, ``ar``, ``var_ar`` (ok pairs x event days) is
    pair ``okp[r]``: the session ``day0 + v0 + k`` lies in the series (``inside``),
    the benchmark return (not kept when ``m_ev`` has no rows), the AR and its
    variance (NaN where the AR is missing). By
    ``model``: 0 market model, ``AR = ret - (beta mkt + alpha)``,
    ``Var(AR) = s^2 (1 + 1/L1 + (mkt - Rbar_m)^2 / S_mm)``; 1 constant mean
    (``alpha``), ``AR = ret - alpha``, ``Var(AR) = s^2 (1 + 1/L1)``; 2 market-adjusted,
    ``AR = ret - mkt``, ``Var(AR) = s^2``. The CAR outputs (pairs x windows, indexed
    by the pair) get, per window ``[win_lo, win_hi]`` (event-day columns): the
    sessions inside the series, the status (0 complete, 1 not), the reason (0; 1
    window leaves the series; 2 a missing AR), and for a complete CAR its value, its
    variance (the sum of the ARs' covariances: ``s^2 (L + L^2/L1 + (sum_W (mkt -
    Rbar_m))^2 / S_mm)``, ``s^2 (L + L^2/L1)``, ``s^2 L``); ``t`` is the reader's
    ``car / sqrt(var_car)`` (the view ``engine_car`` makes it). The pairs go in groups
    of :data:`RESID_GROUP`, their returns read ahead as in :func:`residuals` (10^6
    pairs on one thread: 0.31-0.37 s against 0.39-0.45 s, minimum to median of 14, in
    two runs). Returns the sum of the values read ahead (of no other use).
    """
    m_row = np.empty(ar.shape[1])
    touch = 0.0
    for g0 in range(r0, r1, RESID_GROUP):
        g1 = min(r1, g0 + RESID_GROUP)
        for r in range(g0, g1):  # read ahead (see RESID_GROUP)
            p = okp[r]
            i0, i1 = max(day0[p] + v0, 0), min(day0[p] + v0 + ar.shape[1] - 1, last[p])
            touch += _read_ahead(ret, mkt, pos0[p] + i0, pos0[p] + i1 + 1)
        for r in range(g0, g1):
            _ar_row(ret, mkt, okp[r], r, day0, pos0, last, alpha, beta, s2, nobs, rbar_m,
                    s_mm, v0, win_lo, win_hi, inside, m_ev, ar, var_ar, n_days, status,
                    reason, car, var_car, model, m_row)
    return touch


@_jit
def _ar_row(ret: FloatArray, mkt: FloatArray, p: int, r: int, day0: IntArray, pos0: IntArray,
            last: IntArray, alpha: FloatArray, beta: FloatArray, s2: FloatArray,
            nobs: IntArray, rbar_m: FloatArray, s_mm: FloatArray, v0: int,
            win_lo: IntArray, win_hi: IntArray, inside: BoolArray, m_ev: FloatArray,
            ar: FloatArray, var_ar: FloatArray, n_days: npt.NDArray[np.int32],
            status: npt.NDArray[np.uint8], reason: npt.NDArray[np.uint8], car: FloatArray,
            var_car: FloatArray, model: int, m_row: FloatArray) -> None:
    """Row ``r`` (pair ``p``) of :func:`ar_cars` (``m_row``: work array of the event days)."""
    n_rel = ar.shape[1]
    nw = win_lo.shape[0]
    keep_m = m_ev.shape[0] > 0
    a, b, sp = alpha[p], beta[p], s2[p]
    inv_n = 1.0 / nobs[p]
    rb, smm = rbar_m[p], s_mm[p]
    for k in range(n_rel):
        i = day0[p] + v0 + k
        ins = 0 <= i <= last[p]
        inside[r, k] = ins
        if ins:
            m = mkt[pos0[p] + i]
            if model == 1:
                x = ret[pos0[p] + i] - a
            elif model == 2:
                x = ret[pos0[p] + i] - m
            else:
                x = ret[pos0[p] + i] - (b * m + a)
            if not np.isfinite(x):  # a missing or infinite input: no AR
                x = np.nan
        else:
            m = np.nan
            x = np.nan
        m_row[k] = m
        if keep_m:
            m_ev[r, k] = m
        ar[r, k] = x
        if np.isfinite(x) and model == 0:
            dv = m - rb
            var_ar[r, k] = (dv * dv / smm + (1.0 + inv_n)) * sp
        elif np.isfinite(x):
            var_ar[r, k] = (1.0 + inv_n) * sp if model == 1 else sp
        else:
            var_ar[r, k] = np.nan
    for w in range(nw):
        ln = win_hi[w] - win_lo[w] + 1
        ns = 0
        have = 0
        c = 0.0
        cm = 0.0
        for k in range(win_lo[w], win_hi[w] + 1):
            if inside[r, k]:
                ns += 1
            if np.isfinite(ar[r, k]):
                have += 1
                c += ar[r, k]
            if np.isfinite(m_row[k]):
                cm += m_row[k]
        full = ns == ln and have == ln
        n_days[p, w] = ns
        status[p, w] = 0 if full else 1
        reason[p, w] = 0 if full else (1 if ns < ln else 2)
        if full:
            lf = np.float64(ln)
            if model == 0:
                dev = cm - lf * rb
                v = sp * (lf + lf * lf / nobs[p] + dev * dev / smm)
            elif model == 1:
                v = sp * (lf + lf * lf / nobs[p])
            else:
                v = sp * lf
            car[p, w] = c
            var_car[p, w] = v
