"""Set-based cross-sectional test battery of the market model, per event.

The per-pair reference is :func:`impact.inference.run_tests` (one call per event
and window, on the :class:`impact.estimation.Fit` of each of the event's
securities). :func:`event_tests` computes the same tests for every event of a
study at once, from the dense return arrays and the per-pair fit results the
set-based engine holds (:class:`PanelArrays`): the Python loop runs over chunks of
thousands of pairs; inside a chunk the compiled kernels of
:mod:`impact.engine_kernels` loop over pairs and events.

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
(the kernels release the GIL; each thread reuses its work arrays from chunk to
chunk):

1. *Residual pass* (``kernels.residuals``). Each pair's residuals and ARs
   ``ret - (alpha + beta mkt)`` from the first gathered day to the last (the
   estimation window only when a test needs its residuals); NaN at gaps, outside
   the ticker's span and on excluded sessions; per window the sum of the
   benchmark returns (for the CAR variances), read while they are in cache; and the
   share of positive estimation-window residuals (generalized sign), counted while
   the pair's row is in cache.
2. *Ranks* (Corrado; ``kernels.rank_keys``, ``kernels.rank_dev``). Each pair's
   estimation residuals and event ARs are ranked exactly with one SIMD sort and no
   argsort: the values, mapped to 32-bit order-preserving buckets of the row's range
   with their column in the lowest bits, are sorted by numpy; the sorted position of
   each column is its rank (exact unless two values share a bucket: such rows, i.e.
   ties and near-ties, are ranked again by a stable argsort with tied values averaged).
3. *Per-event sums* (``kernels.event_sums``), one pass per event: per window the
   used securities (every AR of the window present), the CARs and
   ``Var(CAR) = s^2 [L + L^2/L1 + (sum_W (R_m - Rbar_m))^2 / S_mm]``, their sums and
   squared deviations (two passes, like numpy's standard deviations), the sums of
   the pairs' shares of positive residuals, and the rank deviations summed per day
   (those of all the event's pairs, less those not used in the window: rank
   deviations are multiples of 1/2, so every such sum is exact in any order).
4. *Mean pairwise correlation* (Kolari-Pynnönen; ``kernels.corr_event``), pairwise
   complete as :func:`impact.inference.mean_pairwise_correlation`: for two
   securities without a missing estimation-window day the correlation is
   ``z_i . z_j`` of their standardized residuals, so the sum over all such pairs
   costs O(N D) per event; a pair with a security that misses days takes
   ``x_i . x_j`` from BLAS products (O(N_gaps N D)) and its sums corrected for the
   other's missing days (or, for a security missing most days, summed over the days
   it has).

The results differ from the reference by rounding only (the rank statistics not
at all); see ``tests/test_engine_tests.py``.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy import special
from threadpoolctl import threadpool_limits

from impact import engine_kernels as kernels
from impact.engine import Exclusions, check_window, stable_order

__all__ = ["ENGINE_TESTS", "PanelArrays", "event_tests"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: The tests :func:`event_tests` computes, in its default order.
ENGINE_TESTS: tuple[str, ...] = ("t_cs", "patell", "bmp", "kp_bmp", "gsign", "corrado",
                                 "corrado_cowan")

# name -> null distribution (as impact.inference._SPEC)
_DIST: dict[str, str] = {"t_cs": "t", "patell": "normal", "bmp": "t", "kp_bmp": "t",
                         "gsign": "normal", "corrado": "normal", "corrado_cowan": "normal"}

#: Gathered values (pairs x days) per chunk of whole events (an event larger than
#: that is a chunk of its own).
CHUNK_ELEMS = 1 << 19
#: Threads over chunks (1: no pool).
WORKERS = max(1, min(2, os.cpu_count() or 1))
#: While the pool runs, limit numpy's OpenBLAS to one thread per caller (its own
#: threads on the small per-event products only contend with the pool's). This
#: changes the process-wide OpenBLAS setting for the duration of the call; it is
#: restored afterwards. No effect when numpy's BLAS is not its bundled OpenBLAS.
PIN_BLAS = True

_NONE = kernels.NONE

_NO_SECURITIES = "no securities"
_NO_COMPLETE = "no security has an abnormal return on every day of the window"
_FEW2 = "needs at least 2 securities"
_NOT_FINITE = "the statistic is not finite"
#: The texts of the ``status`` codes of :func:`_test_rows`.
_STATUS = ("ok", "not computed")


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


def _rank_bits(cols: int) -> int:
    """Low key bits that hold a rank column (:func:`impact.engine_kernels.rank_keys`)."""
    return max(1, (cols - 1).bit_length())


def _rank_dev(x: FloatArray, cols: IntArray | None = None) -> FloatArray:
    """Rank deviations ``K - (T + 1)/2`` of each row's finite values (NaN where not finite).

    The ranks are those of ``scipy.stats.rankdata(row, nan_policy="omit")``
    (average ranks for ties) that the reference uses, T the number of finite values of
    the row: the values' 32-bit sort keys (:func:`impact.engine_kernels.rank_keys`)
    are sorted by numpy (SIMD) and read back by
    :func:`impact.engine_kernels.rank_dev`, which ranks rows with ties again exactly.

    Parameters
    ----------
    x
        Matrix (rows x columns), NaN where missing.
    cols
        The columns of ``x`` to rank, in this order (default: all).

    Returns
    -------
    numpy.ndarray
        The deviations (rows x ranked columns; a work array of this thread, valid until
        its next call).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    c = np.arange(x.shape[1], dtype=np.int64) if cols is None else cols
    bits = _rank_bits(len(c))
    keys = _scratch("keys", (x.shape[0], len(c)), np.int32)
    count = _scratch("count", (x.shape[0],), np.int64)
    kernels.rank_keys(x, c, bits, keys, count)
    keys.sort(axis=1)
    dev = _scratch("dev", (x.shape[0], len(c)), np.float64)
    kernels.rank_dev(keys, count, x, c, bits, dev)
    return dev


