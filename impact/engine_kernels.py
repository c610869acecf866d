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

import numba as nb
import numpy as np
import numpy.typing as npt

__all__ = ["corr_event", "event_sums", "rank_dev", "rank_keys", "residuals"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# error_model="numpy": 0/0 is NaN (as numpy), not a ZeroDivisionError
_jit = nb.njit(cache=True, nogil=True, error_model="numpy")
_FLIP = np.int64(0x7FFFFFFFFFFFFFFF)
#: "no such position" (as impact.engine_tests._NONE)
NONE = np.iinfo(np.int64).max


@_jit
def residuals(ret: FloatArray, mkt: FloatArray, rows: IntArray, day0_pos: IntArray,
              lo_pos: IntArray, hi_pos: IntArray, alpha: FloatArray, beta: FloatArray,
              base: int, ex_first: IntArray, ex_count: IntArray, ex_lo_col: IntArray,
              ex_hi_col: IntArray, x: FloatArray) -> None:
    """Fill ``x[r, k]`` with the residual of pair ``rows[r]`` on relative day ``base + k``.

    The residual is ``ret - (beta mkt + alpha)``; NaN where ``ret`` or ``mkt`` is
    missing, where the session lies outside the ticker's span ``[lo_pos, hi_pos]``
    and on the pair's excluded sessions (runs ``ex_first[q] .. + ex_count[q]`` of
    columns ``ex_lo_col .. ex_hi_col``; empty arrays: no exclusions).
    """
    n, ltot = x.shape
    has_ex = ex_count.shape[0] > 0
    for r in range(n):
        q = rows[r]
        s = day0_pos[q] + base
        a = alpha[q]
        b = beta[q]
        lo = lo_pos[q]
        hi = hi_pos[q]
        k0 = min(max(lo - s, 0), ltot)  # columns k0 .. k1 - 1 lie in the span
        k1 = max(min(hi - s + 1, ltot), k0)
        row = x[r]
        row[:k0] = np.nan
        row[k1:] = np.nan
        for k in range(k0, k1):
            row[k] = ret[s + k] - (b * mkt[s + k] + a)
        if has_ex:
            for e in range(ex_first[q], ex_first[q] + ex_count[q]):
                for k in range(ex_lo_col[e], ex_hi_col[e] + 1):
                    x[r, k] = np.nan


@_jit
def rank_keys(x: FloatArray, cols: IntArray, bits: int, keys: IntArray,
              count: IntArray) -> None:
    """Sort keys of each row's values ``x[r, cols]``, for :func:`rank_dev`.

    A finite value becomes its bits, mapped so that signed integer order is the
    order of the doubles (``-0.0`` counts as ``0.0``), with its column ``c`` in the
    lowest ``bits`` bits; a missing value becomes a key above every finite one.
    Sorting a row's keys (``numpy.sort``, SIMD) sorts its values exactly, unless two
    values agree in all but those lowest bits (:func:`rank_dev` sees that).
    ``count[r]`` is the number of finite values.
    """
    low = (np.int64(1) << bits) - 1
    top = _FLIP & ~low
    buf = np.empty(1)
    ibuf = buf.view(np.int64)
    n = x.shape[0]
    t = cols.shape[0]
    for r in range(n):
        fin = 0
        for c in range(t):
            v = x[r, cols[c]]
            if np.isfinite(v):
                buf[0] = 0.0 if v == 0.0 else v
                i = ibuf[0]
                if i < 0:
                    i ^= _FLIP
                keys[r, c] = (i & ~low) | c
                fin += 1
            else:
                keys[r, c] = top | c
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
def rank_dev(keys: IntArray, count: IntArray, x: FloatArray, cols: IntArray, bits: int,
             dev: FloatArray) -> None:
    """Rank deviations ``K - (T + 1)/2`` of each row from its sorted :func:`rank_keys`.

    ``dev[r, c]`` is the deviation of ``x[r, cols[c]]`` (NaN where missing), the rank
    ``K`` that of ``scipy.stats.rankdata(row, nan_policy="omit")`` and ``T`` the
    row's finite values. A row whose sorted keys show two values agreeing in all but
    the lowest ``bits`` bits (ties, or near-ties) is ranked again exactly.
    """
    low = (np.int64(1) << bits) - 1
    n, t = keys.shape
    for r in range(n):
        m = count[r]
        half = (m + 1.0) / 2.0
        for c in range(t):
            dev[r, c] = np.nan
        tie = False
        for p in range(m):
            k = keys[r, p]
            dev[r, k & low] = (p + 1.0) - half
            if p > 0 and (k >> bits) == (keys[r, p - 1] >> bits):
                tie = True
        if tie:
            _exact_row(x, r, cols, dev)


@_jit
def _view(buf: FloatArray, rows: int, cols: int) -> FloatArray:
    """A C-contiguous (rows, cols) view of the start of a flat work buffer."""
    return buf[:rows * cols].reshape((rows, cols))


#: Elements of one block of :func:`corr_event`'s Gram products (rows of securities with
#: a missing day x all securities): keeps its memory O(N D), not O(N^2), for events of
#: thousands of securities.
CORR_BLOCK = 1 << 16


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
    (O(N D)). A pair with a missing day takes ``x_i . x_j`` (zeros at the missing
    days) from a BLAS product and subtracts from each security's sums its values on
    the other's missing days (vector adds over the securities: SIMD). The securities
    with a missing day are taken in blocks of about :data:`CORR_BLOCK` / N, so the
    memory stays O(N D) for events of thousands of securities. ``work`` and
    ``iwork`` are flat buffers of at least :func:`corr_work` doubles and
    ``n * (d + 2)`` integers (reused from event to event: fresh memory is slow, and
    page faults serialize threads).
    """
    nw = used.shape[1]
    if work.shape[0] < corr_work(n, d, nw) or iwork.shape[0] < n * (d + 2):
        raise ValueError("corr_event: work buffers too small")
    xe = _view(work, n, d)
    off = n * d
    xt = _view(work[off:], d, n)
    off += n * d
    mt = _view(work[off:], d, n)  # 1.0 where missing
    off += n * d
    stats = _view(work[off:], 3, n)  # missing days, sum, sum of squares
    off += 3 * n
    c, s, q = stats[0], stats[1], stats[2]
    c[:] = 0.0
    s[:] = 0.0
    q[:] = 0.0
    for i in range(n):
        for k in range(d):
            v = x[r0 + i, est_off + k]
            if np.isfinite(v):
                xe[i, k] = v
                xt[k, i] = v
                mt[k, i] = 0.0
                s[i] += v
                q[i] += v * v
            else:
                xe[i, k] = 0.0
                xt[k, i] = 0.0
                mt[k, i] = 1.0
                iwork[i * d + int(c[i])] = k  # the missing days of i
                c[i] += 1.0
    # pairs of securities without a missing day
    if d >= 3:
        zsum = _view(work[off:], nw, d)
        zsum[:, :] = 0.0
        z = work[off + nw * d:off + nw * d + d]
        for w in range(nw):
            nrm = 0.0
            kk = 0.0
            for i in range(n):
                if c[i] > 0 or not used[i, w]:
                    continue
                var = q[i] - s[i] * s[i] / d
                if not var > 0:
                    continue
                mean = s[i] / d
                sd = np.sqrt(var)
                row = zsum[w]
                for k in range(d):
                    z[k] = (xe[i, k] - mean) / sd
                    row[k] += z[k]
                    nrm += z[k] * z[k]
                kk += 1.0
            tot = 0.0
            for k in range(d):
                tot += zsum[w, k] * zsum[w, k]
            corr_sum[w] += tot - nrm
            corr_cnt[w] += kk * kk - kk
    # pairs with a security that misses days, in blocks of such securities
    gap = iwork[n * d:n * d + n]
    gpos = iwork[n * d + n:n * d + 2 * n]  # position in gap
    g = 0
    for i in range(n):
        if c[i] > 0:
            gap[g] = i
            gpos[i] = g
            g += 1
    rows = _corr_rows(n)
    for a0 in range(0, g, rows):
        nb = min(g, a0 + rows) - a0
        o = off
        xg = _view(work[o:], nb, d)
        o += nb * d
        prod = _view(work[o:], nb, n)
        o += nb * n
        # fw_*[b, j]: sums over the days block row b misses of x_j, x_j^2, "j misses"
        fw = _view(work[o:], 3 * nb, n)
        o += 3 * nb * n
        # rv_*[j, b]: sums over the days j misses of x_b, x_b^2, "b misses" (when the
        # block holds every security with a missing day, fw has them: rv is not built)
        one = nb == g
        rv = _view(work[o:], 3 * n, nb)
        o += 3 * n * nb
        xgt = _view(work[o:], d, nb)
        o += d * nb
        mgt = _view(work[o:], d, nb)
        for b in range(nb):
            i = gap[a0 + b]
            xg[b] = xe[i]
            for k in range(d):
                xgt[k, b] = xt[k, i]
                mgt[k, b] = mt[k, i]
        np.dot(xg, xt, prod)  # x_i . x_j (0 at the missing days of either)
        for b in range(nb):
            i = gap[a0 + b]
            _missing_sums(iwork[i * d:i * d + int(c[i])], xt, mt, fw[b], fw[nb + b],
                          fw[2 * nb + b])
        for a in range(0 if one else g):
            j = gap[a]
            _missing_sums(iwork[j * d:j * d + int(c[j])], xgt, mgt, rv[j], rv[n + j],
                          rv[2 * n + j])
        for b in range(nb):
            i = gap[a0 + b]
            for j in range(n):
                if j == i or (c[j] > 0 and j < i):
                    continue  # a pair of two gapped securities is taken once, from the lower
                both = False
                for w in range(nw):
                    if used[i, w] and used[j, w]:
                        both = True
                if not both:
                    continue
                nij = d - c[i] - c[j] + fw[2 * nb + b, j]
                if nij < 3:
                    continue
                si, qi = s[i], q[i]
                if c[j] > 0 and one:
                    si -= fw[gpos[j], i]
                    qi -= fw[nb + gpos[j], i]
                elif c[j] > 0:
                    si -= rv[j, b]
                    qi -= rv[n + j, b]
                sj = s[j] - fw[b, j]
                qj = q[j] - fw[nb + b, j]
                cov = prod[b, j] - si * sj / nij
                vi = qi - si * si / nij
                vj = qj - sj * sj / nij
                if not (vi > 0 and vj > 0):
                    continue
                rho = cov / np.sqrt(vi * vj)
                if not np.isfinite(rho):
                    continue
                for w in range(nw):
                    if used[i, w] and used[j, w]:
                        corr_sum[w] += 2.0 * rho
                        corr_cnt[w] += 2.0


@_jit
def _missing_sums(days: IntArray, xt: FloatArray, mt: FloatArray, out_s: FloatArray,
                  out_q: FloatArray, out_c: FloatArray) -> None:
    """``out_* =`` sums over ``days`` of the rows of ``xt``, their squares and ``mt``."""
    out_s[:] = 0.0
    out_q[:] = 0.0
    out_c[:] = 0.0
    for k in days:
        col, mcol = xt[k], mt[k]
        for j in range(col.shape[0]):
            v = col[j]
            out_s[j] += v
            out_q[j] += v * v
            out_c[j] += mcol[j]


@_jit
def _corr_rows(n: int) -> int:
    """Securities with a missing day per block of :func:`corr_event`."""
    return max(1, CORR_BLOCK // max(n, 1))


@_jit
def corr_work(n: int, d: int, nw: int) -> int:
    """Doubles of :func:`corr_event`'s work buffer for ``n`` securities, ``d`` days."""
    rows = min(n, _corr_rows(n))
    return 3 * n * d + 3 * n + max(nw * d + d, rows * (3 * d + 7 * n))


@_jit
def event_sums(x: FloatArray, seg: IntArray, rows: IntArray, mkt: FloatArray,
               day0_pos: IntArray, base: int, sigma: FloatArray, nobs: IntArray,
               rbar_m: FloatArray, s_mm: FloatArray, win_col: IntArray, win_len: IntArray,
               win_in: BoolArray, est_off: int, n_est: int, need_share: bool,
               need_corr: bool, dev: FloatArray, k_col: IntArray,
               o_int: IntArray, o_flt: FloatArray) -> None:
    """Per (event, window) sums over the used securities of the events of a chunk.

    ``x`` holds the residuals (rows: the chunk's pairs sorted by event; event ``e``
    is rows ``seg[e]:seg[e + 1]``; column ``k`` is relative day ``base + k``);
    ``rows`` their pair indices into the per-pair arrays. A security is used in a
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
    n_work = 0
    for e in range(n_ev):
        n_max = max(n_max, seg[e + 1] - seg[e])
        if need_corr:  # corr_work is not monotone in the event's size (its blocks)
            n_work = max(n_work, corr_work(seg[e + 1] - seg[e], n_est, nw))
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
            at = day0_pos[q] + base
            s2 = sigma[q] * sigma[q]
            nob = np.float64(nobs[q])
            dof = nob - 2.0
            den = dof / (dof - 2.0) if dof > 2 else 0.0
            share = np.nan
            if need_share:
                fin = 0
                pos = 0
                for k in range(est_off, est_off + n_est):
                    v = x[r, k]
                    if np.isfinite(v):
                        fin += 1
                        if v > 0:
                            pos += 1
                if fin > 0:
                    share = pos / fin
            for w in range(nw):
                if not win_in[w]:
                    continue
                tot = 0.0
                tot_m = 0.0
                ok = True
                for k in range(win_col[w], win_col[w] + win_len[w]):
                    v = x[r, k]
                    if not np.isfinite(v):
                        ok = False
                        break
                    tot += v
                    tot_m += mkt[at + k]
                if not ok:
                    continue
                used[i, w] = True
                car[i, w] = tot
                ln = np.float64(win_len[w])
                dm = tot_m - ln * rbar_m[q]
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
                if np.isfinite(share):
                    o_flt[e, w, 5] += share
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
            r, m = ret[i], mkt[i] if use_mkt else 0.0
            if np.isfinite(r) and np.isfinite(m):
                cnt += 1.0
                sr += r
                sm += m
        den = max(cnt, 1.0)
        mu_r, mu_m = sr / den, sm / den
        srm = 0.0
        smm = 0.0
        srr = 0.0
        for i in range(s0, s0 + n):
            r, m = ret[i], mkt[i] if use_mkt else 0.0
            if np.isfinite(r) and np.isfinite(m):
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
            r, m = ret[s0 + i], mkt[s0 + i] if use_mkt else 0.0
            if np.isfinite(r) and np.isfinite(m):
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
            n_days: IntArray, status: IntArray, reason: IntArray, car: FloatArray,
            var_car: FloatArray, t: FloatArray, model: int) -> None:
    """Event-window ARs, their variances and the CARs of ok pairs ``okp[r0:r1]``.

    Row ``r`` of ``inside``, ``m_ev``, ``ar``, ``var_ar`` (ok pairs x event days) is
    pair ``okp[r]``: the session ``day0 + v0 + k`` lies in the series (``inside``),
    the benchmark return, the AR and its variance (NaN where the AR is missing). By
    ``model``: 0 market model, ``AR = ret - (beta mkt + alpha)``,
    ``Var(AR) = s^2 (1 + 1/L1 + (mkt - Rbar_m)^2 / S_mm)``; 1 constant mean
    (``alpha``), ``AR = ret - alpha``, ``Var(AR) = s^2 (1 + 1/L1)``; 2 market-adjusted,
    ``AR = ret - mkt``, ``Var(AR) = s^2``. The CAR outputs (pairs x windows, indexed
    by the pair) get, per window ``[win_lo, win_hi]`` (event-day columns): the
    sessions inside the series, the status (0 complete, 1 not), the reason (0; 1
    window leaves the series; 2 a missing AR), and for a complete CAR its value, its
    variance (the sum of the ARs' covariances: ``s^2 (L + L^2/L1 + (sum_W (mkt -
    Rbar_m))^2 / S_mm)``, ``s^2 (L + L^2/L1)``, ``s^2 L``) and ``t``.
    """
    n_rel = ar.shape[1]
    nw = win_lo.shape[0]
    for r in range(r0, r1):
        p = okp[r]
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
                if np.isfinite(m_ev[r, k]):
                    cm += m_ev[r, k]
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
                t[p, w] = c / np.sqrt(v)
