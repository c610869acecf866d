"""The set-based engine (impact.engine) against the per-pair reference (impact.estimation)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from impact.engine import (
    _CAR_REASON,
    _CAR_STATUS,
    Exclusions,
    _write,
    car_codes,
    car_view,
    fit_series,
    market_model,
    market_model_sql,
    plain_doubles,
)
from impact.estimation import EventSeries, ModelSpec, car, fit

RTOL = 1e-9


@dataclass
class Panel:
    #: ticker -> (lo, dense ret, dense mkt) with NaN at gaps (including missing rows)
    data: dict[str, tuple[int, np.ndarray, np.ndarray]]
    returns: pd.DataFrame
    pairs: pd.DataFrame


def make_panel(seed: int, n_tickers: int = 30, n_sessions: int = 600,
               est: tuple[int, int] = (-250, -11), ev: tuple[int, int] = (-5, 10),
               n_pairs: int = 400) -> Panel:
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0004, 0.011, n_sessions)
    data: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
    frames = []
    for k in range(n_tickers):
        ticker = f"T{k:03d}"
        lo = int(rng.integers(0, 120))
        hi = int(rng.integers(n_sessions - 120, n_sessions))
        idx = np.arange(lo, hi + 1)
        mkt = market[idx].copy()
        beta = rng.uniform(0.5, 1.5)
        ret = rng.normal(0.0003, 0.004) + beta * mkt + 0.02 * rng.standard_t(4, len(idx)) / 1.41
        ret[rng.random(len(idx)) < 0.03] = np.nan  # missing prices
        mkt[rng.random(len(idx)) < 0.01] = np.nan  # missing benchmark
        if k == 0:  # a long gap
            ret[200:215] = np.nan
        if k == 1:  # a benchmark that does not move over its early sessions
            mkt[:300] = 0.001
        keep = np.ones(len(idx), dtype=bool)
        if k % 5 == 2:  # rows absent altogether inside the span: also gaps
            keep[rng.choice(np.arange(1, len(idx) - 1), 12, replace=False)] = False
        frames.append(pd.DataFrame({
            "ticker": ticker, "session_idx": idx[keep].astype(np.int32),
            "date": [date(2000, 1, 1) + timedelta(days=int(i)) for i in idx[keep]],
            "ret": ret[keep], "mkt": mkt[keep]}))
        dense_ret = np.where(keep, ret, np.nan)
        dense_mkt = np.where(keep, mkt, np.nan)
        data[ticker] = (lo, dense_ret, dense_mkt)
    returns = pd.concat(frames, ignore_index=True)
    # pairs: anywhere, including short histories and windows past the data's end
    tickers = rng.choice(list(data), n_pairs)
    day0 = []
    for t in tickers:
        lo, r, _ = data[t]
        hi = lo + len(r) - 1
        where = rng.random()
        if where < 0.05:  # (almost) no history: fewer than 4 estimation-window returns
            day0.append(int(rng.integers(lo - est[1] - 2, lo - est[1] + 5)))
        elif where < 0.15:  # short history
            day0.append(int(rng.integers(lo, lo - est[0] + 5)))
        elif where < 0.3:  # near or past the end
            day0.append(int(rng.integers(hi - ev[1] - 3, hi + 3)))
        else:
            day0.append(int(rng.integers(lo - est[0], hi + 1)))
    pairs = pd.DataFrame({"pair_id": np.arange(n_pairs, dtype=np.int64), "ticker": tickers,
                          "day0_idx": np.array(day0, dtype=np.int32)})
    # a pair whose ticker has no returns at all
    pairs.loc[len(pairs)] = [n_pairs, "NOPE", 400]
    return Panel(data, returns, pairs)


def reference_series(p: Panel, ticker: str, day0: int, est: tuple[int, int],
                     ev: tuple[int, int], excluded: list[tuple[int, int]] | None = None
                     ) -> EventSeries | None:
    if ticker not in p.data:
        return None
    lo, ret, mkt = p.data[ticker]
    hi = lo + len(ret) - 1
    start, end = max(lo, day0 + est[0]), min(hi, day0 + ev[1])
    if end < start:
        return None
    idx = np.arange(start, end + 1)
    rel = idx - day0
    mask = np.zeros(len(idx), dtype=bool)
    for a, b in excluded or []:  # as impact.study: only estimation-window sessions
        mask |= (rel >= max(a, est[0])) & (rel <= min(b, est[1]))
    return EventSeries(
        rel_day=rel,
        dates=tuple(date(2000, 1, 1) + timedelta(days=int(i)) for i in idx),
        ret=ret[idx - lo], mkt=mkt[idx - lo], excluded=mask)


def rel_err(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def run(p: Panel, est: tuple[int, int], ev: tuple[int, int],
        windows: tuple[tuple[int, int], ...], backend: str = "sql",
        exclusions: dict[int, list[tuple[int, int]]] | None = None,
        reference_ignores_exclusions: bool = False
        ) -> tuple[dict[str, float], dict[str, int]]:
    con = duckdb.connect()
    con.register("returns_df", p.returns)
    con.register("pairs_df", p.pairs)
    con.execute("CREATE TABLE returns AS SELECT * FROM returns_df")
    con.execute("CREATE TABLE pairs AS SELECT * FROM pairs_df")
    if exclusions is None:
        engine = market_model_sql if backend == "sql" else market_model
        engine(con, returns_table="returns", pairs_table="pairs", estimation=est, event=ev,
               car_windows=windows)
    else:  # pair_id = position in pair_id order
        items = [(k, a, b) for k, runs in exclusions.items() for a, b in runs]
        ex = Exclusions(pair=np.array([i[0] for i in items], dtype=np.int64),
                        lo=np.array([i[1] for i in items], dtype=np.int64),
                        hi=np.array([i[2] for i in items], dtype=np.int64))
        if backend == "sql":
            con.register("ex_df", pd.DataFrame({"pair_id": ex.pair, "rel_lo": ex.lo,
                                                "rel_hi": ex.hi}))
            con.execute("CREATE TABLE exclusions AS SELECT * FROM ex_df")
            market_model_sql(con, returns_table="returns", pairs_table="pairs",
                             estimation=est, event=ev, car_windows=windows,
                             exclusions_table="exclusions")
        else:
            market_model(con, returns_table="returns", pairs_table="pairs", estimation=est,
                         event=ev, car_windows=windows, exclusions=ex)
    fits = con.sql("SELECT * FROM engine_fits").df().set_index("pair_id")
    ars = con.sql("SELECT * FROM engine_ar").df()
    cars = con.sql("SELECT * FROM engine_car").df()
    assert len(fits) == len(p.pairs)
    assert len(cars) == len(p.pairs) * len(windows)
    ar_by = {k: g.sort_values("rel_day") for k, g in ars.groupby("pair_id")}
    car_by = {(r.pair_id, r.window_start, r.window_end): r for r in cars.itertuples()}
    worst = {"alpha": 0.0, "beta": 0.0, "sigma": 0.0, "ar": 0.0, "var_ar": 0.0,
             "car": 0.0, "var_car": 0.0, "t": 0.0}
    seen: dict[str, int] = {}
    for pr in p.pairs.itertuples():
        row = fits.loc[pr.pair_id]
        s = reference_series(p, pr.ticker, pr.day0_idx, est, ev,
                             None if reference_ignores_exclusions
                             else (exclusions or {}).get(pr.pair_id))
        status = str(row["status"])
        seen[status] = seen.get(status, 0) + 1
        if s is None:
            assert status in ("no_data", "insufficient")
            continue
        try:
            f = fit(s, "market", est, ev)
        except ValueError as exc:
            msg = str(exc)
            assert status == ("collinear" if "collinear" in msg else "insufficient"), msg
            assert pd.isna(row["alpha"]) and pd.isna(row["sigma"])
            assert pr.pair_id not in ar_by
            for w in windows:
                c = car_by[(pr.pair_id, *w)]
                assert c.status == "no_fit" and c.reason == status and pd.isna(c.car)
            continue
        assert status == "ok", (pr, status)
        assert row["nobs"] == f.nobs
        for name, got, want in (("alpha", row["alpha"], f.alpha), ("beta", row["beta"], f.beta),
                                ("sigma", row["sigma"], f.sigma)):
            worst[name] = max(worst[name], rel_err(got, want))
        g = ar_by.get(pr.pair_id)
        got_rel = g["rel_day"].to_numpy() if g is not None else np.empty(0)
        np.testing.assert_array_equal(got_rel, f.ev_rel_day)
        if g is not None:
            ok = np.isfinite(f.ev_ar)
            assert np.array_equal(g["ar"].notna().to_numpy(), ok)
            assert np.array_equal(g["var_ar"].notna().to_numpy(), ok)
            for got, want, key in ((g["ar"].to_numpy()[ok], f.ev_ar[ok], "ar"),
                                   (g["var_ar"].to_numpy()[ok], np.diag(f.ev_cov)[ok], "var_ar")):
                if ok.any():
                    worst[key] = max(worst[key], float(np.max(np.abs(got - want) / np.abs(want))))
        for w in windows:
            ref = car(f, w)
            c = car_by[(pr.pair_id, *w)]
            key = f"car_{c.status}_{c.reason}"
            seen[key] = seen.get(key, 0) + 1
            assert c.status == ref.status, (pr, w, c, ref)
            if ref.status != "ok":
                assert c.reason == ("no_session" if "sessions have prices" in ref.reason
                                    else "gap"), (c.reason, ref.reason)
                assert pd.isna(c.car) and pd.isna(c.var_car) and pd.isna(c.t)
                continue
            assert c.n_days == ref.n_days and c.df == ref.df
            worst["car"] = max(worst["car"], rel_err(c.car, ref.car))
            worst["var_car"] = max(worst["var_car"], rel_err(c.var_car, ref.var))
            worst["t"] = max(worst["t"], rel_err(c.t, ref.t))
    return worst, seen


@pytest.mark.parametrize("backend", ["sql", "dense"])
@pytest.mark.parametrize(("seed", "est", "ev", "windows"), [
    (1, (-250, -11), (-5, 10), ((-1, 1), (0, 0), (-5, 10), (0, 10), (-5, -1))),
    (2, (-60, -6), (-3, 5), ((-3, 5), (0, 1), (5, 5))),
    (3, (-120, -2), (-1, 3), ((-1, 3), (0, 0))),
])
def test_engine_equals_reference(seed: int, est: tuple[int, int], ev: tuple[int, int],
                                 windows: tuple[tuple[int, int], ...], backend: str) -> None:
    p = make_panel(seed, est=est, ev=ev)
    worst, seen = run(p, est, ev, windows, backend)
    print(seed, {k: f"{v:.1e}" for k, v in worst.items()})
    assert max(worst.values()) < RTOL, worst
    # the panel exercises every case
    for status in ("ok", "insufficient", "no_data", "collinear", "car_ok_",
                   "car_incomplete_gap", "car_incomplete_no_session"):
        if status == "collinear" and seed != 1:
            continue
        assert seen.get(status, 0) > 0, (status, seen)


def random_exclusions(p: Panel, est: tuple[int, int], ev: tuple[int, int], seed: int
                      ) -> dict[int, list[tuple[int, int]]]:
    """0-4 intervals per pair, overlapping, touching, reaching out of the estimation window."""
    rng = np.random.default_rng(seed)
    out: dict[int, list[tuple[int, int]]] = {}
    for pid in p.pairs["pair_id"]:
        runs = []
        for _ in range(int(rng.integers(0, 5))):
            a = int(rng.integers(est[0] - 20, ev[1] + 3))
            runs.append((a, a + int(rng.integers(0, 40))))
        if runs:
            out[int(pid)] = runs
    out[3] = [(est[0] - 10, est[1] + 10)]  # the whole window: insufficient
    out[4] = [(est[0], est[0] + 9), (est[0] + 10, est[0] + 19), (est[0] + 5, est[0] + 7)]
    return out


@pytest.mark.parametrize("backend", ["sql", "dense"])
@pytest.mark.parametrize(("seed", "est", "ev", "windows"), [
    (4, (-250, -11), (-5, 10), ((-1, 1), (0, 0), (-5, 10))),
    (5, (-60, -6), (-3, 5), ((-3, 5), (0, 1))),
])
def test_exclusions_equal_reference(seed: int, est: tuple[int, int], ev: tuple[int, int],
                                    windows: tuple[tuple[int, int], ...], backend: str) -> None:
    """Sessions left out of the estimation window (another event's window) as the reference."""
    p = make_panel(seed, est=est, ev=ev)
    excl = random_exclusions(p, est, ev, seed)
    worst, seen = run(p, est, ev, windows, backend, excl)
    print(seed, {k: f"{v:.1e}" for k, v in worst.items()})
    assert max(worst.values()) < RTOL, worst
    assert seen.get("ok", 0) > 200 and seen.get("insufficient", 0) > 0, seen
    # and the exclusions were applied: the reference without them disagrees
    with pytest.raises(AssertionError):
        run(p, est, ev, windows, backend, excl, reference_ignores_exclusions=True)


def test_exclusion_runs_are_merged_and_clipped() -> None:
    ex = Exclusions(pair=np.array([1, 0, 1, 1, 0, 2]), lo=np.array([-30, -300, -20, -9, -5, 5]),
                    hi=np.array([-25, -240, -10, -8, 3, 9]))
    m = ex.merged((-250, -11))
    got = list(zip(m.pair.tolist(), m.lo.tolist(), m.hi.tolist(), strict=True))
    # pair 0: clipped to -250; -5..3 is outside; pair 1: -30..-25 and -20..-10 merge with
    # nothing (a gap at -24..-21), -9..-8 is outside; pair 2 is outside
    assert got == [(0, -250, -240), (1, -30, -25), (1, -20, -11)]
    touching = Exclusions(pair=np.array([0, 0]), lo=np.array([-30, -19]), hi=np.array([-20, -15]))
    m = touching.merged((-250, -11))
    assert (m.lo.tolist(), m.hi.tolist()) == ([-30], [-15])
    masks = [np.array([0, 1, 1, 0, 1], dtype=bool), np.array([1, 1], dtype=bool),
             np.zeros(3, dtype=bool)]
    f = Exclusions.from_mask(masks, [-10, -3, 0])
    assert list(zip(f.pair.tolist(), f.lo.tolist(), f.hi.tolist(), strict=True)) == [
        (0, -9, -8), (0, -6, -6), (1, -3, -2)]


def test_plain_running_sums_also_agree() -> None:
    """Without centring (plain running sums of doubles) on ~10 years of sessions."""
    p = make_panel(4, n_tickers=8, n_sessions=2600, n_pairs=150)
    con = duckdb.connect()
    con.register("r", p.returns)
    con.register("q", p.pairs)
    for centre in (True, False):
        market_model_sql(con, returns_table="r", pairs_table="q", centre=centre,
                         car_windows=((-1, 1),))
        fits = con.sql("SELECT * FROM engine_fits WHERE status = 'ok' ORDER BY pair_id").df()
        for row in fits.itertuples():
            s = reference_series(p, str(row.ticker), int(row.day0_idx), (-250, -11), (-5, 10))
            assert s is not None
            f = fit(s, "market", (-250, -11), (-5, 10))
            assert rel_err(row.beta, f.beta) < RTOL
            assert rel_err(row.sigma, f.sigma) < RTOL


def _one_window(v: np.ndarray) -> pa.Array:
    """Per-pair values as engine_car_data's arrays of a single CAR window."""
    return pa.FixedSizeListArray.from_arrays(pa.array(v), 1)


def test_car_view_decodes_every_code() -> None:
    """engine_car_data packs each window's n_days, status and reason into one integer;
    engine_car gives back each of them, for every status and reason and for n_days
    across the bits' boundaries (long windows)."""
    grid = [(nd, st, rs) for nd in (0, 1, 15, 16, 255, 256, 4097, 1 << 22)
            for st in range(len(_CAR_STATUS)) for rs in range(len(_CAR_REASON))]
    nd, st, rs = (np.array(v) for v in zip(*grid, strict=True))
    code = car_codes(nd.astype(np.int32), st.astype(np.uint8), rs.astype(np.uint8))
    n = len(grid)

    con = duckdb.connect()
    con.register("tbl", pa.table({
        "pair_id": pa.array(np.arange(n)), "df": pa.array(np.full(n, 7)),
        "code": _one_window(code), "car": _one_window(np.zeros(n)),
        "var_car": _one_window(np.ones(n))}))
    con.execute("CREATE TABLE engine_car_data AS SELECT * FROM tbl")
    con.execute(car_view([(0, 0)]))
    got = con.execute("SELECT n_days, status, reason, df FROM engine_car ORDER BY pair_id"
                      ).fetchall()
    want = [(a, _CAR_STATUS[b], _CAR_REASON[c], 7 if b == 0 else None) for a, b, c in grid]
    assert got == want


def test_car_view_makes_t_as_numpy_does() -> None:
    """engine_car's t is made by the view from car and var_car (engine_car_data does not
    store it): bit for bit numpy's ``car / sqrt(var_car)``, with +-inf at a variance of
    either zero, and NULL where numpy gives NaN (0/0, a negative variance, on which
    DuckDB's sqrt would raise, and NaN); and so on the engine's own CARs."""
    car = np.array([0.05, -0.05, 0.05, 0.0, 0.05, 0.03, np.nan, 0.0123456789, -0.07])
    var = np.array([0.0, 0.0, -0.0, 0.0, -1e-20, np.nan, np.nan, 3.7e-4, 1e-300])
    n = len(car)

    tbl = pa.table({"pair_id": pa.array(np.arange(n)), "df": pa.array(np.full(n, 200)),
                    "code": _one_window(car_codes(np.ones(n, dtype=np.int32),
                                                  np.zeros(n, dtype=np.uint8),
                                                  np.zeros(n, dtype=np.uint8))),
                    "car": _one_window(car), "var_car": _one_window(var)})
    con = duckdb.connect()
    con.register("tbl", tbl)
    con.execute("CREATE TABLE engine_car_data AS SELECT * FROM tbl")
    con.execute(car_view([(0, 0)]))
    got = [r[0] for r in con.execute("SELECT t FROM engine_car ORDER BY pair_id").fetchall()]
    with np.errstate(all="ignore"):
        want = car / np.sqrt(var)
    for g, w in zip(got, want, strict=True):
        if np.isnan(w):
            assert g is None
        else:
            assert g == w and np.signbit(g) == np.signbit(w), (g, w)

    p = make_panel(5, n_pairs=200)
    con.register("r", p.returns)
    con.register("q", p.pairs)
    market_model(con, returns_table="r", pairs_table="q", car_windows=((-1, 1), (0, 5)))
    assert "t" not in [c[0] for c in con.execute(
        "SELECT * FROM engine_car_data LIMIT 0").description]
    c, v, t = con.execute("SELECT car, var_car, t FROM engine_car WHERE status = 'ok'"
                          ).fetchnumpy().values()
    assert len(t) > 100 and np.array_equal(np.asarray(t), np.asarray(c) / np.sqrt(v))


def _setting(con: duckdb.DuckDBPyConnection) -> str:
    return str((con.execute("SELECT current_setting('disabled_compression_methods')")
                .fetchone() or ("",))[0]).lower()


def test_engine_writes_doubles_uncompressed(tmp_path: Path) -> None:
    """The engine's tables keep their doubles uncompressed in the row groups flushed while
    they are written (plain_doubles: ALP and ALPRD about double the write's CPU time), and
    DuckDB's global setting is the user's again afterwards, also after an error."""
    rng = np.random.default_rng(3)
    n = 200_000  # one full row group (122,880 rows) is flushed during the write
    tbl = pa.table({"x": pa.array(rng.normal(0, 0.02, n)),
                    "a": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(0, 1, 4 * n)), 4),
                    "k": pa.array(np.arange(n))})
    con = duckdb.connect(str(tmp_path / "w.duckdb"))

    def kinds(table: str) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for col, comp in con.execute(
                "SELECT column_name, compression FROM pragma_storage_info(?) "
                "WHERE segment_type IN ('DOUBLE', 'BIGINT')", [table]).fetchall():
            out.setdefault(col, set()).add(comp)
        return out

    con.execute("BEGIN")
    _write(con, "engine_t", tbl)
    con.register("tbl", tbl)
    con.execute("CREATE TABLE plain_t AS SELECT * FROM tbl")  # DuckDB's own choice
    con.execute("COMMIT")
    got, usual = kinds("engine_t"), kinds("plain_t")
    assert "Uncompressed" in got["x"] and "Uncompressed" in got["a"], got
    assert "Uncompressed" not in usual["x"] | usual["a"], usual
    assert "Uncompressed" not in got["k"]  # integers are compressed as usual
    assert _setting(con) == ""
    # every value the same (an exact comparison: a parallel sum's order, and so its last
    # bits, varies with the threads' timing)
    assert con.execute("SELECT count(*) FROM engine_t e FULL JOIN plain_t p USING (k) "
                       "WHERE e.x IS DISTINCT FROM p.x OR e.a IS DISTINCT FROM p.a"
                       ).fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM engine_t").fetchone() == (n,)

    con.execute("SET disabled_compression_methods = 'rle'")
    with plain_doubles(con):
        assert _setting(con) == "rle,alp,alprd"
    assert _setting(con) == "rle"
    with pytest.raises(RuntimeError), plain_doubles(con):
        raise RuntimeError("interrupted")
    assert _setting(con) == "rle"
    con.execute("SET disabled_compression_methods = ''")
    con.execute("SET force_compression = 'alprd'")  # the user's choice is left alone
    with plain_doubles(con):
        assert _setting(con) == ""