def _corr_sums(x: FloatArray, used: BoolArray) -> tuple[FloatArray, FloatArray]:
    """Sums and counts of the valid pairwise correlations among one event's used securities.

    Parameters
    ----------
    x
        (N, D) estimation-window residuals, NaN where missing.
    used
        (N, W) the security is used in the window.

    Returns
    -------
    (sum, count)
        (W,) sums over the ordered pairs i != j of used securities of their
        correlation, and the number of such pairs with a valid correlation
        (``impact.inference.mean_pairwise_correlation``, ``min_overlap=3``).
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    n, d = x.shape
    s = np.zeros(used.shape[1])
    c = np.zeros(used.shape[1])
    work = np.full(kernels.corr_work(n, d, used.shape[1]), np.nan)  # NaN: must not be read
    iwork = np.full(n * (d + 2), -1, dtype=np.int64)
    kernels.corr_event(x, 0, n, 0, d, np.ascontiguousarray(used), s, c, work, iwork)
    return s, c


# --------------------------------------------------------------------------- chunks

_SCRATCH = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A work array of this thread, reused from chunk to chunk (contents undefined).

    Fresh memory is slow to touch on some machines (page faults); the chunks' work
    arrays are about the same size, so each thread keeps one buffer per name.
    """
    size = int(np.prod(shape))
    buf: npt.NDArray[Any] | None = getattr(_SCRATCH, name, None)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 1), dtype=dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:size].reshape(shape)


# columns of the kernel's per (event, window) outputs
_INT_FIELDS = ("n", "n_pos", "bad_first", "dof_bad", "share_cnt")
_FLT_FIELDS = ("car_sum", "car_ssd", "scar_sum", "scar_ssd", "patell_den", "share_sum",
               "corr_sum", "corr_cnt", "k_s", "k_first", "k_sum")


