"""``impact backtest``: a strategy file against a study's events, prices and calendars.

The study is computed in memory (the same code as ``impact run``), so the
signals (e.g. Nvidia's day-0 abnormal return) and the day-0 closes that say
when each signal was known come from the study itself. The engine
(:mod:`impact.backtest`) places every entry strictly after the news and the
signal are public on the traded security's own exchange. Results and the report
are written in one transaction; a bad strategy fails before anything is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from impact import __version__
from impact.backtest import BacktestResult, Candidate, run_backtest
from impact.calendars import Sessions, sessions
from impact.catalog import Event
from impact.errors import DataError, InputError
from impact.storage import connect, fetch_one, transaction
from impact.strategy import Strategy, load_strategy

#: When an FX series' daily value is fixed (FRED DEXKOUS: the New York noon rate).
FX_FIXING = (time(12, 0), "America/New_York")


@dataclass
class BacktestOutcome:
    """What :func:`backtest` did."""

    backtest_id: int
    strategy: Strategy
    result: BacktestResult
    report: Path | None


def _select_events(strategy: Strategy, events: tuple[Event, ...]) -> list[Event]:
    known = {e.event_id: e for e in events}
    for eid in strategy.events:
        if eid not in known:
            raise InputError(f"{strategy.path}: event '{eid}' is not in the study "
                             f"{strategy.study.name} (fix events = [...] in [strategy])")
    chosen = [known[e] for e in strategy.events]
    chosen += [e for e in events if e.category in strategy.categories and e not in chosen]
    return sorted(chosen, key=lambda e: e.ts)


def prepare(strategy: Strategy, *, source: str | None = None, prices_dir: str | Path | None = None,
            progress: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Compute the study and build the engine's inputs (no writing)."""
    from impact.api import EventStudy

    say = progress or (lambda _m: None)
    es = EventStudy(strategy.study, source=source, prices_dir=prices_dir)
    study = es.study
    tickers = list(strategy.securities) or [s.ticker for s in study.securities]
    for t in tickers:
        if t not in study.all_tickers:
            raise InputError(
                f"{strategy.path}: security '{t}' has no prices here: it is not a security or "
                f"benchmark of the study {study.name} ({', '.join(study.all_tickers)})")
    if strategy.signal and strategy.signal.ticker not in study.all_tickers:
        raise InputError(f"{strategy.path}: signal ticker '{strategy.signal.ticker}' is not in "
                         f"the study {study.name}")
    say(f"computing the study {study.name}")
    run = es.fit(progress=say).run
    events = _select_events(strategy, run.study.events)
    align = {(r["event_id"], r["exchange"]): r for r in run.alignments.iter_rows(named=True)}
    ars = run.abnormal_returns
    candidates = []
    for ev in events:
        for t in tickers:
            inst = study.instrument(t)
            sig_value = sig_known = None
            if strategy.signal is not None:
                s = strategy.signal
                sig_event = s.event or ev.event_id
                row = ars.filter((pl.col("event_id") == sig_event) & (pl.col("ticker") == s.ticker)
                                 & (pl.col("model") == s.model) & (pl.col("rel_day") == 0))
                if row.height:
                    sig_value = row[s.field][0]
                sig_ex = study.instrument(s.ticker).exchange
                a = align.get((sig_event, sig_ex))
                if a is not None:
                    sig_known = a["day0_close"].replace(tzinfo=UTC)
            candidates.append(Candidate(event_id=ev.event_id, ticker=t, exchange=inst.exchange,
                                        currency=inst.currency, news_ts=ev.ts,
                                        signal=sig_value, signal_known_at=sig_known))
    start: date = cast(date, run.prices["date"].min())
    end: date = cast(date, run.prices["date"].max())
    sess_of: dict[str, Sessions] = {}
    prices: dict[str, pl.DataFrame] = {}
    bench = strategy.benchmark or study.instrument(tickers[0]).benchmark or tickers[0]
    for t in {*tickers, bench}:
        sess_of[t] = sessions(study.instrument(t).exchange, start, end)
        prices[t] = run.prices.filter(pl.col("ticker") == t).select("date", "open", "close")
    fx = None
    foreign = {study.instrument(t).currency for t in tickers} - {strategy.rules.currency}
    if foreign:
        if strategy.fx is None:
            raise InputError(f"{strategy.path}: the securities trade in {', '.join(foreign)} "
                             f"and the reporting currency is {strategy.rules.currency}: add fx = "
                             f"\"USDKRW\" (a series of {', '.join(foreign)} per "
                             f"{strategy.rules.currency})")
        data = es.source.fetch([strategy.fx], start, end)
        zone = ZoneInfo(FX_FIXING[1])
        fx = data.prices.filter(pl.col("close").is_not_null()).select(
            "date", pl.col("close").alias("rate")).with_columns(
            pl.col("date").map_elements(
                lambda d: datetime.combine(d, FX_FIXING[0], tzinfo=zone).astimezone(UTC)
                .replace(tzinfo=None), return_dtype=pl.Datetime("us")).alias("fixing_utc"))
    inputs = {"candidates": candidates, "sessions_of": sess_of, "prices": prices, "fx": fx,
              "benchmark": (bench, sess_of[bench], prices[bench]), "run": run}
    return es, inputs