def test_bad_input() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE r AS SELECT 'A' AS ticker, 1 AS session_idx, 0.01 AS ret, "
                "0.01 AS mkt FROM range(2)")
    con.execute("CREATE TABLE q AS SELECT 1::BIGINT AS pair_id, 'A' AS ticker, 1 AS day0_idx")
    with pytest.raises(ValueError, match="repeated"):
        market_model_sql(con, returns_table="r", pairs_table="q")
    with pytest.raises(ValueError, match="not inside"):
        market_model_sql(con, returns_table="r", pairs_table="q", car_windows=((-6, 0),))
    with pytest.raises(ValueError, match="start after"):
        market_model_sql(con, returns_table="r", pairs_table="q", estimation=(-11, -250))


def _random_series(seed: int, count: int, min_len: int,
                   make: Callable[[int, int, np.ndarray],
                                  tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]
                   ) -> list[EventSeries]:
    """Random series around an estimation window of (-120, -11) and an event window of
    (-5, 10): short histories, windows past the data, gaps and excluded runs.

    ``make(i, n, mkt)`` returns the ``i``-th series' returns, benchmark returns (from a
    random ``mkt``) and factors; 4% of the returns and 3% of the benchmark returns are
    then removed, and every third series has an excluded run.
    """
    rng = np.random.default_rng(seed)
    series = []
    for i in range(count):
        n = int(rng.integers(min_len, 140))
        first = -int(rng.integers(5, 135))
        rel = np.arange(first, first + n)
        ret, mkt, factors = make(i, n, rng.normal(size=n) * 0.01 + 0.0005)
        ret[rng.random(n) < 0.04] = np.nan
        mkt[rng.random(n) < 0.03] = np.nan  # the constant-mean model uses those days
        excluded = np.zeros(n, dtype=bool)
        if i % 3 == 0:
            a = int(rng.integers(0, n))
            excluded[a:a + int(rng.integers(1, 30))] = True
            excluded &= rel <= -11
        dates = tuple(date(2020, 1, 1) + timedelta(days=int(k)) for k in range(n))
        series.append(EventSeries(rel, dates, ret, mkt, excluded, factors))
    return series