def _chunk(ctx: _Ctx, rows: IntArray, seg: IntArray, events: IntArray) -> _Out:
    """All per (event, window) sums for the events of one chunk.

    ``rows`` are the chunk's ok pairs sorted by event, ``seg`` the start of each
    event in ``rows`` and ``events`` their codes.
    """
    p = ctx.p
    n_rows = len(rows)
    n_ev = len(seg)
    n_win = len(ctx.windows)
    empty = np.zeros(0, dtype=np.int64)
    x = _scratch("x", (n_rows, ctx.ltot), np.float64)
    msum = _scratch("msum", (n_rows, n_win), np.float64)
    ex = [empty if a is None else a
          for a in (ctx.ex_first, ctx.ex_count, ctx.ex_lo_col, ctx.ex_hi_col)]
    win_col = np.array([ctx.ev_off + a - ctx.event0 for a, _ in ctx.windows], dtype=np.int64)
    win_len = np.array([b - a + 1 for a, b in ctx.windows], dtype=np.int64)
    share = _scratch("share", (n_rows if ctx.need_share else 0,), np.float64)
    kernels.residuals(p.ret, p.mkt, rows, p.day0_pos, p.lo_pos, p.hi_pos, p.alpha, p.beta,
                      ctx.base, ex[0], ex[1], ex[2], ex[3], win_col, win_len, x, msum,
                      ctx.est_off, ctx.n_est, share)
    win_in = np.array([a >= ctx.event0 and b < ctx.event0 + ctx.n_ev for a, b in ctx.windows],
                      dtype=np.bool_)
    # rank panel: the estimation-window days before the event window, the event window,
    # the estimation-window days after it (the event window wins on overlap)
    pre, post = ctx.rank_split
    cols = np.concatenate([ctx.est_off + np.arange(pre), ctx.ev_off + np.arange(ctx.n_ev),
                           ctx.est_off + np.arange(post, ctx.n_est)]).astype(np.int64)
    dev = _rank_dev(x, cols) if ctx.need_rank else np.zeros((0, 0))
    o_int = np.zeros((n_ev, n_win, len(_INT_FIELDS)), dtype=np.int64)
    o_int[:, :, 2] = _NONE
    o_flt = np.zeros((n_ev, n_win, len(_FLT_FIELDS)))
    o_flt[:, :, 8:] = np.nan
    kernels.event_sums(x, np.append(seg, n_rows).astype(np.int64), rows, msum,
                       p.sigma, p.nobs, p.rbar_m, p.s_mm, win_col, win_len, win_in,
                       ctx.est_off, ctx.n_est, share, ctx.need_corr, dev,
                       win_col - ctx.ev_off + pre, o_int, o_flt)
    sizes = np.diff(np.append(seg, n_rows))
    fields: dict[str, Any] = {f: o_int[:, :, i] for i, f in enumerate(_INT_FIELDS)}
    fields.update({f: o_flt[:, :, i] for i, f in enumerate(_FLT_FIELDS)})
    return _Out(events=events, n_input=sizes.astype(np.int64), **fields)


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


#: A rule's reason: one text, or the texts of the cells it is given (their indices).
_Why = str | Callable[[IntArray], npt.NDArray[np.str_]]


