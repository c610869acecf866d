"""Throughput of the set-based engine (impact.engine) against a per-pair statsmodels loop.

    .venv/bin/python benchmarks/run_engine.py                  # 10^4, 10^5, 10^6 pairs
    .venv/bin/python benchmarks/run_engine.py --sizes 10000,100000
    .venv/bin/python benchmarks/run_engine.py --quick          # 10^4 and 10^5, 500 securities

One synthetic panel (benchmarks/panel.py: 3,000 securities x 10 years on XNYS and
XKRX, 8.2 M returns rows; events of 100 securities) is written to a DuckDB file.
Each size runs in a fresh child process that opens the file, takes the first n
pairs and times ``impact.engine.market_model`` end to end: the returns in DuckDB
-> engine_fits, engine_ar, engine_car and engine_tests written to the same
database and committed by ``impact.engine.market_model_committed``, as `impact engine`
commits them (its doubles uncompressed also in the tables written at COMMIT; the
command then checkpoints the file, which DuckDB would otherwise do when it is
closed, and which is not timed here).
The child runs it ``--repeat`` times (default 2): the
first run is cold (a new process: the database file is read and every array is
new memory, which is slow on this VM: first-touch page faults cost about 2 s per
GB), the others warm. Peak memory is the child's ``ru_maxrss`` (it includes
DuckDB's native allocations). The baseline is a per-pair loop on a random
subsample of the same panel: read the pair's returns from DuckDB, statsmodels OLS,
ARs, their forecast-error variances and the CARs with their variances (no tests,
so the ratio flatters the loop). ``IMPACT_BENCH_TESTS=0`` leaves the tests out;
``--backend sql`` times the SQL form.

The engine's loops are compiled by numba (impact/engine_kernels.py) on first use and
cached in impact/__pycache__: before the sizes, a first call on 1,000 pairs in a new
process is timed and printed (it compiles when the cache is absent or stale, about
10 s here, and only loads the cache otherwise), so that no size pays for compiling.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import duckdb
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.panel import build_panel

EST, EVW = (-250, -11), (-5, 10)
WINDOWS = ((-1, 1), (0, 0), (0, 1), (-5, 10), (0, 10))


def child(db: str, n: int, backend: str, repeat: int) -> None:
    import resource

    from impact.engine import market_model_committed, market_model_sql
    from impact.storage import transaction

    con = duckdb.connect(db)
    con.execute(f"CREATE OR REPLACE TABLE bench_pairs AS SELECT * FROM pairs WHERE pair_id < {n}")
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        steps: dict[str, float] = {}
        if backend == "sql":
            with transaction(con):
                market_model_sql(con, returns_table="returns", pairs_table="bench_pairs",
                                 estimation=EST, event=EVW, car_windows=WINDOWS)
        else:  # committed as `impact engine` commits, without its closing checkpoint
            steps = market_model_committed(
                con, checkpoint=False, returns_table="returns", pairs_table="bench_pairs",
                estimation=EST, event=EVW, car_windows=WINDOWS,
                tests=os.environ.get("IMPACT_BENCH_TESTS", "1") == "1").seconds
        runs.append({"seconds": time.perf_counter() - t0, "steps": steps})
    counts = con.execute("SELECT (SELECT count(*) FROM engine_fits), "
                         "(SELECT count(*) FROM engine_ar), (SELECT count(*) FROM engine_car), "
                         "(SELECT count(*) FROM engine_fits WHERE status = 'ok')").fetchone()
    n_tests = 0
    if backend != "sql" and con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'engine_tests'"
    ).fetchone() != (0,):
        n_tests = (con.execute("SELECT count(*) FROM engine_tests").fetchone() or (0,))[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "runs": runs, "maxrss_mb": rss, "counts": counts,
                      "tests": n_tests}))


def warmup(db: str) -> None:
    """A first engine call in this new process (compiles or loads the kernels)."""
    from impact.engine import market_model

    con = duckdb.connect(db)
    con.execute("CREATE OR REPLACE TEMP TABLE warm_pairs AS SELECT * FROM pairs "
                "WHERE pair_id < 1000")
    t0 = time.perf_counter()
    con.execute("BEGIN")
    market_model(con, returns_table="returns", pairs_table="warm_pairs", estimation=EST,
                 event=EVW, car_windows=WINDOWS)
    con.execute("ROLLBACK")
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def statsmodels_loop(db: str, n_pairs: int, sample: int, seed: int = 1) -> tuple[float, int]:
    """Seconds per pair of a per-pair loop (DuckDB read + statsmodels OLS + ARs + CARs)."""
    import statsmodels.api as sm

    con = duckdb.connect(db, read_only=True)
    ids = np.random.default_rng(seed).choice(n_pairs, sample, replace=False)
    done = 0
    t0 = time.perf_counter()
    for pid in ids:
        ticker, d0 = con.execute("SELECT ticker, day0_idx FROM pairs WHERE pair_id = ?",
                                 [int(pid)]).fetchone() or ("", 0)
        rows = con.execute(
            "SELECT session_idx - ? AS rel, ret, mkt FROM returns WHERE ticker = ? "
            "AND session_idx BETWEEN ? AND ? ORDER BY session_idx",
            [d0, ticker, d0 + EST[0], d0 + EVW[1]]).fetchnumpy()
        rel = rows["rel"]
        ret = np.asarray(rows["ret"], dtype=float)
        mkt = np.asarray(rows["mkt"], dtype=float)
        use = (rel <= EST[1]) & np.isfinite(ret) & np.isfinite(mkt)
        if use.sum() < 4:
            continue
        res = sm.OLS(ret[use], sm.add_constant(mkt[use])).fit()
        ev = rel >= EVW[0]
        x = sm.add_constant(np.nan_to_num(mkt[ev]), has_constant="add")
        ar = ret[ev] - x @ res.params
        cov = res.scale * np.eye(len(ar)) + x @ res.cov_params() @ x.T
        for a, b in WINDOWS:
            sel = (rel[ev] >= a) & (rel[ev] <= b)
            if sel.sum() == b - a + 1:
                _car = ar[sel].sum()
                _var = cov[np.ix_(sel, sel)].sum()
        done += 1
    return (time.perf_counter() - t0) / max(done, 1), done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--db", help="reuse (or create) this panel database")
    ap.add_argument("--securities", type=int, default=3000)
    ap.add_argument("--backend", choices=("dense", "sql"), default="dense")
    ap.add_argument("--repeat", type=int, default=2,
                    help="runs per size in one process: the first is cold, the rest warm")
    ap.add_argument("--sample", type=int, default=200, help="pairs in the statsmodels loop")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--warmup", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.warmup:
        warmup(a.warmup)
        return
    if a.child:
        child(a.child[0], int(a.child[1]), a.child[2], int(a.child[3]))
        return
    sizes = [10_000, 100_000] if a.quick else [int(s) for s in a.sizes.split(",")]
    securities = 500 if a.quick else a.securities
    db = a.db or os.path.join(tempfile.mkdtemp(prefix="impact-engine-"), "panel.duckdb")
    if not os.path.exists(db):
        t0 = time.perf_counter()
        info = build_panel(db, securities=securities, years=10, pairs=max(sizes))
        print(f"panel: {info} in {time.perf_counter() - t0:.1f} s -> {db}")
    with duckdb.connect(db, read_only=True) as con:
        rows, n_pairs = con.execute("SELECT (SELECT count(*) FROM returns), "
                                    "(SELECT count(*) FROM pairs)").fetchone() or (0, 0)
    print(f"returns rows: {rows:,}; pairs available: {n_pairs:,}; cores: {os.cpu_count()}")
    out = subprocess.run([sys.executable, __file__, "--warmup", db], check=True,
                         capture_output=True, text=True).stdout
    first = json.loads(out.strip().splitlines()[-1])["seconds"]
    print(f"first engine call in a new process (1,000 pairs; numba compiles the kernels "
          f"if its cache is absent or stale, else loads it): {first:.2f} s")
    results = {}
    for n in sizes:
        if n > n_pairs:
            print(f"skip {n:,}: only {n_pairs:,} pairs in {db}")
            continue
        out = subprocess.run([sys.executable, __file__, "--child", db, str(n), a.backend,
                              str(a.repeat)], check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        cold = r["runs"][0]["seconds"]
        warm = min(x["seconds"] for x in r["runs"][1:]) if len(r["runs"]) > 1 else cold
        r["seconds"], r["cold"] = warm, cold
        results[n] = r
        print(f"{n:>9,} pairs: cold {cold:6.2f} s ({n / cold:>9,.0f} pairs/s)  warm {warm:6.2f} s "
              f"({n / warm:>9,.0f} pairs/s)  peak RSS {r['maxrss_mb']:,.0f} MB  "
              f"(rows: fits, ARs, CARs {r['counts'][:3]}, tests {r['tests']:,}; "
              f"ok fits {r['counts'][3]:,})")
        best = min(r["runs"][1:] or r["runs"], key=lambda x: x["seconds"])
        for label, run in (("cold", r["runs"][0]), ("warm", best)):
            if run["steps"]:
                print(f"           {label} steps: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in run["steps"].items()))
    if 100_000 in results and 1_000_000 in results:
        for key in ("cold", "seconds"):
            ratio = results[1_000_000][key] / results[100_000][key]
            print(f"time ratio 10^6 / 10^5 pairs ({'cold' if key == 'cold' else 'warm'}): "
                  f"{ratio:.2f} (10 = linear)")
    per_pair, done = statsmodels_loop(db, n_pairs, a.sample)
    print(f"per-pair statsmodels loop: {done} pairs, {per_pair * 1e3:.2f} ms/pair, "
          f"{1 / per_pair:,.0f} pairs/s")
    for n, r in results.items():
        print(f"speed-up over the loop at {n:,} pairs: cold {n / r['cold'] * per_pair:,.0f}x, "
              f"warm {n / r['seconds'] * per_pair:,.0f}x")


if __name__ == "__main__":
    main()
