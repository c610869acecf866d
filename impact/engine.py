"""Set-based market-model event study (no Python loop over pairs).

The per-pair reference is :mod:`impact.estimation` (``fit(series, "market", ...)``
and ``car``). This module computes the same numbers for every event-security pair
at once, with a cost per pair that does not grow with the estimation window, in
two forms: :func:`market_model` (dense arrays between DuckDB input and output,
walked by the compiled kernels of :mod:`impact.engine_kernels`; the default, with
the per-event tests of :mod:`impact.engine_tests`) and
:func:`market_model_sql` (SQL statements only, the portable form). The layouts
below are shared; ``engine_ar`` of :func:`market_model` leaves out ``ret`` and
``mkt`` (they are in the returns table).

Input layout
------------
``returns_table`` (long, one row per security and session):

* ``ticker`` (VARCHAR), ``session_idx`` (INTEGER: position of the session on the
  ticker's exchange calendar; consecutive sessions have consecutive indexes),
  ``date`` (DATE, not used by the engine), ``ret`` (DOUBLE, NULL at a gap) and
  ``mkt`` (DOUBLE: the ticker's benchmark return that session, NULL if missing).
* The ticker's *data span* is ``[min(session_idx), max(session_idx)]`` of its rows.
  A session of the span with no row, or with a NULL ``ret`` or ``mkt``, is a gap.
  Sessions after the span "have not happened yet": they are not in ``engine_ar``
  and a CAR window reaching them is incomplete, exactly like the reference, whose
  series stops at the last price.
* ``(ticker, session_idx)`` must be unique.

``pairs_table``: ``pair_id`` (BIGINT, unique), ``ticker``, ``day0_idx`` (session
index of day 0 on the ticker's calendar).

Output tables (replaced on each call)
-------------------------------------
:func:`market_model` writes ``engine_ar`` and ``engine_car`` as views over one row
per pair (``engine_ar_data``, ``engine_car_data``: the event window's days or the
CAR windows as arrays; :func:`ar_view`, :func:`car_view`), :func:`market_model_sql`
as tables; the columns below are the same.

``engine_fits(pair_id, ticker, day0_idx, status, nobs, alpha, beta, sigma, r2,
rbar_m, s_mm)``. ``status`` is ``ok``; ``insufficient`` (fewer than 4 usable
estimation-window returns: the reference raises ``ValueError``); ``collinear``
(the benchmark does not vary over the window: the reference raises); or
``no_data`` (the ticker has no rows). The numbers are NULL unless ``ok``.

``engine_ar(pair_id, rel_day, ret, mkt, ar, var_ar)`` for the ``ok`` pairs: one
row per session of the event window inside the data span; ``ar`` and ``var_ar``
are NULL where ``ret`` or ``mkt`` is missing. ``var_ar = s^2 [1 + 1/L1 +
(R_m - Rbar_m)^2 / S_mm]``.

``engine_car(pair_id, window_start, window_end, n_days, status, reason, df, car,
var_car, t)`` for every pair and window: ``status`` is ``ok``, ``incomplete``
(``reason`` ``no_session``: the window reaches past the data span; ``gap``: a day
has no AR) or ``no_fit`` (``reason`` is the fit's status); the numbers are NULL
unless ``ok``. ``var_car = s^2 [L + L^2/L1 + (sum_W (R_m - Rbar_m))^2 / S_mm]``.

Method
------
Over all tickers' sessions in (ticker, session) order, running sums of ``1, r, m,
r m, m m, r r`` over the usable sessions (``ret`` and ``mkt`` both known) are taken
once (one window pass; per-ticker centring, see below);
a pair's estimation-window sums are the differences of the running sums at the
window's bounds (two equi-joins), so the cost per pair is O(1) in L1. The
event-window ARs are an equi-join of the pairs with the returns; the CARs a single
grouped aggregation of the ARs, one filtered sum per window.

Numerics: before the running sums, each ticker's returns and benchmark returns are
centred on their means over the ticker's whole span (any constant is exact in
algebra; the mean keeps the running sums of ``r``, ``m`` and the cross products
small, so differencing them loses little). The centred moments are then
``S_mm = sum m'^2 - n mbar'^2`` etc.; the parameters are shifted back. See
``docs/engine.md`` for the measured agreement with the reference.

Estimation-window sessions a pair leaves out (another event's window, as
``impact.study`` does with ``estimation_overlap = "exclude"``) are runs of
relative days (:class:`Exclusions`, or an exclusions table for the SQL form):
merged, clipped to the window, and their sums, differences of the same running
sums, subtracted; the per-event tests leave their residuals out too.

:func:`fit_series` is the path of :func:`impact.study.compute_study`: the
DeepSeek study's market, constant-mean and market-adjusted fits, ARs and CARs come
from the same dense core (:func:`dense_market_model`) as ``impact engine``, its
multi-factor, Scholes-Williams and Dimson fits from stacked windows (:func:`_stacked`).

Not covered (the reference supports them): the SQ test, BHAR and p-values (the study
adds SQ, BHAR and p from the engine's CARs with :func:`impact.estimation.car`).
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from impact.estimation import (
    COLLINEAR,
    INSUFFICIENT,
    MISSING_FACTOR,
    MODEL_K,
    NONSYNC_ROWS,
    EventSeries,
    Fit,
    ModelSpec,
    builtin,
    expected_returns,
    param_names,
)

#: The market model estimates two parameters (alpha, beta).
K = MODEL_K["market"]
#: The models of :func:`dense_market_model`, in the kernels' code order.
MODELS = ("market", "constant-mean", "market-adjusted")

_DEFAULT_WINDOWS: tuple[tuple[int, int], ...] = ((-1, 1), (0, 0), (0, 1), (-5, 10), (0, 10))


def _ident(name: str) -> str:
    """A quoted SQL identifier (table names may carry a schema: ``s.t``)."""
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"bad table name {name!r}")
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def check_window(name: str, w: tuple[int, int]) -> tuple[int, int]:
    """``w`` as two ints; ValueError if it ends before it starts."""
    a, b = int(w[0]), int(w[1])
    if a > b:
        raise ValueError(f"{name} window ({a}, {b}) has its start after its end "
                         f"(the end {b} is before its start {a})")
    return a, b


def _check_windows(estimation: tuple[int, int], event: tuple[int, int],
                   car_windows: Sequence[tuple[int, int]]
                   ) -> tuple[tuple[int, int], tuple[int, int], list[tuple[int, int]]]:
    """The estimation, event and CAR windows checked; each CAR window inside the event's."""
    est, ev = check_window("estimation", estimation), check_window("event", event)
    windows = [check_window("CAR", w) for w in car_windows]
    if not windows:
        raise ValueError("no CAR window")
    for a, b in windows:
        if a < ev[0] or b > ev[1]:
            raise ValueError(f"CAR window ({a}, {b}) is not inside the event window {event}")
    return est, ev, windows