def _first_reason(n_cells: int, rules: Sequence[tuple[BoolArray, _Why]]
                  ) -> tuple[BoolArray, IntArray, list[str]]:
    """The first applicable reason of ``rules`` (condition, reason) per cell.

    Returns whether a rule applies, each cell's reason as a code and the texts of
    the codes (code 0 is ``""``: no rule applies). A reason given as a function is
    asked for the cells that take it only (few, and text is slow to make).
    """
    code = np.zeros(n_cells, dtype=np.int64)
    texts = [""]
    done = np.zeros(n_cells, dtype=bool)
    for cond, why in rules:
        take = cond & ~done
        if isinstance(why, str):
            if take.any():
                code[take] = len(texts)
                texts.append(why)
        else:
            idx = np.flatnonzero(take)
            if idx.size:
                uniq, inv = np.unique(why(idx), return_inverse=True)
                code[idx] = len(texts) + inv.ravel()
                texts.extend(str(u) for u in uniq)
        done |= take
    return done, code, texts


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
               ) -> dict[str, Any]:
    """Statistic, p, df, n, status and reason of one test for all (event, window) cells.

    ``status`` is a code of :data:`_STATUS`, ``reason`` a code of the list ``texts``.
    """
    n = o["n"].astype(np.int64)
    nf = n.astype(np.float64)
    cells = n.size
    zero = n == 0
    rules: list[tuple[BoolArray, _Why]] = [(zero & (o["n_input"] == 0), _NO_SECURITIES),
                                           (zero, _NO_COMPLETE)]
    df = np.full(cells, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scar_bad = o["bad_first"] != _NONE
        def scar_why(idx: IntArray) -> npt.NDArray[np.str_]:
            return np.char.add(np.char.add("zero variance of the CAR of security #",
                                           o["bad_first"][idx].astype(str)),
                               " (zero residuals)")
        scar_sd = np.sqrt(o["scar_ssd"] / (nf - 1.0))
        bmp_t = np.sqrt(nf) * (o["scar_sum"] / nf) / scar_sd
        bmp_rules: list[tuple[BoolArray, _Why]] = [
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
            def r_why(idx: IntArray) -> npt.NDArray[np.str_]:
                r_txt = np.char.mod("%.4f", np.where(np.isfinite(r[idx]), r[idx], 0.0))
                return np.char.add(np.char.add("mean residual correlation ", r_txt),
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
    failed, reason, texts = _first_reason(cells, rules)
    ok = ~failed
    return {
        "n": np.where(zero, 0, n),
        "statistic": np.where(ok, stat, np.nan),
        "p": np.where(ok, np.clip(pv, 0.0, 1.0), np.nan),
        "df": np.where(ok, df, np.nan) if _DIST[name] == "t" else np.full(cells, np.nan),
        "status": failed.astype(np.int64),  # a code of _STATUS
        "reason": reason,  # a code of "texts"
        "texts": texts,
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
    ctx = _Ctx(
        p=PanelArrays(
            ret=np.ascontiguousarray(p.ret, dtype=np.float64),
            mkt=np.ascontiguousarray(p.mkt, dtype=np.float64), event=event_code, day0_pos=day0,
            lo_pos=np.asarray(p.lo_pos, dtype=np.int64),
            hi_pos=np.asarray(p.hi_pos, dtype=np.int64), ok=np.asarray(p.ok, dtype=bool),
            nobs=np.asarray(p.nobs, dtype=np.int64),
            alpha=np.asarray(p.alpha, dtype=np.float64),
            beta=np.asarray(p.beta, dtype=np.float64),
            sigma=np.asarray(p.sigma, dtype=np.float64),
            rbar_m=np.asarray(p.rbar_m, dtype=np.float64),
            s_mm=np.asarray(p.s_mm, dtype=np.float64)),
        base=base, ltot=ltot, est_off=e0 - base if need_est else 0,
        n_est=e1 - e0 + 1 if need_est else 0,
        ev_off=v0 - base, n_ev=v1 - v0 + 1, event0=v0, windows=wins,
        need_rank=need_rank, need_corr="kp_bmp" in names, need_share="gsign" in names,
        rank_split=(max(0, min(e1, v0 - 1) - e0 + 1), min(e1 - e0 + 1, max(0, v1 + 1 - e0))),
        **_exclusion_columns(p.exclusions, n_pairs, (e0, e1), (v0, v1), base, need_est))

    # ok pairs by event (then input order); events by size, then code
    counts = np.bincount(event_code[ok_idx], minlength=n_events).astype(np.int64)
    rows = ok_idx[stable_order(event_code[ok_idx], n_events)]
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
        try:
            results = [_chunk(ctx, *j) for j in jobs()]
        finally:  # the pool's threads take their work arrays with them; this one must not
            vars(_SCRATCH).clear()
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
    # the text columns as codes into short lists of texts (a gather, not one Python
    # string per row): each test's reason codes follow the texts of the tests before it
    texts: list[str] = []
    for nm in names:
        parts[nm]["reason"] = parts[nm]["reason"] + len(texts)
        texts.extend(parts[nm]["texts"])
    test_code = np.tile(np.arange(n_tests, dtype=np.int64), cells)

    def text(values: Sequence[str], codes: npt.NDArray[Any]) -> pl.Series:
        return pl.Series(list(values), dtype=pl.String).gather(codes)

    return pl.DataFrame({
        "event": pl.Series(np.repeat(np.arange(n_events, dtype=np.int64), n_win * n_tests),
                           dtype=pl.Int64),
        "window_start": pl.Series(np.tile(np.repeat(starts, n_tests), n_events),
                                  dtype=pl.Int32),
        "window_end": pl.Series(np.tile(np.repeat(ends, n_tests), n_events), dtype=pl.Int32),
        "test": text(names, test_code),
        "n": pl.Series(stack("n").astype(np.int64), dtype=pl.Int64),
        "statistic": pl.Series(stat, dtype=pl.Float64, nan_to_null=True),
        "p": pl.Series(pv, dtype=pl.Float64, nan_to_null=True),
        "df": pl.Series(df, dtype=pl.Float64, nan_to_null=True),
        "distribution": text([_DIST[nm] for nm in names], test_code),
        "status": text(_STATUS, stack("status")),
        "reason": text(texts, stack("reason")),
    })