def backtest(path: str | Path, *, db: str | Path, source: str | None = None,
             prices_dir: str | Path | None = None, reports_dir: str | Path | None = "reports",
             progress: Callable[[str], None] | None = None) -> BacktestOutcome:
    """Run a strategy file and store the backtest (see the module docstring).

    Raises
    ------
    impact.errors.ImpactError
        Invalid strategy or data; nothing is written.
    """
    strategy = load_strategy(path)
    _es, inp = prepare(strategy, source=source, prices_dir=prices_dir, progress=progress)
    result = run_backtest(strategy.rules, inp["candidates"], sessions_of=inp["sessions_of"],
                          prices=inp["prices"], fx=inp["fx"], benchmark=inp["benchmark"])
    if not result.trades and not result.skipped:
        raise DataError(f"{strategy.path}: no event and security to trade")
    db_path = Path(db)
    existed = db_path.exists()
    con = connect(db_path)
    try:
        report = _write(con, strategy, result, inp["run"].price_source, reports_dir)
    except BaseException:
        con.close()
        if not existed:
            for p in (db_path, db_path.with_name(db_path.name + ".wal")):
                p.unlink(missing_ok=True)
        raise
    backtest_id = report[0]
    con.close()
    return BacktestOutcome(backtest_id=backtest_id, strategy=strategy, result=result,
                           report=report[1])


def _write(con: duckdb.DuckDBPyConnection, strategy: Strategy, result: BacktestResult,
           price_source: str, reports_dir: str | Path | None) -> tuple[int, Path | None]:
    from impact.report import StagedReport

    staged: StagedReport | None = None
    with transaction(con):
        row = fetch_one(con, "SELECT coalesce(max(backtest_id), 0) + 1 FROM backtest_runs")
        bid = int(row[0]) if row else 1
        params: dict[str, Any] = dataclasses.asdict(strategy.rules)
        params |= {k: getattr(strategy, k) for k in (
            "benchmark", "fx", "events", "categories", "securities")}
        if strategy.signal is not None:
            params["signal"] = strategy.signal.__dict__
        con.execute("INSERT INTO backtest_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            bid, datetime.now(UTC).replace(tzinfo=None), strategy.name, str(strategy.path),
            strategy.study.stem, json.dumps(params, default=str),
            json.dumps(result.stats, default=str), price_source, __version__])
        n = 0
        for t in result.trades:
            n += 1
            con.execute("INSERT INTO backtest_trades VALUES (?, ?, ?, ?, 'taken', NULL, ?, ?, ?, "
                        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                            bid, n, t.event_id, t.ticker, t.direction, t.allowed_at,
                            t.entry_date, t.entry_time, t.entry_price, t.exit_date, t.exit_time,
                            t.exit_price, t.exit_reason, t.sessions_held, t.notional,
                            t.fx_entry, t.fx_exit, t.gross_return, t.cost, t.pnl,
                            t.net_return])
        for s in result.skipped:
            n += 1
            con.execute("INSERT INTO backtest_trades (backtest_id, trade_no, event_id, ticker, "
                        "status, reason) VALUES (?, ?, ?, ?, 'skipped', ?)",
                        [bid, n, s.event_id, s.ticker, s.reason])
        if result.equity.height:
            eq = result.equity.select("date", "equity", "benchmark_equity").with_columns(
                pl.lit(bid).alias("backtest_id"))
            con.register("_eq", eq)
            con.execute("INSERT INTO backtest_equity (backtest_id, date, equity, "
                        "benchmark_equity) SELECT backtest_id, date, equity, benchmark_equity "
                        "FROM _eq")
            con.unregister("_eq")
        if reports_dir is not None:
            staged = stage_backtest_report(con, bid, Path(reports_dir) / strategy.name)
    return bid, staged.commit().markdown if staged is not None else None