def market_model_sql(
    con: duckdb.DuckDBPyConnection,
    *,
    returns_table: str,
    pairs_table: str,
    estimation: tuple[int, int] = (-250, -11),
    event: tuple[int, int] = (-5, 10),
    car_windows: tuple[tuple[int, int], ...] = _DEFAULT_WINDOWS,
    centre: bool = True,
    exclusions_table: str | None = None,
) -> None:
    """Fit the market model, ARs and CARs for every pair of ``pairs_table`` at once.

    Parameters
    ----------
    con
        An open DuckDB connection holding both input tables.
    returns_table, pairs_table
        The inputs (layout in the module docstring).
    estimation, event
        Windows in sessions relative to day 0, both ends included.
    car_windows
        CAR windows, each inside the event window.
    centre
        Centre each ticker's returns before the running sums (recommended; off
        only to measure the effect).
    exclusions_table
        Estimation-window sessions each pair leaves out: rows ``(pair_id, rel_lo,
        rel_hi)``, relative days, both ends included, any number per pair,
        overlapping or not (as :class:`Exclusions`). ``None``: none.

    Raises
    ------
    ValueError
        If a window is malformed, a CAR window leaves the event window, or
        ``(ticker, session_idx)`` repeats in the returns.

    Notes
    -----
    Creates or replaces ``engine_fits``, ``engine_ar`` and ``engine_car`` in the
    connection's current schema, and drops an earlier run's ``engine_tests`` (this
    form computes no tests); temporary ``_eng_*`` tables are dropped.
    """
    (e0, e1), (v0, v1), windows = _check_windows(estimation, event, car_windows)
    rt, pt = _ident(returns_table), _ident(pairs_table)

    # 1. each ticker's span, its position in the ticker order, and centring constants
    #    (any constants are exact in algebra; near-means keep the running sums small)
    ok = "ret IS NOT NULL AND mkt IS NOT NULL"
    if centre:
        mus = (f"avg(ret) FILTER (WHERE {ok})", f"avg(mkt) FILTER (WHERE {ok})",
               f"avg(ret * mkt) FILTER (WHERE {ok})", f"avg(mkt * mkt) FILTER (WHERE {ok})",
               f"avg(ret * ret) FILTER (WHERE {ok})")
    else:
        mus = ("0.0",) * 5
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_tk0 AS
        SELECT ticker, min(session_idx) AS lo, max(session_idx) AS hi,
               count(*) AS n_rows, count(DISTINCT session_idx) AS n_idx,
               coalesce({mus[0]}, 0.0) AS mu_r, coalesce({mus[1]}, 0.0) AS mu_m,
               coalesce({mus[2]}, 0.0) AS e_rm, coalesce({mus[3]}, 0.0) AS e_mm,
               coalesce({mus[4]}, 0.0) AS e_rr
        FROM {rt} GROUP BY ticker
    """)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _eng_tk AS
        SELECT ticker, lo, hi, n_rows, n_idx, mu_r, mu_m,
               e_rm - mu_r * mu_m AS mu_rm, e_mm - mu_m * mu_m AS mu_mm,
               e_rr - mu_r * mu_r AS mu_rr,
               row_number() OVER (ORDER BY ticker) AS tid,
               coalesce(sum(hi - lo + 1) OVER (ORDER BY ticker ROWS BETWEEN UNBOUNDED PRECEDING
                                               AND 1 PRECEDING), 0) AS pos0
        FROM _eng_tk0
    """)
    dup, sparse = con.execute(
        "SELECT count(*) FILTER (WHERE n_rows <> n_idx), "
        "count(*) FILTER (WHERE n_idx <> hi - lo + 1) FROM _eng_tk").fetchone() or (0, 0)
    if dup:
        raise ValueError(f"{dup} tickers have repeated session_idx values in {returns_table}")
    # 2. a dense copy only when some span has missing rows (they are gaps)
    src = rt
    if sparse:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eng_dense AS
            SELECT s.ticker, s.session_idx, r.ret, r.mkt
            FROM (SELECT ticker, unnest(range(lo, hi + 1)) AS session_idx FROM _eng_tk) s
            LEFT JOIN {rt} r USING (ticker, session_idx)
        """)
        src = "_eng_dense"
    # 3. running sums over all sessions of all tickers, in (ticker, session) order: the
    #    dense global position of a session is pos = pos0 + session_idx - lo + 1, and a
    #    difference of running sums between two positions of one ticker is the sum over
    #    that ticker's sessions between them. The summands are centred per ticker, so
    #    the running sums return to about 0 at each ticker's end and stay small.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_x AS
        SELECT t.pos0 + d.session_idx - t.lo + 1 AS pos,
               CASE WHEN d.ret IS NOT NULL AND d.mkt IS NOT NULL THEN 1 ELSE 0 END AS u,
               CASE WHEN u = 1 THEN d.ret - t.mu_r ELSE 0.0 END AS r,
               CASE WHEN u = 1 THEN d.mkt - t.mu_m ELSE 0.0 END AS m,
               CASE WHEN u = 1 THEN r * m - t.mu_rm ELSE 0.0 END AS qrm,
               CASE WHEN u = 1 THEN m * m - t.mu_mm ELSE 0.0 END AS qmm,
               CASE WHEN u = 1 THEN r * r - t.mu_rr ELSE 0.0 END AS qrr
        FROM {src} d JOIN _eng_tk t USING (ticker)
        ORDER BY pos
    """)
    sums = ("sum(u) OVER w AS c_n, sum(r) OVER w AS c_r, sum(m) OVER w AS c_m, "
            "sum(qrm) OVER w AS c_rm, sum(qmm) OVER w AS c_mm, sum(qrr) OVER w AS c_rr")
    # DuckDB's streaming window (no PARTITION/ORDER) is ~4x faster than a sorted
    # window but follows the table's insertion order: check it, else sort.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_cum AS
        SELECT pos, row_number() OVER w AS rn, {sums} FROM _eng_x
        WINDOW w AS (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    """)
    bad = (con.execute("SELECT count(*) FROM _eng_cum WHERE rn <> pos").fetchone() or (0,))[0]
    if bad:
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eng_cum AS
            SELECT pos, pos AS rn, {sums} FROM _eng_x
            WINDOW w AS (ORDER BY pos ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        """)
    # 4. estimation-window sums: differences at the bounds [a_idx + 1, b_idx]; the
    #    quadratic sums get their centring constant back (n * mu)
    cols = ("n", "r", "m", "rm", "mm", "rr")
    diff = {c: (f"CASE WHEN q.b_idx > q.a_idx THEN coalesce(b.c_{c}, 0) - coalesce(a.c_{c}, 0) "
                f"ELSE 0 END") for c in cols}
    pairs_q = f"""
            SELECT p.pair_id, p.ticker, p.day0_idx, t.lo, t.hi, t.pos0, t.mu_r, t.mu_m,
                   t.mu_rm, t.mu_mm, t.mu_rr, t.ticker IS NOT NULL AS has_data,
                   greatest(p.day0_idx + {e0}, t.lo) - 1 AS a_idx,
                   least(p.day0_idx + {e1}, t.hi) AS b_idx
            FROM {pt} p LEFT JOIN _eng_tk t USING (ticker)"""
    # 4a. exclusions: clipped to the estimation window, overlapping or adjacent runs of a
    #     pair merged (gaps and islands), then each run's sums, as differences too
    minus = {c: "" for c in cols}
    if exclusions_table is not None:
        xt = _ident(exclusions_table)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _eng_exs AS
            WITH c AS (
                SELECT pair_id, greatest(rel_lo, {e0}) AS lo, least(rel_hi, {e1}) AS hi
                FROM {xt} WHERE greatest(rel_lo, {e0}) <= least(rel_hi, {e1})),
            g AS (
                SELECT *, CASE WHEN lo <= max(hi) OVER (
                              PARTITION BY pair_id ORDER BY lo, hi
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) + 1
                          THEN 0 ELSE 1 END AS new
                FROM c),
            i AS (
                SELECT *, sum(new) OVER (PARTITION BY pair_id ORDER BY lo, hi
                                         ROWS UNBOUNDED PRECEDING) AS island
                FROM g),
            x AS (SELECT pair_id, min(lo) AS lo, max(hi) AS hi FROM i GROUP BY pair_id, island),
            q AS (
                SELECT p.pair_id, p.lo, p.pos0, greatest(p.day0_idx + x.lo, p.lo) - 1 AS a_idx,
                       least(p.day0_idx + x.hi, p.hi) AS b_idx
                FROM x JOIN ({pairs_q}) p USING (pair_id) WHERE p.has_data)
            SELECT q.pair_id, {", ".join(f"sum({diff[c]}) AS x_{c}" for c in cols)}
            FROM q
            LEFT JOIN _eng_cum b ON b.pos = q.pos0 + q.b_idx - q.lo + 1
            LEFT JOIN _eng_cum a ON a.pos = q.pos0 + q.a_idx - q.lo + 1
            GROUP BY q.pair_id
        """)
        minus = {c: f" - coalesce(x.x_{c}, 0)" for c in cols}
    ex_join = "LEFT JOIN _eng_exs x USING (pair_id)" if exclusions_table is not None else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_est AS
        WITH q AS ({pairs_q}),
        d AS (
            SELECT q.pair_id, q.ticker, q.day0_idx, q.lo, q.hi, q.mu_r, q.mu_m, q.has_data,
                   q.mu_rm, q.mu_mm, q.mu_rr,
                   {diff["n"]}{minus["n"]} AS s_n, {diff["r"]}{minus["r"]} AS s_r,
                   {diff["m"]}{minus["m"]} AS s_m, {diff["rm"]}{minus["rm"]} AS q_rm,
                   {diff["mm"]}{minus["mm"]} AS q_mm, {diff["rr"]}{minus["rr"]} AS q_rr
            FROM q
            LEFT JOIN _eng_cum b ON b.pos = q.pos0 + q.b_idx - q.lo + 1
            LEFT JOIN _eng_cum a ON a.pos = q.pos0 + q.a_idx - q.lo + 1
            {ex_join})
        SELECT * EXCLUDE (mu_rm, mu_mm, mu_rr, q_rm, q_mm, q_rr),
               q_rm + s_n * mu_rm AS s_rm, q_mm + s_n * mu_mm AS s_mm, q_rr + s_n * mu_rr AS s_rr
        FROM d
    """)
    # 5. the fits. Centred moments: S_mm = sum m'^2 - n mbar'^2 etc. The collinearity
    #    threshold mirrors numpy's matrix_rank on X'X (tol = s_max * 2 * eps).
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_fit AS
        WITH c AS (
            SELECT *, s_r / nullif(s_n, 0) AS rb, s_m / nullif(s_n, 0) AS mb FROM _eng_est),
        mo AS (
            SELECT *, s_mm - s_m * mb AS smm, s_rm - s_r * mb AS srm, s_rr - s_r * rb AS srr,
                   s_mm + 2 * s_m * mu_m + s_n * mu_m * mu_m AS raw_mm
            FROM c),
        st AS (
            SELECT *, CASE
                WHEN NOT has_data THEN 'no_data'
                WHEN s_n < {K + 2} THEN 'insufficient'
                WHEN NOT (smm > 2 * 2.220446049250313e-16 * (s_n + raw_mm) * (s_n + raw_mm) / s_n)
                    THEN 'collinear'
                ELSE 'ok' END AS status
            FROM mo),
        b AS (
            SELECT *, CASE WHEN status = 'ok' THEN srm / smm END AS beta_ FROM st)
        SELECT pair_id, ticker, day0_idx, lo, hi, status, s_n::BIGINT AS nobs,
               (mu_r + rb) - beta_ * (mu_m + mb) AS alpha, beta_ AS beta,
               CASE WHEN status = 'ok' THEN greatest(srr - beta_ * srm, 0.0) / (s_n - {K})
                    END AS s2,
               CASE WHEN status = 'ok' THEN 1.0 - greatest(srr - beta_ * srm, 0.0)
                    / nullif(srr, 0) END AS r2,
               CASE WHEN status = 'ok' THEN mu_m + mb END AS rbar_m,
               CASE WHEN status = 'ok' THEN smm END AS s_mm
        FROM b
    """)
    con.execute("""
        CREATE OR REPLACE TABLE engine_fits AS
        SELECT pair_id, ticker, day0_idx, status, nobs, alpha, beta, sqrt(s2) AS sigma, r2,
               rbar_m, s_mm
        FROM _eng_fit ORDER BY pair_id
    """)
    # 6. event-window ARs and their forecast-error-corrected variances
    _drop(con, "engine_ar")
    _drop(con, "engine_car")
    con.execute(f"""
        CREATE OR REPLACE TABLE engine_ar AS
        SELECT f.pair_id, d.rel_day::INTEGER AS rel_day, r.ret, r.mkt,
               CASE WHEN r.ret IS NOT NULL AND r.mkt IS NOT NULL
                    THEN r.ret - (f.alpha + f.beta * r.mkt) END AS ar,
               CASE WHEN r.ret IS NOT NULL AND r.mkt IS NOT NULL
                    THEN f.s2 * (1.0 + 1.0 / f.nobs
                                 + (r.mkt - f.rbar_m) * (r.mkt - f.rbar_m) / f.s_mm) END AS var_ar
        FROM _eng_fit f
        CROSS JOIN range({v0}, {v1 + 1}) d(rel_day)
        LEFT JOIN {rt} r ON r.ticker = f.ticker AND r.session_idx = f.day0_idx + d.rel_day
        WHERE f.status = 'ok' AND f.day0_idx + d.rel_day BETWEEN f.lo AND f.hi
        ORDER BY f.pair_id, rel_day
    """)
    # 7. CARs: one grouped pass over the ARs with a filtered sum per window
    aggs = []
    for i, (a, b) in enumerate(windows):
        flt = f"FILTER (WHERE rel_day BETWEEN {a} AND {b})"
        aggs += [f"count(*) {flt} AS ns{i}", f"count(ar) {flt} AS na{i}",
                 f"sum(ar) {flt} AS car{i}", f"sum(mkt) {flt} AS sm{i}"]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_agg AS
        SELECT pair_id, {", ".join(aggs)} FROM engine_ar GROUP BY pair_id
    """)
    parts = []
    for i, (a, b) in enumerate(windows):
        n_len = b - a + 1
        parts.append(f"""
            SELECT f.pair_id, {a} AS window_start, {b} AS window_end,
                   coalesce(g.ns{i}, 0) AS n_days,
                   CASE WHEN f.status <> 'ok' THEN 'no_fit'
                        WHEN coalesce(g.ns{i}, 0) < {n_len} THEN 'incomplete'
                        WHEN g.na{i} < {n_len} THEN 'incomplete' ELSE 'ok' END AS status,
                   CASE WHEN f.status <> 'ok' THEN f.status
                        WHEN coalesce(g.ns{i}, 0) < {n_len} THEN 'no_session'
                        WHEN g.na{i} < {n_len} THEN 'gap' ELSE '' END AS reason,
                   f.nobs - {K} AS df,
                   g.car{i} AS car_,
                   f.s2 * ({n_len} + {n_len * n_len}.0 / f.nobs
                           + (g.sm{i} - {n_len} * f.rbar_m) * (g.sm{i} - {n_len} * f.rbar_m)
                             / f.s_mm) AS var_
            FROM _eng_fit f LEFT JOIN _eng_agg g USING (pair_id)""")
    con.execute(f"""
        CREATE OR REPLACE TABLE engine_car AS
        WITH u AS ({" UNION ALL ".join(parts)})
        SELECT pair_id, window_start, window_end, n_days, status, reason,
               CASE WHEN status = 'ok' THEN df END AS df,
               CASE WHEN status = 'ok' THEN car_ END AS car,
               CASE WHEN status = 'ok' THEN var_ END AS var_car,
               CASE WHEN status = 'ok' THEN car_ / sqrt(var_) END AS t
        FROM u ORDER BY pair_id, window_start, window_end
    """)
    for t in ("_eng_tk0", "_eng_tk", "_eng_dense", "_eng_x", "_eng_cum", "_eng_exs",
              "_eng_est", "_eng_fit", "_eng_agg"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    _drop(con, "engine_tests")  # never another run's tests beside these
    document(con)


#: ``COMMENT ON`` texts of the engine's tables and their columns (docs/engine.md).
TABLE_DOCS: dict[str, tuple[str, dict[str, str]]] = {
    "engine_fits": (
        "impact engine: the market model of each event-security pair, fitted over its "
        "estimation window (docs/engine.md). Replaced by each run.",
        {"pair_id": "the pair (pair_id of the pairs table)",
         "ticker": "the security",
         "day0_idx": "day 0 as a session index on the ticker's calendar",
         "status": "ok; insufficient (fewer than 4 usable estimation-window returns); "
                   "collinear (the benchmark does not vary); no_data (no returns)",
         "nobs": "usable estimation-window returns (L1)",
         "alpha": "intercept (NULL unless ok)",
         "beta": "slope on the benchmark return (NULL unless ok)",
         "sigma": "residual standard deviation, sqrt(SSR / (L1 - 2))",
         "r2": "R squared of the fit",
         "rbar_m": "mean benchmark return over the used estimation-window sessions",
         "s_mm": "sum of squared deviations of the benchmark return over those sessions"}),
    "engine_ar": (
        "impact engine: event-window abnormal returns of the ok pairs, one row per session "
        "inside the ticker's data (docs/engine.md). Replaced by each run.",
        {"pair_id": "the pair", "rel_day": "session relative to day 0",
         "ret": "the security's return (SQL form only)",
         "mkt": "the benchmark return (SQL form only)",
         "ar": "abnormal return ret - (alpha + beta mkt); NULL at a gap",
         "var_ar": "forecast-error variance s^2 [1 + 1/L1 + (mkt - rbar_m)^2 / s_mm]"}),
    "engine_ar_data": (
        "impact engine: the abnormal returns behind the view engine_ar, one row per ok pair "
        "with the event window's days as arrays (docs/engine.md). Query engine_ar instead.",
        {"pair_id": "the pair",
         "first_day": "first event-window day inside the ticker's data (relative to day 0)",
         "last_day": "last such day",
         "ar": "abnormal returns, element k for relative day (event window start + k); "
               "NaN outside first_day..last_day and at a gap (NULL in engine_ar)",
         "var_ar": "their forecast-error variances (as engine_ar.var_ar; NaN as ar)"}),
    "engine_car_data": (
        "impact engine: the CARs behind the view engine_car, one row per pair with one "
        "array element per CAR window (docs/engine.md). Query engine_car instead.",
        {"pair_id": "the pair", "df": "L1 - 2 (engine_car.df where the CAR is ok)",
         "code": "per window n_days * 256 + reason * 16 + status (n_days: sessions of "
                 "the window in the data; status 0 ok, 1 incomplete, 2 no_fit; reason 0 "
                 "none, 1 no_session, 2 gap, 3 insufficient, 4 collinear, 5 no_data)",
         "car": "CARs (NaN unless ok; NULL in engine_car)",
         "var_car": "their variances (NaN unless ok); engine_car makes t from car and "
                    "var_car"}),
    "engine_car": (
        "impact engine: cumulative abnormal returns, one row per pair and CAR window "
        "(docs/engine.md). Replaced by each run.",
        {"pair_id": "the pair", "window_start": "first day of the window (relative to day 0)",
         "window_end": "last day of the window", "n_days": "sessions of the window in the data",
         "status": "ok; incomplete; no_fit (the fit's status is the reason)",
         "reason": "why not ok: no_session (the window runs past the data), gap (a missing "
                   "AR), or the fit's status",
         "df": "degrees of freedom of t, L1 - 2",
         "car": "sum of the window's ARs (NULL unless ok)",
         "var_car": "s^2 [L + L^2/L1 + (sum of (mkt - rbar_m) over the window)^2 / s_mm]",
         "t": "car / sqrt(var_car)"}),
    "engine_tests": (
        "impact engine: per-event cross-sectional tests over the pairs sharing an event_id, "
        "one row per event, window and test (docs/engine.md, docs/tests.md). Replaced by "
        "each run.",
        {"event_id": "the event (event_id of the pairs table)",
         "window_start": "first day of the window", "window_end": "last day of the window",
         "test": "t_cs, patell, bmp, kp_bmp, gsign, corrado or corrado_cowan",
         "n": "securities used (every AR of the window present)",
         "statistic": "the test statistic (NULL when not computed)",
         "p": "two-sided p-value", "df": "degrees of freedom (t tests)",
         "distribution": "null distribution: t or normal",
         "status": "ok or not computed", "reason": "why not computed"}),
}


def document(con: duckdb.DuckDBPyConnection) -> None:
    """``COMMENT ON`` the engine's tables and views present in ``con`` and their columns.

    Parameters
    ----------
    con
        The connection the engine wrote to (inside its transaction, if any).
    """
    here = "database_name = current_database() AND schema_name = current_schema()"
    present = dict(con.execute(
        f"SELECT table_name, 'TABLE' FROM duckdb_tables() WHERE {here} UNION ALL "
        f"SELECT view_name, 'VIEW' FROM duckdb_views() WHERE {here}").fetchall())
    have: dict[str, list[str]] = {}
    for table, col in con.execute(
            f"SELECT table_name, column_name FROM duckdb_columns() WHERE {here} "
            "ORDER BY table_name, column_index").fetchall():
        have.setdefault(table, []).append(col)
    # one script of statements (about 70 of them; one call each took 0.02 s in all)
    script = []
    for table, (text, columns) in TABLE_DOCS.items():
        if table not in present:
            continue
        script.append(f"COMMENT ON {present[table]} {table} IS {_sql_str(text)}")
        script += [f"COMMENT ON COLUMN {table}.{_ident(col)} IS {_sql_str(columns[col])}"
                   for col in have.get(table, ()) if col in columns]
    if script:
        con.execute(";\n".join(script))


def _sql_str(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# --------------------------------------------------------------------------- dense backend

#: Steps reported to ``progress`` by :func:`market_model`, in order.
STEPS = ("spans", "returns", "running sums", "fits", "abnormal returns", "CARs", "tests",
         "write fits", "write ARs", "write CARs", "write tests")


@dataclass(frozen=True)
class EngineRun:
    """What :func:`market_model` computed (the tables are in the database)."""

    #: Pairs in the pairs table.
    pairs: int
    #: Pairs whose fit succeeded.
    ok: int
    #: Rows written to ``engine_ar``, ``engine_car`` and ``engine_tests``.
    ar_rows: int
    car_rows: int
    test_rows: int
    #: Seconds spent in each step of :data:`STEPS`.
    seconds: dict[str, float]


_FIT_STATUS = ("ok", "insufficient", "collinear", "no_data")
_CAR_STATUS = ("ok", "incomplete", "no_fit")
_CAR_REASON = ("", "no_session", "gap", "insufficient", "collinear", "no_data")


def _dict(codes: np.ndarray, names: Sequence[str]) -> pa.DictionaryArray:
    """A dictionary-encoded string column (cheap to build; DuckDB casts it to VARCHAR)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(names))


def _nullable(v: np.ndarray) -> pa.Array:
    """A float column with NaN stored as NULL."""
    return pa.array(v, mask=np.isnan(v))


def _write(con: duckdb.DuckDBPyConnection, name: str, tbl: pa.Table) -> None:
    """Replace table ``name`` with ``tbl``; dictionary columns become VARCHAR.

    Its doubles are written uncompressed (:func:`plain_doubles`).
    """
    repl = [f"{_ident(f.name)}::VARCHAR AS {_ident(f.name)}" for f in tbl.schema
            if pa.types.is_dictionary(f.type)]
    sel = "*" + (f" REPLACE ({', '.join(repl)})" if repl else "")
    con.register("_eng_in", tbl)
    try:
        with plain_doubles(con):
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {sel} FROM _eng_in")
    finally:
        con.unregister("_eng_in")


#: DuckDB's compressions for floating-point columns, left out of the engine's writes.
_FLOAT_COMPRESSIONS = ("alp", "alprd")


@contextmanager
def plain_doubles(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Write the DOUBLE columns of the row groups flushed inside the block uncompressed.

    The engine's ARs, variances, CARs and fitted values are full-precision doubles:
    DuckDB's float compressions (ALP, ALPRD) save 12-17% of their space but double
    the CPU time of the write (about 0.13 s of the 0.35 s of the ARs at 10^6 pairs;
    ``docs/engine.md``). DuckDB has no per-column choice for array columns, so this
    adds ALP and ALPRD to the *global* setting ``disabled_compression_methods`` for
    the block and puts the previous value back after it, also on error. Row groups
    flushed while it is on stay uncompressed (any DuckDB reads them); rows still in
    the transaction's memory at the end (a table smaller than a row group, the last
    part of a larger one) are compressed as usual when the caller commits. Nothing
    is changed when ``force_compression`` is set, or when the methods are already
    disabled.

    Parameters
    ----------
    con
        The connection that writes.

    Yields
    ------
    None
    """
    old, forced = con.execute(
        "SELECT current_setting('disabled_compression_methods'), "
        "current_setting('force_compression')").fetchone() or ("", "auto")
    have = [m.strip().lower() for m in str(old).split(",") if m.strip()]
    add = [m for m in _FLOAT_COMPRESSIONS if m not in have]
    if str(forced).lower() != "auto" or not add:
        yield
        return
    con.execute(f"SET disabled_compression_methods = {_sql_str(','.join(have + add))}")
    try:
        yield
    finally:
        con.execute(f"SET disabled_compression_methods = {_sql_str(str(old))}")


def _null_nan(*cols: str) -> str:
    """SQL select items showing each float column's NaN (the arrays' "missing") as NULL."""
    return ", ".join(f"nullif({c}, 'NaN'::DOUBLE) AS {c}" for c in cols)


def ar_view(first: int, last: int) -> str:
    """``CREATE VIEW engine_ar`` over ``engine_ar_data`` (event window ``first..last``)."""
    return f"""
    CREATE VIEW engine_ar AS
    SELECT pair_id, rel_day, {_null_nan("ar", "var_ar")} FROM (
        SELECT pair_id, first_day, last_day,
               unnest(range({first}, {last + 1}))::INTEGER AS rel_day,
               unnest(ar) AS ar, unnest(var_ar) AS var_ar
        FROM engine_ar_data)
    WHERE rel_day BETWEEN first_day AND last_day
    """


#: ``t`` of ``engine_car``, made by the view (one array fewer to write): numpy's
#: ``car / np.sqrt(var_car)`` bit for bit (IEEE: +-inf where ``var_car`` is 0,
#: NaN and so NULL where it is negative or NaN; DuckDB's sqrt of a negative number is
#: an error, hence the guard; NaN compares above 0 in DuckDB and gives NaN).
_T_ITEM = "nullif(CASE WHEN var_car >= 0 THEN car / sqrt(var_car) END, 'NaN'::DOUBLE) AS t"


#: Bits of ``engine_car_data.code`` below ``n_days``: ``code = n_days * 2^8 + reason * 2^4
#: + status``. One integer array instead of three: DuckDB writes, logs and compresses each
#: array column of a row separately, and the three small ones cost as much as the two
#: float arrays (0.13 of 0.3 s at 10^6 pairs written alone; see ``docs/engine.md``).
_CODE_DAYS = 8


def car_codes(n_days: np.ndarray, status: np.ndarray, reason: np.ndarray) -> np.ndarray:
    """``engine_car_data.code`` of each window: ``n_days``, ``reason`` and ``status`` packed.

    Parameters
    ----------
    n_days
        Sessions of the window in the data (below 2^23).
    status
        0 ok, 1 incomplete, 2 no_fit (below 16).
    reason
        Index into the CAR reasons: 0 none, 1 no_session, 2 gap, 3 insufficient,
        4 collinear, 5 no_data (below 16).

    Returns
    -------
    numpy.ndarray
        int32, ``n_days * 256 + reason * 16 + status``; :func:`car_view` decodes it.
    """
    code: np.ndarray = np.left_shift(n_days, _CODE_DAYS, dtype=np.int32)
    code |= np.left_shift(reason, 4, dtype=np.int32)
    code |= status
    return code


def car_view(windows: Sequence[tuple[int, int]]) -> str:
    """``CREATE VIEW engine_car`` over ``engine_car_data`` (one array element per window)."""
    starts = ", ".join(str(a) for a, _ in windows)
    ends = ", ".join(str(b) for _, b in windows)
    status = ", ".join(_sql_str(x) for x in _CAR_STATUS)
    reason = ", ".join(_sql_str(x) for x in _CAR_REASON)
    return f"""
    CREATE VIEW engine_car AS
    SELECT pair_id, window_start, window_end, (cd >> {_CODE_DAYS})::BIGINT AS n_days,
           [{status}][(cd & 15) + 1] AS status,
           [{reason}][((cd >> 4) & 15) + 1] AS reason, CASE WHEN cd & 15 = 0 THEN df END AS df,
           {_null_nan("car", "var_car")}, {_T_ITEM}
    FROM (SELECT pair_id, df, unnest([{starts}])::INTEGER AS window_start,
                 unnest([{ends}])::INTEGER AS window_end, unnest(code) AS cd,
                 unnest(car) AS car, unnest(var_car) AS var_car
          FROM engine_car_data)
    """


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop ``name`` (a view and its data table, or a table) from the current schema.

    The dense form writes ``engine_ar`` and ``engine_car`` as views over
    ``*_data`` tables, the SQL form as tables: each replaces what the other left.
    """
    db, schema = con.execute("SELECT current_database(), current_schema()").fetchall()[0]
    here = f"{_ident(db)}.{_ident(schema)}."  # never another schema's object of that name
    kinds = con.execute(
        "SELECT 'VIEW' FROM duckdb_views() WHERE view_name = ? AND database_name = ? "
        "AND schema_name = ? UNION ALL "
        "SELECT 'TABLE' FROM duckdb_tables() WHERE table_name = ? AND database_name = ? "
        "AND schema_name = ?", [name, db, schema, name, db, schema]).fetchall()
    for (kind,) in kinds:
        con.execute(f"DROP {kind} {here}{_ident(name)}")
    con.execute(f"DROP TABLE IF EXISTS {here}{_ident(name + '_data')}")


#: Rows per Arrow batch when the returns are read from DuckDB.
READ_BATCH = 1 << 17


def stable_order(codes: npt.NDArray[np.int64], n_codes: int) -> npt.NDArray[np.intp]:
    """``numpy.argsort(codes, kind="stable")`` for codes in ``0 .. n_codes - 1``.

    With at most 2^16 codes they are sorted as 16-bit integers, which numpy sorts
    stably by radix: 10 ms against 76 ms for the 10^6 ticker codes (3,000 tickers) of
    the benchmark's largest size on the AMD machine (mergesort of 64-bit integers).

    Parameters
    ----------
    codes
        Integer codes, each in ``0 .. n_codes - 1``.
    n_codes
        The number of codes.

    Returns
    -------
    numpy.ndarray
        The positions of ``codes`` in stable sorted order.
    """
    if n_codes <= 1 << 16:
        return np.argsort(np.asarray(codes).astype(np.uint16), kind="stable")
    return np.argsort(codes, kind="stable")


def _window_sums(ret: np.ndarray, mkt: np.ndarray, span: np.ndarray, q_tid: np.ndarray,
                 a_pos: np.ndarray, b_pos: np.ndarray, use_mkt: bool = True
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sums of 1, r', m', r'm', m'^2, r'^2 over sessions ``a_pos .. b_pos - 1`` of the layout.

    ``ret`` and ``mkt`` are the dense returns (NaN at gaps), ``span`` the series'
    session counts in layout order; query ``k`` (a pair's estimation window, or one
    run of its exclusions) lies in series ``q_tid[k]`` and sums the sessions from
    dense index ``a_pos[k]`` up to ``b_pos[k] - 1`` (``a_pos == b_pos`` is empty).
    Quantities are centred per series on their mean over its usable sessions
    (``mu``, keyed ``r m rm mm rr``), so the running sums stay small and their
    differences lose little; the caller adds ``n * mu`` back for the quadratic ones.
    Without ``use_mkt`` a session is usable when ``ret`` is finite, and the benchmark
    is read as 0 (a model without the benchmark).

    The compiled kernel :func:`impact.engine_kernels.window_sums` makes three passes
    over each series (means, centred means, running sums) and answers the series'
    queries from its running sums; the series are split in two halves by rows, one
    per thread.
    """
    from impact import engine_kernels  # numba: imported when first needed

    n_t = len(span)
    span = np.ascontiguousarray(span, dtype=np.int64)
    starts = np.cumsum(span) - span
    q_tid = np.asarray(q_tid, dtype=np.int64)
    order = stable_order(q_tid, n_t)
    q_bounds = np.searchsorted(q_tid[order], np.arange(n_t + 1)).astype(np.int64)
    out = np.empty((6, len(q_tid)))
    mu_arr = np.zeros((5, n_t))
    ret = np.ascontiguousarray(ret, dtype=np.float64)
    mkt = np.ascontiguousarray(mkt, dtype=np.float64)
    a_pos = np.ascontiguousarray(a_pos, dtype=np.int64)
    b_pos = np.ascontiguousarray(b_pos, dtype=np.int64)
    half = int(np.searchsorted(np.cumsum(span), span.sum() / 2)) if n_t else 0
    parts = [(0, half), (half, n_t)]

    def run(t0: int, t1: int) -> None:
        engine_kernels.window_sums(ret, mkt, starts, span, t0, t1, order, q_bounds, a_pos,
                                   b_pos, out, mu_arr, use_mkt)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda p: run(*p), parts))
    return out, dict(zip(("r", "m", "rm", "mm", "rr"), mu_arr, strict=True))