_EST, _EV, _WINDOWS = (-120, -11), (-5, 10), [(0, 0), (-1, 1), (-5, 10), (0, 10)]


@pytest.mark.parametrize("model", ["market", "constant-mean", "market-adjusted"])
def test_fit_series_models_equal_reference(model: str) -> None:
    """Each engine model against ``impact.estimation.fit``/``car``, series by series.

    Random series with gaps in the returns and (separately) in the benchmark, excluded
    runs, short histories, windows past the data and a constant benchmark.
    """
    rng = np.random.default_rng(5)

    def make(i: int, n: int, mkt: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        if i == 7:
            mkt[:] = 0.001  # constant benchmark: collinear for the market model only
        return 0.0003 + rng.uniform(0.5, 1.5) * mkt + rng.standard_t(4, size=n) * 0.015, mkt, {}

    series = _random_series(5, 60, 20, make)
    got = fit_series(series, estimation=_EST, event=_EV, car_windows=_WINDOWS, model=model)
    n_ok, errors = _compare_fits(model, series, got, model, _EST, _EV, _WINDOWS)
    assert n_ok > 30 and errors, (n_ok, errors)


def _compare_fits(label: str, series: list[EventSeries], got: list, model: ModelSpec | str,
                  est: tuple[int, int], ev: tuple[int, int],
                  windows: list[tuple[int, int]]) -> tuple[int, list[str]]:
    """Assert each engine fit equals ``impact.estimation.fit``/``car``; (ok fits, errors)."""
    n_ok, errors = 0, []
    for s, sf in zip(series, got, strict=True):
        try:
            ref = fit(s, model, est, ev)
        except ValueError as exc:
            assert sf.fit is None and sf.error == str(exc), (label, sf.error, str(exc))
            errors.append(str(exc))
            continue
        assert sf.fit is not None, (label, sf.error)
        f = sf.fit
        n_ok += 1
        assert (f.model, f.k, f.nobs, f.param_names) == (ref.model, ref.k, ref.nobs,
                                                          ref.param_names), label
        assert (f.est_start, f.est_end, f.ev_dates) == (ref.est_start, ref.est_end, ref.ev_dates)
        for name in ("alpha", "beta", "sigma", "r2"):
            a, b = getattr(f, name), getattr(ref, name)
            assert (np.isnan(a) and np.isnan(b)) or close(a, b), (label, name, a, b)
        for name in ("params", "est_rel_day", "est_resid", "ev_rel_day", "ev_ret", "ev_mkt",
                     "ev_expected", "ev_ar", "ev_cov"):
            a, b = np.asarray(getattr(f, name)), np.asarray(getattr(ref, name))
            assert a.shape == b.shape and np.array_equal(np.isnan(a), np.isnan(b)), (label, name)
            assert all(close(x, y) for x, y in zip(a[~np.isnan(a)], b[~np.isnan(b)],
                                                   strict=True)), (label, name)
        for w in windows:
            c = car(ref, w)
            sums = sf.cars[w]
            assert (sums is not None) == (c.status == "ok"), (label, w, c.reason)
            if sums is not None:
                assert close(sums[0], c.car) and close(sums[1], c.se**2), (label, w)
    return n_ok, errors


@pytest.mark.parametrize("market", [True, False])
def test_fit_series_multi_factor_equals_reference(market: bool) -> None:
    """A multi-factor model (OLS on stacked windows) against ``impact.estimation.fit``.

    Random series with two factors: gaps in the returns, the benchmark and a factor,
    excluded runs, short histories, windows past the data, a constant factor and a
    factor equal to the benchmark (collinear), and a series without one of the factors.
    """
    spec = ModelSpec("mf", "multi-factor", factors=("us", "fx"), market=market)
    rng = np.random.default_rng(11)

    def make(i: int, n: int, mkt: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        us = rng.normal(size=n) * 0.012
        fx = rng.normal(size=n) * 0.004
        if i == 7:
            fx[:] = 0.002  # constant: collinear with the constant
        if i == 8:
            us = mkt.copy()  # the benchmark again: collinear when the model has it
        ret = 0.0003 + 0.9 * mkt + 0.4 * us - 0.3 * fx + rng.standard_t(4, size=n) * 0.015
        us[rng.random(n) < 0.03] = np.nan
        return ret, mkt, ({"us": us, "fx": fx} if i != 9 else {"us": us})

    series = _random_series(11, 60, 10, make)
    series.append(EventSeries(np.arange(0), (), np.zeros(0), np.zeros(0), np.zeros(0, bool),
                              {"us": np.zeros(0), "fx": np.zeros(0)}))
    est, ev, windows = _EST, _EV, _WINDOWS
    got = fit_series(series, estimation=est, event=ev, car_windows=windows, model=spec)
    n_ok, errors = _compare_fits("multi-factor", series, got, spec, est, ev, windows)
    assert n_ok > 30, n_ok
    assert any("collinear" in e for e in errors), errors
    assert any("needs factor 'fx'" in e for e in errors), errors
    assert any(e.startswith("only 0 usable") for e in errors), errors


@pytest.mark.parametrize("model", ["scholes-williams", "dimson"])
def test_fit_series_nonsynchronous_betas_equal_reference(model: str) -> None:
    """Scholes-Williams and Dimson betas (stacked windows) against ``impact.estimation.fit``.

    Random series whose returns react to the benchmark's previous and next session
    (so that the three slopes differ), with gaps in the returns and the benchmark
    (which also remove the neighbours' lag or lead), excluded runs, short histories,
    series starting inside the estimation window (no lag on their first day), too few
    sessions with a lag and a lead, a constant benchmark and a benchmark constant
    except on one day (rank-deficient lag and lead regressors).
    """
    rng = np.random.default_rng(13)

    def make(i: int, n: int, mkt: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        if i == 7:
            mkt[:] = 0.001  # constant: collinear
        if i == 8:
            mkt[:] = 0.001
            mkt[n // 2] = 0.02  # one move: lag and lead columns nearly collinear with it
        ret = (0.0003 + 0.6 * mkt + 0.3 * np.roll(mkt, 1) + 0.2 * np.roll(mkt, -1)
               + rng.standard_t(4, size=n) * 0.015)
        if i == 9:
            mkt[rng.random(n) < 0.3] = np.nan  # many removed lags and leads
        return ret, mkt, {}

    series = _random_series(13, 70, 8, make)
    est, ev, windows = _EST, _EV, _WINDOWS
    # 4..5 usable sessions, so that the fit fails on too few with a lag and a lead
    rel = np.arange(-16, 11)
    short_mkt = rng.normal(size=27) * 0.01
    short_mkt[::2] = np.nan
    series.append(EventSeries(rel, tuple(date(2021, 1, 1) + timedelta(days=int(k))
                                         for k in range(27)),
                              rng.normal(size=27) * 0.02, short_mkt, np.zeros(27, bool)))
    got = fit_series(series, estimation=est, event=ev, car_windows=windows, model=model)
    n_ok, errors = _compare_fits(model, series, got, model, est, ev, windows)
    assert n_ok > 30, n_ok
    assert any("collinear" in e for e in errors), errors
    assert any("leading and lagging" in e for e in errors), errors
    assert any(e.startswith("only") and "usable" in e for e in errors), errors
    # the three slopes differ: not the market model's beta
    market = fit_series(series, estimation=est, event=ev, car_windows=windows)
    betas = [(a.fit.beta, b.fit.beta) for a, b in zip(got, market, strict=True)
             if a.fit is not None and b.fit is not None]
    assert max(abs(x - y) for x, y in betas) > 0.1, betas


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning",
                            "ignore:invalid value:RuntimeWarning")
def test_fit_series_stacked_extremes() -> None:
    """Review findings: a finite factor whose square overflows (the CAR's variance is inf,
    as the reference's, not a finite sum with the inf left out; an AR that overflows is
    no AR), and float relative days (the reference accepts them)."""
    rng = np.random.default_rng(3)
    n = 60
    rel = np.arange(-40, 20)
    mkt, us = rng.normal(size=n) * 0.01, rng.normal(size=n) * 0.01
    ret = mkt + us + rng.normal(size=n) * 0.01
    dates = tuple(date(2020, 1, 1) + timedelta(days=int(k)) for k in range(n))
    spec = ModelSpec("m+us", "multi-factor", ("us",), True)
    windows = [(0, 5), (-5, -1), (3, 5)]
    big, huge = us.copy(), us.copy()
    big[rel == 2] = 1e160  # its square overflows: an infinite variance
    huge[rel == 4] = 1e308
    ret_huge = ret.copy()
    ret_huge[rel == 4] = -1e308  # ret - expected overflows: no AR that day
    cases = [EventSeries(rel, dates, ret, mkt, np.zeros(n, bool), {"us": big}),
             EventSeries(rel, dates, ret_huge, mkt, np.zeros(n, bool), {"us": huge}),
             EventSeries(rel.astype(float), dates, ret, mkt, np.zeros(n, bool), {"us": us})]
    got = fit_series(cases, estimation=(-40, -6), event=(-5, 5), car_windows=windows,
                     model=spec)
    for s, sf in zip(cases, got, strict=True):
        ref = fit(s, spec, (-40, -6), (-5, 5))
        assert sf.fit is not None
        for w in windows:
            c = car(ref, w)
            sums = sf.cars[w]
            assert (sums is not None) == (c.status == "ok"), (w, c.reason)
            if sums is not None:
                assert close(sums[0], c.car), w
                assert (np.isnan(sums[1]) and np.isnan(c.var)) or sums[1] == c.var or close(
                    sums[1], c.var), (w, sums[1], c.var)
    assert np.isinf(car(got[0].fit, (0, 5), sums=got[0].cars[(0, 5)]).var)
    assert got[1].cars[(0, 5)] is None and got[1].cars[(-5, -1)] is not None


def test_fit_series_rejects_unknown_models() -> None:
    s = EventSeries(np.arange(-30, 5), (), np.zeros(35), np.zeros(35), np.zeros(35, bool))
    with pytest.raises(ValueError, match="unknown model kind"):
        fit_series([s], estimation=(-30, -11), event=(-5, 4), car_windows=[(0, 0)],
                   model=ModelSpec("x", "garch"))


def close(a: float, b: float) -> bool:
    """Equal to RTOL relative (absolute near 0)."""
    return abs(a - b) <= RTOL * max(abs(b), 1e-12)


def test_fit_series_degenerate_series() -> None:
    """A stale price (constant returns), a return equal to the benchmark, an empty
    series and infinite inputs: the engine's fits, errors and CARs are the reference's."""
    est, ev, windows = (-60, -11), (-5, 10), [(0, 0), (-1, 1)]
    n = 80
    rel = np.arange(n) - 70
    rng = np.random.default_rng(9)
    mkt = rng.normal(size=n) * 0.01
    dates = tuple(date(2021, 1, 1) + timedelta(days=int(k)) for k in range(n))
    stale = np.where(rel <= est[1], 0.0, rng.normal(size=n) * 0.02)  # no trade, then news
    same = mkt.copy()
    inf_ret = rng.normal(size=n) * 0.02 + mkt
    inf_ret[rel == 0] = np.inf
    inf_mkt = mkt.copy()
    inf_mkt[rel == 1] = -np.inf
    cases = {"stale": EventSeries(rel, dates, stale, mkt, np.zeros(n, bool)),
             "ret = mkt": EventSeries(rel, dates, same, mkt, np.zeros(n, bool)),
             "inf ret": EventSeries(rel, dates, inf_ret, mkt, np.zeros(n, bool)),
             "inf mkt": EventSeries(rel, dates, inf_ret, inf_mkt, np.zeros(n, bool)),
             "empty": EventSeries(rel[:0], (), mkt[:0], mkt[:0], np.zeros(0, bool))}
    for model in ("market", "constant-mean", "market-adjusted"):
        got = fit_series(list(cases.values()), estimation=est, event=ev, car_windows=windows,
                         model=model)
        for (name, s), sf in zip(cases.items(), got, strict=True):
            try:
                ref = fit(s, model, est, ev)
            except ValueError as exc:
                assert sf.fit is None and sf.error == str(exc), (model, name, sf.error)
                continue
            assert sf.fit is not None, (model, name, sf.error)
            f = sf.fit
            # an exact fit: both sigmas are 0 or rounding noise (1e-18 on returns of 1e-2)
            exact = ref.sigma < 1e-12
            if exact:
                assert f.sigma < 1e-12, (model, name, f.sigma)
            else:
                assert close(f.sigma, ref.sigma), (model, name)
            if model != "market":  # these sums are exact: 0 stays 0
                assert (f.sigma == 0.0) == (ref.sigma == 0.0), (model, name, f.sigma)
            assert np.array_equal(np.isnan(f.ev_ar), np.isnan(ref.ev_ar)), (model, name)
            assert np.all(np.isfinite(f.ev_ar) | np.isnan(f.ev_ar)), (model, name)
            for w in windows:
                want = car(ref, w)
                have = car(f, w, sums=sf.cars[w])  # never a ZeroDivisionError
                assert have.status == want.status, (model, name, w)
                if want.status == "ok" and not exact:
                    assert close(have.t, want.t), (model, name, w)
                if want.status == "ok" and ref.sigma == 0.0:
                    assert np.isnan(want.t) and np.isnan(have.t), (model, name, w)


@pytest.mark.parametrize("enabled", [True, False])
def test_market_model_pauses_the_garbage_collector(enabled: bool) -> None:
    """Off during the run (the progress callback sees it), back as it was after, also
    after an error."""
    p = make_panel(5, n_tickers=4, n_pairs=20)
    con = duckdb.connect()
    con.register("returns_df", p.returns)
    con.register("pairs_df", p.pairs)
    con.execute("CREATE TABLE returns AS SELECT * FROM returns_df")
    con.execute("CREATE TABLE pairs AS SELECT * FROM pairs_df")
    seen: list[bool] = []

    def progress(step: str, done: int, total: int) -> None:
        seen.append(gc.isenabled())
        if step == "fits" and len(seen) > 20:
            raise RuntimeError("stop")

    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        market_model(con, returns_table="returns", pairs_table="pairs", progress=progress)
        assert seen and not any(seen)
        assert gc.isenabled() == enabled
        seen.extend([False] * 20)
        with pytest.raises(RuntimeError, match="stop"):
            market_model(con, returns_table="returns", pairs_table="pairs",
                         progress=progress)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