def stage_backtest_report(con: duckdb.DuckDBPyConnection, backtest_id: int, out: Path) -> Any:
    """Render a stored backtest to a staged folder (moved into place after COMMIT)."""
    import shutil
    import tempfile

    from impact import plots
    from impact.report import StagedReport, _md, _num, _pct, _table, to_html

    run = con.execute("SELECT strategy, strategy_file, study, params, stats, price_source "
                      "FROM backtest_runs WHERE backtest_id = ?", [backtest_id]).fetchall()
    if not run:
        raise DataError(f"there is no backtest {backtest_id}")
    name, file, study, params_s, stats_s, src = run[0]
    params, stats = json.loads(params_s), json.loads(stats_s)
    trades = con.sql(f"SELECT * FROM backtest_trades WHERE backtest_id = {int(backtest_id)} "
                     "ORDER BY trade_no").pl()
    equity = con.sql(f"SELECT * FROM backtest_equity WHERE backtest_id = {int(backtest_id)} "
                     "ORDER BY date").pl()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (tmp / "figures").mkdir()
        lines = [f"# Backtest: {_md(name)}", "",
                 f"Strategy `{_md(file)}` on the study `{_md(study)}`: direction "
                 f"{params['direction']}, entry at the first {params['entry']} strictly after "
                 f"the news (and the signal) are public on the security's own exchange, "
                 f"{params['holding']} session(s)"
                 + (f", stop {params['stop']:.0%}" if params.get("stop") else "")
                 + f", costs {params['cost_bps']:g} bp per side, {params['sizing']} sizing, "
                 f"in {params['currency']}. Prices: `{_md(src)}`.", ""]

        def fmt(k: str, v: Any) -> str:
            if v is None:
                return "n/a"
            if k in ("n_trades", "n_skipped"):
                return str(int(v))
            if k in ("sharpe", "mean_trade_t"):
                return _num(v)
            if k in ("volatility", "hit_rate"):
                return f"{v * 100:.2f}%"
            return _pct(v)

        lines += ["## Results", ""]
        lines += _table(["measure", "value"], [[k.replace("_", " "), fmt(k, v)]
                                               for k, v in stats.items()])
        taken = trades.filter(pl.col("status") == "taken")
        lines += ["## Trades", ""]
        rows = [[_md(r["event_id"]), r["ticker"], "long" if r["direction"] > 0 else "short",
                 f"{r['allowed_at']:%Y-%m-%d %H:%M}", f"{r['entry_date']} {r['entry_time']:%H:%M}",
                 f"{r['entry_price']:,.2f}", f"{r['exit_date']} {r['exit_time']:%H:%M}",
                 f"{r['exit_price']:,.2f}", r["exit_reason"], _pct(r["gross_return"]),
                 f"{r['cost']:,.2f}", f"{r['pnl']:,.2f}", _pct(r["net_return"])]
                for r in taken.iter_rows(named=True)]
        lines += _table(["event", "security", "side", "allowed from (UTC)", "entry (UTC)",
                         "entry price", "exit (UTC)", "exit price", "exit", "gross",
                         f"cost ({params['currency']})", f"P&L ({params['currency']})",
                         "net"], rows)
        skipped = trades.filter(pl.col("status") == "skipped")
        lines += ["## Skipped", "", f"{skipped.height} candidate(s) skipped.", ""]
        if skipped.height:
            lines += _table(["event", "security", "reason"],
                            [[_md(r["event_id"]), r["ticker"], _md(r["reason"] or "")]
                             for r in skipped.iter_rows(named=True)])
        if equity.height:
            ax = plots.plot_equity(equity.select("date", "equity", "benchmark_equity"),
                                   title=f"Equity: {name}")
            plots.save(ax, str(tmp / "figures" / "equity.png"))
            lines += ["## Equity", "", "![Equity against buy-and-hold](figures/equity.png)", "",
                      "Capital plus realized P&L against the same capital held in the "
                      f"benchmark ({_md(str(params.get('benchmark') or 'the first security'))}"
                      ").", ""]
        text = "\n".join(lines)
        (tmp / "backtest.md").write_text(text, encoding="utf-8")
        (tmp / "backtest.html").write_text(to_html(text, tmp, f"Backtest: {name}"),
                                           encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StagedReport(tmp, out, ("equity.png",) if equity.height else (),
                        markdown_name="backtest.md")