@dataclass(frozen=True)
class Exclusions:
    """Estimation-window sessions each pair leaves out (another event's window, say).

    Intervals of sessions relative to the pair's day 0, both ends included; a pair
    may have several, in any order, overlapping or not. The parts outside the
    estimation window are ignored (the event window is never affected).
    """

    #: Per interval: the pair's index (0 .. pairs - 1, in the engine's pair order).
    pair: npt.NDArray[np.int64]
    #: Per interval: first and last relative day.
    lo: npt.NDArray[np.int64]
    hi: npt.NDArray[np.int64]

    @classmethod
    def from_mask(cls, excluded: Sequence[npt.NDArray[np.bool_]],
                  first_rel: Sequence[int]) -> Exclusions:
        """The runs of ``True`` of per-pair masks (mask ``k`` starts at day ``first_rel[k]``)."""
        lens = np.array([len(x) for x in excluded], dtype=np.int64)
        flat = (np.concatenate([np.asarray(x, dtype=bool) for x in excluded])
                if len(excluded) else np.zeros(0, dtype=bool))
        pair = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
        rel = np.arange(len(flat), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        rel += np.repeat(np.asarray(first_rel, dtype=np.int64), lens)
        same = pair[1:] == pair[:-1]
        prev = np.concatenate([[False], flat[:-1] & same])
        nxt = np.concatenate([flat[1:] & same, [False]])
        starts = np.flatnonzero(flat & ~prev)
        ends = np.flatnonzero(flat & ~nxt)
        return cls(pair=pair[starts], lo=rel[starts], hi=rel[ends])

    def merged(self, estimation: tuple[int, int]) -> Exclusions:
        """Clipped to the estimation window, sorted by pair, overlapping runs merged."""
        e0, e1 = estimation
        pair = np.asarray(self.pair, dtype=np.int64)
        lo = np.maximum(np.asarray(self.lo, dtype=np.int64), e0)
        hi = np.minimum(np.asarray(self.hi, dtype=np.int64), e1)
        keep = hi >= lo
        pair, lo, hi = pair[keep], lo[keep], hi[keep]
        if not len(pair):
            return Exclusions(pair, lo, hi)
        o = np.lexsort((lo, pair))
        pair, lo, hi = pair[o], lo[o], hi[o]
        # key = pair * width + day keeps pairs apart; a run joins the previous one when it
        # starts at or before the furthest end reached so far (+1: adjacent runs merge)
        width = int(e1 - e0 + 3)
        k_lo = pair * width + (lo - e0)
        k_hi = np.maximum.accumulate(pair * width + (hi - e0))
        new = np.ones(len(pair), dtype=bool)
        new[1:] = (k_lo[1:] > k_hi[:-1] + 1) | (pair[1:] != pair[:-1])
        first = np.flatnonzero(new)
        last = np.append(first[1:], len(pair)) - 1
        return Exclusions(pair[first], lo[first], k_hi[last] - pair[first] * width + e0)


@dataclass(frozen=True)
class DenseModel:
    """Fits, event-window ARs and CARs of every pair (:func:`dense_market_model`).

    Per pair (arrays of the pairs' length): ``status`` (0 ok, 1 insufficient, 2
    collinear, 3 no data), ``nobs`` (L1), ``alpha``, ``beta``, ``s2`` (residual
    variance), ``r2``, ``rbar_m`` (mean benchmark return over the used sessions),
    ``s_mm`` (sum of squared deviations of the benchmark), NaN unless ok.
    Per ok pair (rows of ``okp``) and event-window day (``rel``): ``inside`` (the
    session is in the series' span), ``mkt`` (benchmark return), ``ar``, ``var_ar``
    (NaN at gaps). ``cars``: columns of one row per pair and CAR window, pair-major
    (row ``pair * windows + window``): ``n_days`` (int32), ``status`` (uint8: 0 ok, 1
    incomplete, 2 no fit), ``reason`` (uint8, index into the reasons), ``car``,
    ``var_car`` (``t`` is ``car / sqrt(var_car)``, with ``nobs`` less the model's
    parameters as its degrees of freedom). ``exclusions``: the merged
    exclusions used. ``mkt`` has no rows when :func:`dense_market_model` was asked not
    to keep it (``ar_cov`` then needs it and fails).
    """

    status: npt.NDArray[np.int64]
    nobs: npt.NDArray[np.int64]
    alpha: npt.NDArray[np.float64]
    beta: npt.NDArray[np.float64]
    s2: npt.NDArray[np.float64]
    r2: npt.NDArray[np.float64]
    rbar_m: npt.NDArray[np.float64]
    s_mm: npt.NDArray[np.float64]
    okp: npt.NDArray[np.int64]
    rel: npt.NDArray[np.int64]
    inside: npt.NDArray[np.bool_]
    mkt: npt.NDArray[np.float64]
    ar: npt.NDArray[np.float64]
    var_ar: npt.NDArray[np.float64]
    cars: dict[str, np.ndarray]
    exclusions: Exclusions | None
    model: str = "market"

    @property
    def ok(self) -> npt.NDArray[np.bool_]:
        """Per pair: the fit succeeded."""
        return np.asarray(self.status == 0)

    def ar_cov(self, row: int) -> npt.NDArray[np.float64]:
        """Forecast-error covariance of the event-window ARs of ok pair ``okp[row]``.

        ``s^2 [I + 1/L1 + (R_m,t - Rbar_m)(R_m,s - Rbar_m) / S_mm]`` (market model),
        ``s^2 [I + 1/L1]`` (constant mean), ``s^2 I`` (market-adjusted); NaN rows and
        columns where the AR is missing (as :func:`impact.estimation.fit`).
        """
        i = self.okp[row]
        eye = np.eye(len(self.rel))
        if self.model == "market":
            dev = self.mkt[row] - self.rbar_m[i]
            cov = self.s2[i] * (eye + 1.0 / self.nobs[i] + np.outer(dev, dev) / self.s_mm[i])
        elif self.model == "constant-mean":
            cov = self.s2[i] * (eye + 1.0 / self.nobs[i])
        else:
            cov = self.s2[i] * eye
        gap = ~np.isfinite(self.ar[row])
        cov[gap, :] = np.nan
        cov[:, gap] = np.nan
        return np.asarray(cov, dtype=np.float64)


def dense_market_model(
    ret: npt.NDArray[np.float64],
    mkt: npt.NDArray[np.float64],
    span: npt.NDArray[np.int64],
    pair_series: npt.NDArray[np.int64],
    pair_day0: npt.NDArray[np.int64],
    pair_has: npt.NDArray[np.bool_],
    *,
    estimation: tuple[int, int],
    event: tuple[int, int],
    car_windows: Sequence[tuple[int, int]],
    exclusions: Exclusions | None = None,
    step: Callable[[str], None] | None = None,
    model: str = "market",
    keep_mkt: bool = True,
) -> DenseModel:
    """Model fits, ARs and CARs of all pairs on dense arrays (no loop over pairs).

    The core of :func:`market_model` and of :func:`impact.study.compute_study`.

    Parameters
    ----------
    ret, mkt
        Dense layout: series after series (``span[k]`` sessions each, consecutive
        sessions of the series' exchange), NaN at a gap.
    span
        Sessions of each series, in layout order.
    pair_series, pair_day0, pair_has
        Per pair: the series' index, day 0 as a session offset from the series' first
        session (may fall outside it), whether the series has data.
    estimation, event, car_windows
        Windows in sessions relative to day 0, both ends included; the CAR windows
        inside the event window.
    exclusions
        Estimation-window sessions to leave out per pair (``None``: none).
    step
        Called with ``"running sums"``, ``"fits"``, ``"abnormal returns"`` and
        ``"CARs"`` as each is done.
    model
        ``market`` (OLS on a constant and the benchmark), ``constant-mean`` (the
        estimation-window mean; the benchmark is not read) or ``market-adjusted``
        (``AR = R - R_m``, nothing estimated but the residual variance), with
        :func:`impact.estimation.fit`'s definitions (:data:`MODELS`).
    keep_mkt
        Keep the event-window benchmark returns (``DenseModel.mkt``, which
        ``DenseModel.ar_cov`` reads); without, ``mkt`` has no rows (less memory to
        fill: 128 MB at 10^6 pairs).

    Raises
    ------
    ValueError
        For an unknown ``model`` or a bad window.

    Returns
    -------
    DenseModel
    """
    from impact import engine_kernels  # numba: imported when first needed

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; the engine fits {', '.join(MODELS)}")
    code, n_par = MODELS.index(model), MODEL_K[model]
    use_mkt = model == "market"
    (e0, e1), (v0, v1), windows = _check_windows(estimation, event, car_windows)
    done = step or (lambda _name: None)
    span = np.asarray(span, dtype=np.int64)
    tid = np.asarray(pair_series, dtype=np.int64)
    d0 = np.asarray(pair_day0, dtype=np.int64)
    has = np.asarray(pair_has, dtype=bool)
    n_pairs = len(tid)
    tk_pos0 = np.cumsum(span) - span
    pos0 = tk_pos0[tid]
    last = span[tid] - 1

    # estimation-window bounds as dense positions: the sums cover positions a+1 .. b
    # of the running sums (index a_pos .. b_pos - 1 of the layout)
    def bounds(day0: np.ndarray, rel_lo: np.ndarray | int, rel_hi: np.ndarray | int,
               keep: np.ndarray, at: np.ndarray, top: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        a_idx = np.maximum(day0 + rel_lo, 0) - 1
        b_idx = np.minimum(day0 + rel_hi, top)
        nonempty = keep & (b_idx > a_idx)
        return (np.where(nonempty, at + a_idx + 1, at), np.where(nonempty, at + b_idx + 1, at))

    a_pos, b_pos = bounds(d0, e0, e1, has, pos0, last)
    ex = exclusions.merged((e0, e1)) if exclusions is not None else None
    # market-adjusted: the residual d = r - m is summed directly (no cancellation between
    # sums of r^2, r m and m^2); the constant-mean sums leave the benchmark out
    sum_ret = ret - mkt if model == "market-adjusted" else ret
    if ex is not None and len(ex.pair):
        xa, xb = bounds(d0[ex.pair], ex.lo, ex.hi, has[ex.pair], pos0[ex.pair],
                        last[ex.pair])
        s_all, mu = _window_sums(sum_ret, mkt, span, np.concatenate([tid, tid[ex.pair]]),
                                 np.concatenate([a_pos, xa]), np.concatenate([b_pos, xb]),
                                 use_mkt)
        s = s_all[:, :n_pairs].copy()
        for k in range(6):
            s[k] -= np.bincount(ex.pair, weights=s_all[k, n_pairs:], minlength=n_pairs)
        del s_all
    else:
        s, mu = _window_sums(sum_ret, mkt, span, tid, a_pos, b_pos, use_mkt)
    del a_pos, b_pos
    done("running sums")

    # the fits from the window sums
    s_n, s_r, s_m = s[0], s[1], s[2]
    s_n = np.rint(s_n)  # counts: exact, but differences of float sums
    s_rm = s[3] + s_n * mu["rm"][tid]
    s_mm = s[4] + s_n * mu["mm"][tid]
    s_rr = s[5] + s_n * mu["rr"][tid]
    mu_r, mu_m = mu["r"][tid], mu["m"][tid]
    with np.errstate(divide="ignore", invalid="ignore"):
        rb = s_r / s_n
        mb = s_m / s_n
        smm = s_mm - s_m * mb
        srm = s_rm - s_r * mb
        srr = s_rr - s_r * rb
        raw_mm = s_mm + 2 * s_m * mu_m + s_n * mu_m * mu_m
        collinear = ~(smm > 2 * np.finfo(float).eps * (s_n + raw_mm) ** 2 / s_n)
    if model != "market":
        collinear = np.zeros(n_pairs, dtype=bool)  # no regressor that can be collinear
    status = np.where(~has, 3, np.where(s_n < n_par + 2, 1, np.where(collinear, 2, 0)))
    ok = status == 0
    nan = np.full(n_pairs, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        if model == "market":
            beta = np.where(ok, srm / smm, np.nan)
            alpha = np.where(ok, (mu_r + rb) - beta * (mu_m + mb), np.nan)
            ssr = np.maximum(srr - beta * srm, 0.0)
            r2 = np.where(ok, 1.0 - ssr / np.where(srr != 0, srr, np.nan), np.nan)
            rbar_m = np.where(ok, mu_m + mb, np.nan)
            s_mm_c = np.where(ok, smm, np.nan)
        elif model == "constant-mean":  # the mean return; residuals about it
            alpha = np.where(ok, mu_r + rb, np.nan)
            beta, r2, rbar_m, s_mm_c = nan, nan, nan, nan
            ssr = np.maximum(srr, 0.0)
        else:  # market-adjusted: the sums are of d = r - m; sum of d^2 = sum of (d' + mu)^2
            alpha, beta, r2, rbar_m, s_mm_c = nan, nan, nan, nan, nan
            ssr = np.maximum(s_rr + 2.0 * mu_r * s_r + s_n * mu_r * mu_r, 0.0)
        s2 = np.where(ok, ssr / (s_n - n_par), np.nan)
    nobs = s_n.astype(np.int64)
    del s, s_rm, s_mm, s_rr, rb, mb, smm, srm, srr, raw_mm, ssr
    done("fits")

    # event-window ARs and CARs: a compiled kernel over the ok pairs, in two threads
    rel = np.arange(v0, v1 + 1, dtype=np.int64)
    okp = np.flatnonzero(ok)
    n_ok, n_rel, nw = len(okp), len(rel), len(windows)
    inside = np.empty((n_ok, n_rel), dtype=bool)
    m_ev = np.empty((n_ok if keep_mkt else 0, n_rel))
    ar = np.empty((n_ok, n_rel))
    var_ar = np.empty((n_ok, n_rel))
    # CAR columns, pair-major (row = pair * windows + window); not-ok pairs: no_fit
    cars: dict[str, np.ndarray] = {
        "n_days": np.zeros(n_pairs * nw, np.int32),
        "status": np.full(n_pairs * nw, 2, np.uint8),
        "reason": np.repeat((2 + status).astype(np.uint8), nw),
        "car": np.full(n_pairs * nw, np.nan), "var_car": np.full(n_pairs * nw, np.nan)}
    view = {k: v.reshape(n_pairs, nw) for k, v in cars.items()}
    win_lo = np.array([wa - v0 for wa, _ in windows], dtype=np.int64)
    win_hi = np.array([wb - v0 for _, wb in windows], dtype=np.int64)
    ret = np.ascontiguousarray(ret, dtype=np.float64)
    mkt = np.ascontiguousarray(mkt, dtype=np.float64)
    nobs_c = np.maximum(nobs, 1)  # ok pairs only are read; guards the others

    def ar_part(j0: int, j1: int) -> None:
        engine_kernels.ar_cars(
            ret, mkt, okp, j0, j1, d0, pos0, last, alpha, beta, s2, nobs_c, rbar_m, s_mm_c,
            v0, win_lo, win_hi, inside, m_ev, ar, var_ar, view["n_days"], view["status"],
            view["reason"], view["car"], view["var_car"], code)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda jj: ar_part(*jj), [(0, n_ok // 2), (n_ok // 2, n_ok)]))
    done("abnormal returns")
    done("CARs")
    return DenseModel(status=status, nobs=nobs, alpha=alpha, beta=beta, s2=s2, r2=r2,
                      rbar_m=rbar_m, s_mm=s_mm_c, okp=okp, rel=rel, inside=inside,
                      mkt=m_ev, ar=ar, var_ar=var_ar, cars=cars, exclusions=ex, model=model)


def _read_exclusions(con: duckdb.DuckDBPyConnection, table: str, pairs_table: str,
                     pair_ids: npt.NDArray[np.int64], more: Exclusions | None) -> Exclusions:
    """An exclusions table ``(pair_id, rel_lo, rel_hi)`` as :class:`Exclusions` (pair order)."""
    x = con.execute(f"""
        SELECT pair_id::BIGINT AS pair_id, rel_lo::BIGINT AS rel_lo, rel_hi::BIGINT AS rel_hi
        FROM {_ident(table)} WHERE pair_id IS NOT NULL AND rel_lo IS NOT NULL
                                   AND rel_hi IS NOT NULL
    """).fetchnumpy()
    xp = np.asarray(x["pair_id"], dtype=np.int64)
    unknown = ~np.isin(xp, pair_ids)
    if unknown.any():
        raise ValueError(f"{int(unknown.sum())} rows of {table} name a pair_id that is not in "
                         f"{pairs_table} (e.g. {int(xp[unknown][0])})")
    pair = np.searchsorted(pair_ids, xp).astype(np.int64)  # pair_ids are sorted
    lo = np.asarray(x["rel_lo"], dtype=np.int64)
    hi = np.asarray(x["rel_hi"], dtype=np.int64)
    if more is not None:
        pair, lo, hi = (np.concatenate([more.pair, pair]), np.concatenate([more.lo, lo]),
                        np.concatenate([more.hi, hi]))
    return Exclusions(pair=pair, lo=lo, hi=hi)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _without_gc(f: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``f`` with Python's cyclic garbage collector paused (restored after, also on error).

    The first call in a process imports numba and loads the cached kernels, whose
    many new objects set off about 270 collections: 0.14-0.18 s of a cold run at
    10^5 or 10^6 pairs (timed by ``gc.callbacks``; a warm run sets off 0-9). Cycles
    left during the call are collected after it: the collector is re-enabled
    afterwards if it was on.
    """
    @functools.wraps(f)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        was = gc.isenabled()
        gc.disable()
        try:
            return f(*args, **kwargs)
        finally:
            if was:
                gc.enable()

    return paused


@_without_gc
def market_model(
    con: duckdb.DuckDBPyConnection,
    *,
    returns_table: str,
    pairs_table: str,
    estimation: tuple[int, int] = (-250, -11),
    event: tuple[int, int] = (-5, 10),
    car_windows: tuple[tuple[int, int], ...] = _DEFAULT_WINDOWS,
    tests: bool = True,
    exclusions: Exclusions | None = None,
    exclusions_table: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> EngineRun:
    """Fit the market model, ARs, CARs and the per-event tests for every pair at once.

    The same numbers as :func:`market_model_sql`, with the running sums, the
    window differences and the event-window gathers done on dense arrays by compiled
    kernels (:mod:`impact.engine_kernels`, two threads) instead of DuckDB window
    functions and joins (DuckDB's windowed sums run on one
    thread and its 16-rows-per-pair join dominated the SQL form; see
    ``docs/engine.md``). DuckDB still does the per-ticker aggregation, holds the
    inputs and receives the results.

    Parameters
    ----------
    con
        An open DuckDB connection holding both input tables.
    returns_table, pairs_table
        The inputs (layout in the module docstring). When ``pairs_table`` has an
        ``event_id`` column, the pairs sharing an ``event_id`` are tested together
        and ``engine_tests`` is written.
    estimation, event
        Windows in sessions relative to day 0, both ends included.
    car_windows
        CAR windows, each inside the event window.
    tests
        Run the per-event test battery (needs ``event_id``).
    exclusions
        Estimation-window sessions to leave out, per pair; ``Exclusions.pair`` indexes
        the pairs in ``pair_id`` order.
    exclusions_table
        The same as a table ``(pair_id, rel_lo, rel_hi)`` (as :func:`market_model_sql`);
        added to ``exclusions``.
    progress
        Called as ``progress(step, done, total)`` after each step of :data:`STEPS`.

    Returns
    -------
    EngineRun

    Raises
    ------
    ValueError
        As :func:`market_model_sql`.

    Notes
    -----
    Creates or replaces ``engine_fits``, ``engine_ar``, ``engine_car`` and (with
    tests) ``engine_tests``. It issues no BEGIN/COMMIT: run it inside the caller's
    transaction to make the four tables appear together or not at all. The row groups
    flushed during the call keep their doubles uncompressed (:func:`plain_doubles`);
    a table smaller than a row group is written at COMMIT or at the next checkpoint,
    so :func:`market_model_committed` (which ``impact engine`` calls) runs the
    transaction and a checkpoint inside ``plain_doubles(con)`` too.
    """
    (e0, e1), (v0, v1), windows = _check_windows(estimation, event, car_windows)
    rt, pt = _ident(returns_table), _ident(pairs_table)
    seconds: dict[str, float] = {}
    clock = [time.perf_counter()]

    def step(name: str) -> None:
        now = time.perf_counter()
        seconds[name] = now - clock[0]
        clock[0] = now
        if progress is not None:
            progress(name, STEPS.index(name) + 1, len(STEPS))

    # 1. spans (SQL): each ticker's first and last session, ordinal and dense offset
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_tk AS
        WITH a AS (SELECT ticker, min(session_idx) AS lo, max(session_idx) AS hi,
                          count(*) AS n_rows FROM {rt} GROUP BY ticker)
        SELECT ticker, lo, hi, n_rows, (row_number() OVER (ORDER BY ticker) - 1)::BIGINT AS tid,
               coalesce(sum(hi - lo + 1) OVER (ORDER BY ticker ROWS BETWEEN UNBOUNDED PRECEDING
                                               AND 1 PRECEDING), 0)::BIGINT AS pos0
        FROM a
    """)
    tk = con.execute("SELECT ticker, lo, hi, pos0, n_rows FROM _eng_tk ORDER BY tid").fetchnumpy()
    tk_lo = np.asarray(tk["lo"], dtype=np.int64)
    tk_pos0 = np.asarray(tk["pos0"], dtype=np.int64)
    span = np.asarray(tk["hi"], dtype=np.int64) - tk_lo + 1
    total = int(span.sum())
    step("spans")

    # 2. the returns on a dense layout: every ticker's sessions back to back, a
    #    session's index is pos0 + session_idx - lo; NaN marks a gap
    # streamed in Arrow batches and scattered batch by batch: no full-size copy of the
    # query's result (faster than fetchnumpy, and less memory); a NULL becomes NaN in
    # Arrow's to_numpy (about 10% faster than coalesce in the query)
    query = con.sql(f"""
        SELECT t.pos0 + d.session_idx - t.lo AS p, d.ret::DOUBLE AS ret, d.mkt::DOUBLE AS mkt
        FROM {rt} d JOIN _eng_tk t USING (ticker)
    """)
    from impact import engine_kernels  # numba: imported when first needed

    reader = getattr(query, "to_arrow_reader", None) or query.fetch_record_batch  # duckdb < 1.4
    ret = np.full(total, np.nan)
    mkt = np.full(total, np.nan)
    seen = np.zeros(total, dtype=np.uint8)
    repeated = 0
    for batch in reader(READ_BATCH):
        repeated += engine_kernels.scatter_returns(
            np.asarray(batch.column(0).to_numpy(), dtype=np.int64),
            batch.column(1).to_numpy(zero_copy_only=False),  # NULL -> NaN
            batch.column(2).to_numpy(zero_copy_only=False), ret, mkt, seen)
    if repeated:
        dups = con.execute(f"""
            SELECT count(DISTINCT ticker) FROM (SELECT ticker FROM {rt}
            GROUP BY ticker, session_idx HAVING count(*) > 1)""").fetchall()[0][0]
        raise ValueError(f"{dups} tickers have repeated session_idx values in {returns_table}")
    del seen
    step("returns")

    # 3-6. fits, ARs and CARs on the dense layout (the core shared with impact.study)
    has_event = "event_id" in [c[0] for c in con.execute(
        f"SELECT * FROM {pt} LIMIT 0").description]
    ev_col = ", p.event_id" if has_event else ""
    q = con.execute(f"""
        SELECT p.pair_id, p.day0_idx, t.tid IS NOT NULL AS has_data,
               coalesce(t.tid, 0) AS tid {ev_col}
        FROM {pt} p LEFT JOIN _eng_tk t USING (ticker) ORDER BY p.pair_id
    """).fetchnumpy()
    con.execute("DROP TABLE IF EXISTS _eng_tk")
    pair_ids = np.asarray(q["pair_id"], dtype=np.int64)
    n_pairs = len(pair_ids)
    if not len(span):  # no returns at all: one dummy ticker that no pair uses
        span, tk_lo, tk_pos0 = (np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64),
                                np.zeros(1, dtype=np.int64))
        ret = mkt = np.full(1, np.nan)
    has = np.asarray(q["has_data"], dtype=bool)
    tid = np.asarray(q["tid"], dtype=np.int64)
    d0 = np.asarray(q["day0_idx"], dtype=np.int64)
    lo = tk_lo[tid]
    hi = lo + span[tid] - 1
    pos0 = tk_pos0[tid]
    if exclusions_table is not None:
        exclusions = _read_exclusions(con, exclusions_table, pairs_table, pair_ids, exclusions)
    m = dense_market_model(ret, mkt, span, tid, d0 - lo, has, estimation=(e0, e1),
                           event=(v0, v1), car_windows=windows, exclusions=exclusions,
                           step=step, keep_mkt=False)
    status, nobs, alpha, beta, s2, r2 = m.status, m.nobs, m.alpha, m.beta, m.s2, m.r2
    rbar_m, s_mm_c, ok, okp, rel, inside = m.rbar_m, m.s_mm, m.ok, m.okp, m.rel, m.inside
    ar, var_ar = m.ar, m.var_ar
    n_ok, n_rel = len(okp), len(rel)
    cars = m.cars

    # 7. the per-event tests
    test_tbl: pa.Table | None = None
    if tests and has_event:
        from impact.engine_tests import PanelArrays, event_tests

        ev_codes, ev_index = np.unique(np.asarray(q["event_id"]), return_inverse=True)
        frame = event_tests(
            PanelArrays(ret=ret, mkt=mkt, event=ev_index.astype(np.int64),
                        day0_pos=pos0 + d0 - lo, lo_pos=pos0, hi_pos=pos0 + hi - lo, ok=ok,
                        nobs=nobs, alpha=alpha, beta=beta, sigma=np.sqrt(s2), rbar_m=rbar_m,
                        s_mm=s_mm_c, exclusions=m.exclusions),
            estimation=(e0, e1), event=(v0, v1), windows=windows)
        test_tbl = frame.with_columns(
            pl.Series("event_id", ev_codes)[frame["event"]].alias("event")
        ).rename({"event": "event_id"}).to_arrow()
    step("tests")

    # 8. write the results (dictionary-encoded strings; NaN -> NULL in Arrow; ARs and CARs as
    #    arrays per pair behind the views engine_ar and engine_car)
    del ret, mkt
    names = list(tk["ticker"]) or [""]
    nw = len(windows)
    n_ar = int(np.count_nonzero(inside))
    fit_cols: dict[str, pa.Array] = {
        "pair_id": pa.array(pair_ids),
        "ticker": pa.DictionaryArray.from_arrays(
            pa.array(tid.astype(np.int32), mask=~has), pa.array(names, pa.string())),
        "day0_idx": pa.array(d0.astype(np.int32)),
        "status": _dict(status, _FIT_STATUS), "nobs": pa.array(nobs),
        "alpha": _nullable(alpha), "beta": _nullable(beta), "sigma": _nullable(np.sqrt(s2)),
        "r2": _nullable(r2), "rbar_m": _nullable(rbar_m), "s_mm": _nullable(s_mm_c)}
    _write(con, "engine_fits", pa.table(fit_cols))
    step("write fits")
    # one row per ok pair, the event window's days as arrays (NaN outside the data
    # span and at gaps; NULL in the view): a sixteenth of the rows of the long form,
    # written in about half the time; the view engine_ar unnests them. NaN, not NULL,
    # in the arrays: DuckDB takes an Arrow list's values with a validity mask in about
    # 1.5 times the time of the values alone
    any_in = inside.any(axis=1)
    k_first = inside.argmax(axis=1)
    k_last = n_rel - 1 - inside[:, ::-1].argmax(axis=1)
    _drop(con, "engine_ar")
    _write(con, "engine_ar_data", pa.table({
        "pair_id": pa.array(pair_ids[okp]),
        "first_day": pa.array((rel[0] + k_first).astype(np.int32), mask=~any_in),
        "last_day": pa.array((rel[0] + k_last).astype(np.int32), mask=~any_in),
        "ar": pa.FixedSizeListArray.from_arrays(pa.array(ar.ravel()), n_rel),
        "var_ar": pa.FixedSizeListArray.from_arrays(pa.array(var_ar.ravel()), n_rel)}))
    con.execute(ar_view(int(rel[0]), int(rel[-1])))
    del m, ar, var_ar
    step("write ARs")

    def arrays(v: np.ndarray) -> pa.Array:
        """Pair-major values as one array of the windows per pair (NaN kept; see the ARs)."""
        return pa.FixedSizeListArray.from_arrays(pa.array(v), nw)

    _drop(con, "engine_car")
    _write(con, "engine_car_data", pa.table({
        "pair_id": pa.array(pair_ids), "df": pa.array(nobs - K),
        "code": arrays(car_codes(cars["n_days"], cars["status"], cars["reason"])),
        "car": arrays(cars["car"]),
        "var_car": arrays(cars["var_car"])}))  # t: made by the view
    con.execute(car_view(windows))
    del cars
    step("write CARs")

    if test_tbl is not None:
        _write(con, "engine_tests", test_tbl)
    else:  # never leave another run's tests beside these results
        _drop(con, "engine_tests")
    document(con)
    step("write tests")
    return EngineRun(pairs=n_pairs, ok=n_ok, ar_rows=n_ar, car_rows=n_pairs * nw,
                     test_rows=0 if test_tbl is None else test_tbl.num_rows, seconds=seconds)


def market_model_committed(con: duckdb.DuckDBPyConnection, *, checkpoint: bool = True,
                           **kwargs: Any) -> EngineRun:
    """:func:`market_model` in a transaction of its own, committed as ``impact engine`` does.

    The transaction, its COMMIT and the checkpoint after it run inside
    :func:`plain_doubles`, so that tables smaller than a row group (written at COMMIT or
    at the checkpoint) keep their doubles uncompressed too. Any exception, Ctrl-C
    included, rolls the transaction back: the four tables appear together or not at
    all.

    Parameters
    ----------
    con
        An open DuckDB connection holding the input tables, with no transaction open.
    checkpoint
        Checkpoint the file after the COMMIT. Best effort: the run is committed, so
        an error or Ctrl-C there is suppressed (DuckDB checkpoints again when the
        file is closed).
    **kwargs
        The keyword arguments of :func:`market_model`.

    Returns
    -------
    EngineRun
    """
    from impact.storage import transaction

    with plain_doubles(con):
        with transaction(con):
            run = market_model(con, **kwargs)
        if checkpoint:
            with suppress(duckdb.Error, KeyboardInterrupt):
                con.execute("CHECKPOINT")
    return run


@dataclass(frozen=True)
class SeriesFit:
    """One model of one :class:`impact.estimation.EventSeries` (:func:`fit_series`)."""

    #: The fit, as :func:`impact.estimation.fit` returns it; ``None`` if it failed.
    fit: Fit | None
    #: Why it failed, in the reference's words (``""`` when it did not).
    error: str
    #: Per CAR window: ``(car, var_car)`` when the CAR is complete, else ``None``.
    cars: dict[tuple[int, int], tuple[float, float] | None]


def fit_series(series: Sequence[EventSeries], *, estimation: tuple[int, int],
               event: tuple[int, int], car_windows: Sequence[tuple[int, int]],
               model: str | ModelSpec = "market") -> list[SeriesFit]:
    """One model of many event series at once, with no loop over the pairs' fits.

    The path :func:`impact.study.compute_study` takes. The models of :data:`MODELS` go
    through :func:`dense_market_model`: each series becomes one series of the dense
    layout (its sessions, day 0 at ``-rel_day[0]``), its ``excluded`` sessions the
    pair's :class:`Exclusions`. The multi-factor (a :class:`impact.estimation.ModelSpec`
    of kind ``multi-factor``), Scholes-Williams and Dimson models are fitted by
    :func:`_stacked`, on stacked arrays of the estimation windows
    (:data:`STACKED_MODELS`). The results are put back in the shape of
    :func:`impact.estimation.fit` (the per-pair reference, equal to 1e-9), so that the
    CARs' SQ p-values, BHARs and the study's tests can use them.

    Parameters
    ----------
    series
        Aligned inputs, one per event-security pair (consecutive sessions).
    estimation, event, car_windows
        Windows in sessions relative to day 0, both ends included.
    model
        A built-in model name (:data:`MODELS`, ``scholes-williams``, ``dimson``) or an
        :class:`impact.estimation.ModelSpec` (e.g. a multi-factor model).

    Returns
    -------
    list of SeriesFit
        In the order of ``series``; each fit's ``model`` is the model's name (the
        study puts its own name for the model in).

    Raises
    ------
    ValueError
        For an unknown model kind or a bad window.
    """
    (e0, e1), (v0, v1), windows = _check_windows(estimation, event, car_windows)
    spec = builtin(model) if isinstance(model, str) else model
    if spec.kind in STACKED_MODELS:
        return _stacked(series, spec, (e0, e1), (v0, v1), windows)
    if spec.kind not in MODELS:
        raise ValueError(f"unknown model kind {spec.kind!r}; the engine fits "
                         f"{', '.join(MODELS + STACKED_MODELS)}")
    kind = spec.kind
    n = len(series)
    if not n:
        return []
    has = np.array([len(s.ret) > 0 for s in series], dtype=bool)
    first = np.array([int(s.rel_day[0]) if len(s.rel_day) else 0 for s in series],
                     dtype=np.int64)
    # an empty series takes one NaN session (no pair uses it: has = False)
    ret = np.concatenate([np.asarray(s.ret, dtype=np.float64) if len(s.ret) else [np.nan]
                          for s in series] or [np.zeros(0)])
    mkt = np.concatenate([np.asarray(s.mkt, dtype=np.float64) if len(s.ret) else [np.nan]
                          for s in series] or [np.zeros(0)])
    span = np.array([max(len(s.ret), 1) for s in series], dtype=np.int64)
    m = dense_market_model(ret, mkt, span, np.arange(n, dtype=np.int64), -first, has,
                           estimation=(e0, e1), event=(v0, v1), car_windows=windows,
                           exclusions=Exclusions.from_mask([s.excluded for s in series],
                                                           first.tolist()), model=kind)
    k = MODEL_K[kind]
    row_of = {int(i): r for r, i in enumerate(m.okp)}
    out: list[SeriesFit] = []
    for i, s in enumerate(series):
        st = int(m.status[i])
        if st != 0:
            # status 3, an empty series: the reference finds 0 usable returns
            msg = COLLINEAR if st == 2 else INSUFFICIENT.format(n=int(m.nobs[i]), k=k)
            out.append(SeriesFit(None, msg, {}))
            continue
        r = row_of[i]
        alpha, beta = float(m.alpha[i]), float(m.beta[i])
        inside = m.inside[r]
        f = _as_fit(s, spec, ((alpha, beta), (alpha,), ())[MODELS.index(kind)],
                    s2=float(m.s2[i]), nobs=int(m.nobs[i]), k=k, r2=float(m.r2[i]),
                    ev_ar=m.ar[r][inside], ev_cov=m.ar_cov(r)[np.ix_(inside, inside)],
                    estimation=(e0, e1), event=(v0, v1))
        cars: dict[tuple[int, int], tuple[float, float] | None] = {}
        for w_i, w in enumerate(windows):
            row = i * len(windows) + w_i
            cars[w] = ((float(m.cars["car"][row]), float(m.cars["var_car"][row]))
                       if int(m.cars["status"][row]) == 0 else None)
        out.append(SeriesFit(f, "", cars))
    return out


def _as_fit(s: EventSeries, spec: ModelSpec, params: npt.NDArray[np.float64] | tuple[float, ...],
            *, s2: float, nobs: int, k: int, r2: float, ev_ar: npt.NDArray[np.float64],
            ev_cov: npt.NDArray[np.float64], estimation: tuple[int, int],
            event: tuple[int, int]) -> Fit:
    """An engine fit of one series in the shape of :func:`impact.estimation.fit`.

    The estimation-window residuals and the event window's expected returns are the
    series' returns less :func:`impact.estimation.expected_returns` (NaN where an input
    of the model is missing); ``ev_ar`` and ``ev_cov`` are the engine's, on the series'
    event-window sessions.
    """
    rel = np.asarray(s.rel_day)
    ret = np.asarray(s.ret)
    in_est = (rel >= estimation[0]) & (rel <= estimation[1])
    in_ev = (rel >= event[0]) & (rel <= event[1])
    expected = expected_returns(spec, s, params)
    use = in_est & np.isfinite(ret) & ~np.isnan(expected) & ~np.asarray(s.excluded, bool)
    resid = np.full(int(in_est.sum()), np.nan)
    resid[use[in_est]] = (ret - expected)[use]
    used = np.flatnonzero(use)
    # the slope on the benchmark follows the constant (market-adjusted: no parameters)
    return Fit(model=spec.name, alpha=float(params[0]) if len(params) else float("nan"),
               beta=float(params[1]) if spec.uses_market and len(params) > 1 else float("nan"),
               sigma=float(np.sqrt(s2)), nobs=nobs, k=k, r2=r2, est_start=s.dates[used[0]],
               est_end=s.dates[used[-1]], est_rel_day=rel[in_est], est_resid=resid,
               ev_rel_day=rel[in_ev],
               ev_dates=tuple(d for d, e in zip(s.dates, in_ev, strict=True) if e),
               ev_ret=ret[in_ev], ev_mkt=np.asarray(s.mkt)[in_ev], ev_expected=expected[in_ev],
               ev_ar=ev_ar, ev_cov=ev_cov, params=tuple(float(v) for v in params),
               param_names=param_names(spec))


#: Models :func:`_stacked` fits.
STACKED_MODELS = ("multi-factor", "scholes-williams", "dimson")


def _stacked(series: Sequence[EventSeries], spec: ModelSpec, estimation: tuple[int, int],
             event: tuple[int, int], windows: Sequence[tuple[int, int]]) -> list[SeriesFit]:
    """A multi-factor, Scholes-Williams or Dimson model of every series at once.

    As :func:`impact.estimation.fit` and :func:`impact.estimation.car` (the same
    numbers, failures and messages), with the pairs stacked along a first axis (pairs x
    window days x regressors), so that every step is a whole-array operation:

    * multi-factor: OLS, ``X = [1, R_m (when spec.market), factors]``, ``params =
      (X'X)^-1 X'y``: the normal equations, their rank (the collinearity test),
      inverses and solutions;
    * Scholes-Williams and Dimson: ``X = [1, R_m]`` for the usable sessions, the
      collinearity test and the ARs' covariance, and the beta from the sessions that
      also have the previous and next session's benchmark return (inside the series):
      ``(b_lag + b_0 + b_lead) / (1 + 2 rho)`` from three simple regressions and the
      benchmark's first-order autocorrelation (Scholes-Williams), or the sum of the
      three slopes of one regression (Dimson; a pseudo-inverse with the reference's
      ``lstsq`` cut-off); ``alpha = mean(R) - beta mean(R_m)`` over those sessions.

    The residuals, ``s^2``, the ARs, their covariance ``s^2 (I + X (X'X)^-1 X')`` and
    the CARs follow for all pairs at once. Memory is O(pairs x window x regressors),
    which suits a study; :func:`dense_market_model` is the engine for whole markets.
    """
    (e0, e1), (v0, v1) = estimation, event
    n = len(series)
    if not n:
        return []
    # a series without one of the model's factors fails with the reference's message:
    # read as missing, the factor leaves it no usable session
    lacks = [next((f for f in spec.factors if f not in s.factors), None) for s in series]
    nonsync = spec.kind != "multi-factor"
    k = 2 if nonsync else 1 + int(spec.market) + len(spec.factors)
    lens = np.array([len(s.ret) for s in series], dtype=np.int64)
    first = np.array([int(s.rel_day[0]) if len(s.rel_day) else 0 for s in series],
                     dtype=np.int64)
    start = np.cumsum(lens) - lens

    def flat(values: Callable[[EventSeries], npt.ArrayLike], dtype: npt.DTypeLike = np.float64
             ) -> npt.NDArray[Any]:
        return np.concatenate([np.asarray(values(s), dtype=dtype) for s in series]
                              + [np.zeros(1, dtype=dtype)])  # a pad: never read as data

    ret = flat(lambda s: s.ret)

    def factor(name: str) -> npt.NDArray[Any]:
        return flat(lambda s: s.factors.get(name, np.full(len(s.ret), np.nan)))

    mkt = flat(lambda s: s.mkt)
    cols = ([mkt] if nonsync or spec.market else []) + [factor(f) for f in spec.factors]
    excl = flat(lambda s: s.excluded, np.bool_)

    def where(lo: int, hi: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
        """Relative days lo..hi of every series: inside it, and their flat positions."""
        off = np.arange(lo, hi + 1)[None, :] - first[:, None]
        inside = (off >= 0) & (off < lens[:, None])
        return inside, np.where(inside, start[:, None] + off, len(ret) - 1)

    def gather(lo: int, hi: int) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64],
                                          npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Relative days lo..hi of every series: inside it, returns, regressors, excluded."""
        inside, idx = where(lo, hi)
        x = np.stack([np.ones(idx.shape)] + [c[idx] for c in cols], axis=-1)
        return inside, np.where(inside, ret[idx], np.nan), x, inside & excl[idx]

    # estimation window: the sessions with a return and every regressor, not excluded
    inside, y, x, ex = gather(e0, e1)
    use = inside & np.isfinite(y) & np.isfinite(x).all(axis=-1) & ~ex
    nobs = use.sum(axis=1)
    xu = np.where(use[..., None], x, 0.0)
    yu = np.where(use, y, 0.0)
    xtx = np.einsum("nlp,nlq->npq", xu, xu)
    status = np.where(nobs < k + 2, 1, 0)
    cand = np.flatnonzero(status == 0)
    if len(cand):
        rank = np.linalg.matrix_rank(xtx[cand])
        status[cand[rank < k]] = 2
    n_rows = np.zeros(n, dtype=np.int64)
    if nonsync:  # the sessions with the previous and next session's benchmark return too
        lag_in, lag_idx = where(e0 - 1, e1 - 1)
        lead_in, lead_idx = where(e0 + 1, e1 + 1)
        lag = np.where(lag_in, mkt[lag_idx], np.nan)
        lead = np.where(lead_in, mkt[lead_idx], np.nan)
        rows = use & np.isfinite(lag) & np.isfinite(lead)
        n_rows = rows.sum(axis=1)
        status[(status == 0) & (n_rows < 6)] = 4
    okp = np.flatnonzero(status == 0)
    inv = np.linalg.inv(xtx[okp])
    if nonsync:
        params = _nonsync_params(spec.kind, rows[okp], y[okp], x[okp, :, 1], lag[okp],
                                 lead[okp])
    else:
        params = np.einsum("npq,nq->np", inv, np.einsum("nlp,nl->np", xu[okp], yu[okp]))
    resid = np.where(use[okp], yu[okp] - np.einsum("nlp,np->nl", xu[okp], params), 0.0)
    n_ok = nobs[okp].astype(np.float64)
    ssr = (resid * resid).sum(axis=1)
    s2 = ssr / (n_ok - k)
    dev = np.where(use[okp], yu[okp] - yu[okp].sum(axis=1, keepdims=True) / n_ok[:, None], 0.0)
    tss = (dev * dev).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(tss > 0, 1.0 - ssr / tss, np.nan)
    if nonsync:
        r2[:] = np.nan  # not an OLS fit (as the reference)

    # event window: ARs where the return and every regressor are known; the covariance
    # s^2 (I + X (X'X)^-1 X') with missing regressors read as 0 (NaN rows at gaps)
    ev_in, ev_y, ev_x, _ = gather(v0, v1)
    ev_in, ev_y, ev_x = ev_in[okp], ev_y[okp], ev_x[okp]
    ev_ok = ev_in & np.isfinite(ev_y) & np.isfinite(ev_x).all(axis=-1)
    xf = np.where(np.isfinite(ev_x), ev_x, 0.0)
    expected = np.einsum("nlp,np->nl", xf, params)
    ar = np.where(ev_ok, ev_y - expected, np.nan)
    lev = np.einsum("nlp,npq,nmq->nlm", xf, inv, xf)
    cov = s2[:, None, None] * (np.eye(v1 - v0 + 1)[None] + lev)
    cov = np.where(ev_ok[:, :, None] & ev_ok[:, None, :], cov, np.nan)
    # CARs: complete when every day of the window has a finite AR (as the reference: an
    # overflow is no AR); the variance sums the covariances as they are (inf stays inf)
    car_sums: list[dict[tuple[int, int], tuple[float, float] | None]] = [{} for _ in okp]
    has_ar = np.isfinite(ar)
    for w in windows:
        a, b = w[0] - v0, w[1] - v0 + 1
        full = np.asarray(has_ar[:, a:b].all(axis=1), dtype=bool)
        c = np.where(full, np.where(has_ar, ar, 0.0)[:, a:b].sum(axis=1), np.nan)
        with np.errstate(invalid="ignore"):
            v = np.where(full, cov[:, a:b, a:b].sum(axis=(1, 2)), np.nan)
        for r in range(len(okp)):
            car_sums[r][w] = (float(c[r]), float(v[r])) if full[r] else None

    row_of = {int(i): r for r, i in enumerate(okp)}
    out = []
    for i, s in enumerate(series):
        if status[i] != 0:
            lack = lacks[i]
            out.append(SeriesFit(None, MISSING_FACTOR.format(
                model=spec.name, factor=lack, have=", ".join(s.factors)) if lack is not None
                else COLLINEAR if status[i] == 2
                else NONSYNC_ROWS.format(n=int(n_rows[i])) if status[i] == 4
                else INSUFFICIENT.format(n=int(nobs[i]), k=k), {}))
            continue
        r = row_of[i]
        # this series' event days among the stacked ones (rel_day may be a float array)
        rel = np.asarray(s.rel_day)
        ev_cols = (rel[(rel >= v0) & (rel <= v1)] - v0).astype(np.int64)
        f = _as_fit(s, spec, params[r], s2=float(s2[r]), nobs=int(nobs[i]), k=k,
                    r2=float(r2[r]), ev_ar=ar[r, ev_cols],
                    ev_cov=cov[r][np.ix_(ev_cols, ev_cols)], estimation=estimation,
                    event=event)
        out.append(SeriesFit(f, "", car_sums[r]))
    return out


def _nonsync_params(kind: str, rows: npt.NDArray[np.bool_], y: npt.NDArray[np.float64],
                    m0: npt.NDArray[np.float64], m1: npt.NDArray[np.float64],
                    p1: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``(alpha, beta)`` per pair of a Scholes-Williams or Dimson model (pairs x days).

    ``rows``: the sessions used; ``m0``, ``m1``, ``p1``: the benchmark's return that
    session, the previous one and the next one.
    """
    cnt = rows.sum(axis=1).astype(np.float64)

    def centred(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        vz = np.where(rows, v, 0.0)
        return np.where(rows, vz - vz.sum(axis=1, keepdims=True) / cnt[:, None], 0.0)

    yc, c0, c1, cp = centred(y), centred(m0), centred(m1), centred(p1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "scholes-williams":
            def slope(xc: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
                return np.asarray((xc * yc).sum(axis=1) / (xc * xc).sum(axis=1))

            # as numpy.corrcoef: covariances over their standard deviations, clipped
            sd0 = np.sqrt((c0 * c0).sum(axis=1) / (cnt - 1))
            sd1 = np.sqrt((c1 * c1).sum(axis=1) / (cnt - 1))
            rho = np.clip((c0 * c1).sum(axis=1) / (cnt - 1) / sd0 / sd1, -1.0, 1.0)
            beta = (slope(c1) + slope(c0) + slope(cp)) / (1.0 + 2.0 * rho)
        else:  # Dimson: [1, lag, R_m, lead]; the minimum-norm least squares (lstsq's cut-off)
            ones = rows.astype(np.float64)
            xd = np.stack([ones, np.where(rows, m1, 0.0), np.where(rows, m0, 0.0),
                           np.where(rows, p1, 0.0)], axis=-1)
            cut = np.finfo(np.float64).eps * np.maximum(cnt, 4.0)
            coef = np.einsum("npl,nl->np", np.linalg.pinv(xd, rcond=cut),
                             np.where(rows, y, 0.0))
            beta = coef[:, 1:].sum(axis=1)
        alpha = (np.where(rows, y, 0.0).sum(axis=1)
                 - beta * np.where(rows, m0, 0.0).sum(axis=1)) / cnt
    return np.stack([alpha, beta], axis=-1)
