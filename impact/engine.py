"""Set-based market-model event study inside DuckDB (no Python loop over pairs).

The per-pair reference is :mod:`impact.estimation` (``fit(series, "market", ...)``
and ``car``). This module computes the same numbers for every event-security pair
of a study at once, with a handful of SQL statements whose cost per pair does not
grow with the length of the estimation window.

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

Not covered (the reference supports them): estimation-window sessions excluded
because another event's window covers them, models other than the market model,
the SQ test, BHAR and p-values.
"""

from __future__ import annotations

import duckdb

#: The market model estimates two parameters (alpha, beta).
K = 2

_DEFAULT_WINDOWS: tuple[tuple[int, int], ...] = ((-1, 1), (0, 0), (0, 1), (-5, 10), (0, 10))


def _ident(name: str) -> str:
    """A quoted SQL identifier (table names may carry a schema: ``s.t``)."""
    parts = name.split(".")
    if not all(parts):
        raise ValueError(f"bad table name {name!r}")
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _check_window(name: str, w: tuple[int, int]) -> tuple[int, int]:
    a, b = int(w[0]), int(w[1])
    if a > b:
        raise ValueError(f"{name} window {w} has its start after its end")
    return a, b


def market_model_sql(
    con: duckdb.DuckDBPyConnection,
    *,
    returns_table: str,
    pairs_table: str,
    estimation: tuple[int, int] = (-250, -11),
    event: tuple[int, int] = (-5, 10),
    car_windows: tuple[tuple[int, int], ...] = _DEFAULT_WINDOWS,
    centre: bool = True,
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

    Raises
    ------
    ValueError
        If a window is malformed, a CAR window leaves the event window, or
        ``(ticker, session_idx)`` repeats in the returns.

    Notes
    -----
    Creates or replaces ``engine_fits``, ``engine_ar`` and ``engine_car`` in the
    connection's current schema; temporary ``_eng_*`` tables are dropped.
    """
    e0, e1 = _check_window("estimation", estimation)
    v0, v1 = _check_window("event", event)
    windows = [_check_window("CAR", w) for w in car_windows]
    if not windows:
        raise ValueError("no CAR window")
    for a, b in windows:
        if a < v0 or b > v1:
            raise ValueError(f"CAR window ({a}, {b}) is not inside the event window {event}")
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
    diff = {c: (f"CASE WHEN q.b_idx > q.a_idx THEN coalesce(b.c_{c}, 0) - coalesce(a.c_{c}, 0) "
                f"ELSE 0 END") for c in ("n", "r", "m", "rm", "mm", "rr")}
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _eng_est AS
        WITH q AS (
            SELECT p.pair_id, p.ticker, p.day0_idx, t.lo, t.hi, t.pos0, t.mu_r, t.mu_m,
                   t.mu_rm, t.mu_mm, t.mu_rr, t.ticker IS NOT NULL AS has_data,
                   greatest(p.day0_idx + {e0}, t.lo) - 1 AS a_idx,
                   least(p.day0_idx + {e1}, t.hi) AS b_idx
            FROM {pt} p LEFT JOIN _eng_tk t USING (ticker)),
        d AS (
            SELECT q.pair_id, q.ticker, q.day0_idx, q.lo, q.hi, q.mu_r, q.mu_m, q.has_data,
                   q.mu_rm, q.mu_mm, q.mu_rr,
                   {diff["n"]} AS s_n, {diff["r"]} AS s_r, {diff["m"]} AS s_m,
                   {diff["rm"]} AS q_rm, {diff["mm"]} AS q_mm, {diff["rr"]} AS q_rr
            FROM q
            LEFT JOIN _eng_cum b ON b.pos = q.pos0 + q.b_idx - q.lo + 1
            LEFT JOIN _eng_cum a ON a.pos = q.pos0 + q.a_idx - q.lo + 1)
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
    for t in ("_eng_tk0", "_eng_tk", "_eng_dense", "_eng_x", "_eng_cum", "_eng_est",
              "_eng_fit", "_eng_agg"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
