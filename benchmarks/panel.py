"""Synthetic panels for the set-based engine's benchmark, written into DuckDB.

N securities (default 3,000), half on XNYS and half on XKRX, over Y years of each exchange's real
sessions (``impact.calendars.sessions``). One market factor per exchange (daily sd
1%, drift 0.04%); each security follows a market model with beta ~ U(0.5, 1.5),
alpha ~ N(0, 0.03%) and idiosyncratic sd ~ U(1%, 3%) (about 2%), Student t(4)
residuals when ``fat_tails``. A fraction of security prices (``missing``) and a
tenth of that of benchmark returns are NULL. Events: random dates, each
with ``per_event`` securities drawn from both exchanges (day 0 is the security's
first session on or after the date), so early events have short histories and late
ones windows past the data's end.

Tables: ``returns(ticker, session_idx, date, ret, mkt)`` and
``pairs(pair_id, event_id, ticker, day0_idx)``, the engine's input layout.

    .venv/bin/python benchmarks/panel.py panel.duckdb --securities 500 --pairs 100000
"""

from __future__ import annotations

import argparse
import os
from datetime import date

import duckdb
import numpy as np
import pandas as pd

from impact.calendars import sessions
from impact.storage import STORAGE_COMPATIBILITY


def build_panel(path: str, *, securities: int = 3000, years: int = 10, pairs: int = 100_000,
                per_event: int = 100,
                missing: float = 0.02, fat_tails: bool = True, seed: int = 0) -> dict[str, int]:
    """Write a panel and a pairs table into the DuckDB database at ``path``."""
    rng = np.random.default_rng(seed)
    end = date(2024, 12, 31)
    start = date(end.year - years, 1, 1)
    # a new file in the storage format of impact's own files, so that the 1.x duckdb
    # command-line client (the dev tools' duckdb-cli) opens it too
    new = not os.path.exists(path)
    con = duckdb.connect(path, config={"storage_compatibility_version": STORAGE_COMPATIBILITY}
                         if new else {})
    con.execute("DROP TABLE IF EXISTS returns")
    con.execute("DROP TABLE IF EXISTS pairs")
    created = False
    n_rows = 0
    spans: list[tuple[str, int]] = []
    for ex_i, exchange in enumerate(("XNYS", "XKRX")):
        sess = sessions(exchange, start, end)
        n_s = len(sess)
        dates = np.array(sess.dates, dtype="datetime64[D]")
        market = rng.normal(0.0004, 0.01, n_s)
        n_sec = securities // 2 + (securities % 2 if ex_i == 0 else 0)
        beta = rng.uniform(0.5, 1.5, n_sec)
        alpha = rng.normal(0.0, 0.0003, n_sec)
        vol = rng.uniform(0.01, 0.03, n_sec)
        # in chunks of securities to bound memory
        chunk = max(1, 4_000_000 // n_s)
        for c0 in range(0, n_sec, chunk):
            c1 = min(n_sec, c0 + chunk)
            k = c1 - c0
            if fat_tails:
                eps = rng.standard_t(4, (k, n_s)) / np.sqrt(2.0)  # t(4) has variance 2
            else:
                eps = rng.standard_normal((k, n_s))
            ret = alpha[c0:c1, None] + beta[c0:c1, None] * market[None, :] \
                + vol[c0:c1, None] * eps
            ret[rng.random((k, n_s)) < missing] = np.nan
            mkt = np.broadcast_to(market, (k, n_s)).copy()
            mkt[rng.random((k, n_s)) < missing / 10] = np.nan
            tickers = np.array([f"{exchange[1:]}{i:05d}" for i in range(c0, c1)])
            df = pd.DataFrame({
                "ticker": np.repeat(tickers, n_s),
                "session_idx": np.tile(np.arange(n_s, dtype=np.int32), k),
                "date": np.tile(dates, k),
                "ret": ret.ravel(),
                "mkt": mkt.ravel(),
            })
            con.register("chunk_df", df)
            if not created:
                con.execute("CREATE TABLE returns AS SELECT * FROM chunk_df")
                created = True
            else:
                con.execute("INSERT INTO returns SELECT * FROM chunk_df")
            con.unregister("chunk_df")
            n_rows += len(df)
            spans += [(str(t), n_s) for t in tickers]
    # events: a date (uniform over the calendar) and `per_event` securities drawn
    # from both exchanges; day 0 is each security's first session on or after it
    names = np.array([t for t, _ in spans])
    exch = np.array([0 if t.startswith("NYS") else 1 for t in names])
    cal = {i: np.array(sessions(ex, start, end).dates, dtype="datetime64[D]")
           for i, ex in enumerate(("XNYS", "XKRX"))}
    n_events = max(1, pairs // per_event)
    first = np.datetime64(start, "D")
    span_days = int((np.datetime64(end, "D") - first).astype(int))
    ev_dates = first + rng.integers(0, span_days, n_events).astype("timedelta64[D]")
    ev_of = np.repeat(np.arange(n_events), per_event)[:pairs]
    pick = np.concatenate([rng.choice(len(names), per_event, replace=False)
                           for _ in range(n_events)])[:pairs]
    day0 = np.empty(pairs, dtype=np.int32)
    for i in (0, 1):
        sel = exch[pick] == i
        day0[sel] = np.searchsorted(cal[i], ev_dates[ev_of[sel]])
    pdf = pd.DataFrame({"pair_id": np.arange(pairs, dtype=np.int64),
                        "event_id": ev_of.astype(np.int64), "ticker": names[pick],
                        "day0_idx": day0})
    con.register("pairs_df", pdf)
    con.execute("CREATE TABLE pairs AS SELECT * FROM pairs_df")
    con.execute("COMMENT ON TABLE returns IS 'benchmarks/panel.py: synthetic daily returns, "
                "one row per security and session (the input layout of impact engine, "
                "docs/engine.md)'")
    con.execute("COMMENT ON TABLE pairs IS 'benchmarks/panel.py: synthetic event-security "
                "pairs; the pairs sharing an event_id are one event'")
    con.close()
    return {"rows": n_rows, "securities": securities, "pairs": pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path")
    ap.add_argument("--securities", type=int, default=3000)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=100_000)
    ap.add_argument("--per-event", type=int, default=100, help="securities per event")
    ap.add_argument("--missing", type=float, default=0.02)
    ap.add_argument("--normal", action="store_true", help="normal instead of t(4) residuals")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    info = build_panel(a.path, securities=a.securities, years=a.years, pairs=a.pairs,
                       per_event=a.per_event,
                       missing=a.missing, fat_tails=not a.normal, seed=a.seed)
    print(info)


if __name__ == "__main__":
    main()
