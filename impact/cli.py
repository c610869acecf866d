"""The ``impact`` command: thin click commands over :mod:`impact.api`.

Each command parses its arguments, calls one API function and formats the
result. stdout carries results; notes, progress and errors go to stderr. An
:class:`~impact.errors.ImpactError` becomes one line ``error: ...`` and the exit
code of its class (see the README); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from impact import __version__, api
from impact.engine import STEPS as _ENGINE_STEPS
from impact.errors import ImpactError

F = TypeVar("F", bound=Callable[..., Any])


def _handle_errors(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ImpactError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(int(exc.exit_code))

    return wrapper  # type: ignore[return-value]


def _progress(message: str) -> None:
    click.echo(f"... {message}", err=True)


db_option = click.option(
    "--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
    help="DuckDB file to write to (created if missing).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="impact")
def main() -> None:
    """Measure how news moves prices across markets and time zones.

    An event study from a study file (events with time zones, securities with
    their exchanges and benchmarks) to a DuckDB database and a report.
    """


@main.command("run")
@click.argument("study", type=click.Path(dir_okay=False))
@db_option
@click.option("--source", type=click.Choice(["auto", "snapshot", "yahoo"]), default=None,
              help="Price source; default: the study file's (auto: a snapshot directory when "
                   "it exists, else Yahoo Finance).")
@click.option("--prices-dir", type=click.Path(file_okay=False), default=None,
              help="Snapshot directory of price CSV files (overrides the study file and "
                   "IMPACT_PRICES_DIR).")
@click.option("--reports-dir", default=api.DEFAULT_REPORTS, show_default=True,
              type=click.Path(file_okay=False),
              help="Folder for reports; the report goes to <reports-dir>/<study>/report.md.")
@click.option("--no-report", is_flag=True, help="Store the run without writing a report.")
@_handle_errors
def run_cmd(study: str, db: str, source: str | None, prices_dir: str | None, reports_dir: str,
            no_report: bool) -> None:
    """Run the event study in STUDY (e.g. events/deepseek.toml).

    Validates the study file, loads prices, maps every event to day 0 on each
    exchange, fits the models, tests the abnormal returns, adds a run to the
    database and writes the report. On any error the database is left as it was.
    """
    outcome = api.run(
        study, db=db, source=source, prices_dir=prices_dir,
        reports_dir=None if no_report else reports_dir,
        command="impact " + shlex.join(sys.argv[1:]) if sys.argv[1:] else None,
        progress=_progress,
    )
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"run {outcome.run_id} of study '{outcome.study.name}' stored in {outcome.db} "
               f"(prices: {outcome.price_source}; {outcome.prices_written} price rows new or "
               f"changed)")
    if outcome.report is not None:
        click.echo(f"report: {outcome.report.markdown}")
        if outcome.report.html is not None:
            click.echo(f"report: {outcome.report.html}")


@main.command("validate")
@click.argument("study", type=click.Path(dir_okay=False))
@_handle_errors
def validate_cmd(study: str) -> None:
    """Check a study file without loading prices: keys, time zones, tickers, windows."""
    s = api.validate(study)
    click.echo(f"{study}: ok: {len(s.events)} events, {len(s.securities)} securities, "
               f"{len(s.benchmarks)} benchmarks, studied events: {', '.join(s.study_events)}")


@main.command("day0")
@click.argument("study", type=click.Path(dir_okay=False))
@_handle_errors
def day0_cmd(study: str) -> None:
    """Print day 0 of every event of STUDY on each exchange (no prices needed)."""
    rows = api.day0_table(study)
    exchanges = sorted({ex for r in rows for ex in r.day0})
    click.echo("\t".join(["event_id", "time (local)", *exchanges]))
    for r in rows:
        click.echo("\t".join([r.event_id, r.ts_local, *[str(r.day0[ex]) for ex in exchanges]]))


@main.command("report")
@click.argument("target")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to read (opened read-only).")
@click.option("--format", "formats", default="md,html", show_default=True,
              help="Comma-separated formats: md, html.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder (default: <reports-dir>/<study>).")
@click.option("--reports-dir", default=api.DEFAULT_REPORTS, show_default=True,
              type=click.Path(file_okay=False), help="Parent folder when --out is not given.")
@_handle_errors
def report_cmd(target: str, db: str, formats: str, out: str | None, reports_dir: str) -> None:
    """Render the report of a stored run from the database (no recomputation).

    TARGET is a run id or a study name (its latest run). Writes report.md, a
    self-contained report.html and the figures (PNG and SVG). An unknown run or a
    run without results writes nothing and exits non-zero.
    """
    if not Path(db).exists():
        raise click.ClickException(f"no database at {db}: run 'impact run STUDY' first")
    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    files = api.report(target, db=db, out=out, reports_dir=reports_dir, formats=fmts)
    if "md" in fmts:
        click.echo(f"report: {files.markdown}")
    if files.html is not None:
        click.echo(f"report: {files.html}")


@main.command("sql")
@click.argument("query", required=False)
@click.option("-f", "--file", "sql_file", type=click.Path(exists=True, dir_okay=False),
              help="Read the query from a .sql file instead of the argument.")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to read (opened read-only).")
@click.option("--csv", "fmt", flag_value="csv", help="Print CSV.")
@click.option("--json", "fmt", flag_value="json", help="Print JSON (a list of row objects).")
@click.option("--parquet", "parquet", type=click.Path(dir_okay=False), default=None,
              help="Write the result to a Parquet file instead of printing it.")
@_handle_errors
def sql_cmd(query: str | None, sql_file: str | None, db: str, fmt: str | None,
            parquet: str | None) -> None:
    """Run a read-only SQL QUERY on the database and print the result.

    Only reads run (SELECT, EXPLAIN, PRAGMA, CALL): DELETE, DROP, ATTACH, COPY and
    other writes are refused before anything runs. Example:
    impact sql "SELECT * FROM day0 WHERE event_id = 'deepseek-app-store'"
    """
    if (query is None) == (sql_file is None):
        raise click.UsageError("give a QUERY or -f FILE (one of them)")
    text = query if query is not None else Path(str(sql_file)).read_text(encoding="utf-8")
    frame = api.sql(text, db=db)
    if parquet:
        frame.write_parquet(parquet)
        click.echo(f"{frame.height} rows written to {parquet}", err=True)
    elif fmt == "csv":
        from impact.query import flat

        click.echo(flat(frame).write_csv(), nl=False)
    elif fmt == "json":
        click.echo(frame.write_json())
    else:
        from impact.query import format_table

        click.echo(format_table(frame))


@main.command("tables")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to read.")
@_handle_errors
def tables_cmd(db: str) -> None:
    """List the database's tables and views with row counts, and its table macros."""
    rows = api.tables(db=db)
    width = max(len(r.name) for r in rows)
    for r in rows:
        count = "" if r.rows is None else str(r.rows)
        click.echo(f"{r.name:<{width}}  {r.kind:<5}  {count:>7}  {r.comment}")


@main.command("schema")
def schema_cmd() -> None:
    """Print the database schema with every comment (the text of docs/schema.md)."""
    click.echo(api.schema_text())


@main.command("migrate")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to upgrade in place.")
@_handle_errors
def migrate_cmd(db: str) -> None:
    """Upgrade an older database to the current schema, in place, one step per transaction."""
    version, applied = api.migrate(db=db)
    if applied:
        click.echo(f"{db}: upgraded to schema version {version} "
                   f"(steps {', '.join(map(str, applied))})")
    else:
        click.echo(f"{db}: already at schema version {version}")


def _window(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give two integers START,END, e.g. -250,-11"
                                 ) from None
    return a, b


@main.command("engine")
@click.option("--db", required=True, type=click.Path(dir_okay=False),
              help="DuckDB file holding the returns and pairs tables; the results are "
                   "written there (engine_fits, engine_ar, engine_car, engine_tests).")
@click.option("--returns", "returns_table", default="returns", show_default=True,
              help="Returns table: ticker, session_idx, ret, mkt.")
@click.option("--pairs", "pairs_table", default="pairs", show_default=True,
              help="Pairs table: pair_id, ticker, day0_idx and (for the tests) event_id.")
@click.option("--estimation", default="-250,-11", show_default=True,
              help="Estimation window START,END in sessions relative to day 0.")
@click.option("--event", "event_window", default="-5,10", show_default=True,
              help="Event window START,END.")
@click.option("--car", "cars", multiple=True,
              help="A CAR window START,END (repeat; default -1,1 0,0 0,1 -5,10 0,10).")
@click.option("--exclusions", "exclusions_table", default=None,
              help="Table of estimation-window sessions to leave out per pair: pair_id, "
                   "rel_lo, rel_hi (relative days, both ends included), e.g. the windows "
                   "of other events of the same security.")
@click.option("--no-tests", is_flag=True, help="Skip the per-event test battery.")
@_handle_errors
def engine_cmd(db: str, returns_table: str, pairs_table: str, estimation: str,
               event_window: str, cars: tuple[str, ...], exclusions_table: str | None,
               no_tests: bool) -> None:
    """Whole-market market-model event study on every pair at once (set-based).

    Fits, abnormal returns, CARs with forecast-error-corrected variances and the
    per-event cross-sectional tests for all pairs of the pairs table, written in one
    transaction: Ctrl-C leaves the database as it was. Progress goes to stderr.
    """
    windows = [_window(c) for c in cars] or [(-1, 1), (0, 0), (0, 1), (-5, 10), (0, 10)]
    est, evw = _window(estimation), _window(event_window)
    bar = click.progressbar(length=len(_ENGINE_STEPS), label="engine", file=sys.stderr,
                            show_pos=True, item_show_func=lambda s: s)
    t0 = time.perf_counter()
    try:
        with bar:
            def tick(step: str, done: int, total: int) -> None:
                bar.update(done - bar.pos, step)

            out = api.engine(db, returns=returns_table, pairs=pairs_table,
                             estimation=est, event=evw,
                             car_windows=windows, tests=not no_tests,
                             exclusions=exclusions_table, progress=tick)
    except KeyboardInterrupt:
        click.echo("interrupted: the transaction was rolled back, nothing was written",
                   err=True)
        sys.exit(130)
    dt = time.perf_counter() - t0
    click.echo(f"{out.pairs:,} pairs ({out.ok:,} fitted) in {dt:.2f} s "
               f"({out.pairs / max(dt, 1e-9):,.0f} pairs/s): engine_fits {out.pairs:,} rows, "
               f"engine_ar {out.ar_rows:,}, engine_car {out.car_rows:,}, "
               f"engine_tests {out.test_rows:,} in {db}")


@main.command("backtest")
@click.argument("strategy", type=click.Path(dir_okay=False))
@db_option
@click.option("--source", type=click.Choice(["auto", "snapshot", "yahoo"]), default=None,
              help="Price source (default: the study file's).")
@click.option("--prices-dir", type=click.Path(file_okay=False), default=None,
              help="Snapshot directory of price CSV files.")
@click.option("--reports-dir", default=api.DEFAULT_REPORTS, show_default=True,
              type=click.Path(file_okay=False),
              help="Folder for reports; the report goes to <reports-dir>/<strategy>/.")
@_handle_errors
def backtest_cmd(strategy: str, db: str, source: str | None, prices_dir: str | None,
                 reports_dir: str) -> None:
    """Backtest STRATEGY (a file under events/strategies/) on its study's events.

    Entries are the first open or close strictly after the news (and any signal)
    is public on the security's own exchange: no look-ahead. Trades, the equity
    curve and the statistics go to the database and to a report.
    """
    out = api.backtest(strategy, db=db, source=source, prices_dir=prices_dir,
                       reports_dir=reports_dir, progress=_progress)
    st = out.result.stats
    click.echo(f"backtest {out.backtest_id} of '{out.strategy.name}': {st['n_trades']} trade(s), "
               f"{st['n_skipped']} skipped; total return "
               + ("n/a" if st["total_return"] is None else f"{st['total_return']:+.2%}"))
    if out.report is not None:
        click.echo(f"report: {out.report}")


@main.group("events")
def events_group() -> None:
    """Ingest news into candidate events, list them, confirm them."""


@events_group.command("ingest")
@click.argument("target")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to write to.")
@click.option("--publisher", default=None, help="Publisher name, when the page does not say.")
@click.option("--tz", "publisher_tz", default=None,
              help="The publisher's default IANA zone for times written without one "
                   "(recorded as assumed), e.g. Asia/Seoul.")
@click.option("--reference-time", default=None,
              help="ISO 8601 time with offset that relative times ('3시간전') count from.")
@_handle_errors
def events_ingest_cmd(target: str, db: str, publisher: str | None, publisher_tz: str | None,
                      reference_time: str | None) -> None:
    """Ingest TARGET: an article (text or HTML file or URL) or an RSS/Atom feed.

    Each article becomes a candidate event with its publication time and the
    securities it names; duplicates (same URL or text) are merged. Articles without
    a stated publication time are stored as needs_timestamp: impact never guesses.
    """
    from datetime import datetime

    ref = None
    if reference_time:
        try:
            ref = datetime.fromisoformat(reference_time)
        except ValueError:
            raise click.BadParameter("use ISO 8601, e.g. 2025-01-30T21:00+09:00",
                                     param_hint="--reference-time") from None
        if ref.tzinfo is None:
            raise click.BadParameter("give an offset, e.g. +09:00", param_hint="--reference-time")
    res = api.ingest(target, db=db, publisher=publisher, publisher_tz=publisher_tz,
                     reference_time=ref)
    for a in res.new:
        flag = " (needs_timestamp: no publication time found)" if a in res.needs_timestamp else ""
        click.echo(f"new: {a}{flag}")
    for a in res.merged:
        click.echo(f"already stored: {a}")
    if res.needs_timestamp:
        click.echo(f"{len(res.needs_timestamp)} article(s) have no publication time: confirm "
                   f"them with impact events confirm ID --time ... --tz ...", err=True)


@events_group.command("list")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to read.")
@_handle_errors
def events_list_cmd(db: str) -> None:
    """List the news events with their status, time and securities."""
    from impact.query import format_table

    click.echo(format_table(api.sql(
        "SELECT event_id, status, strftime(ts, '%Y-%m-%d %H:%M %Z') AS ts, tz, tickers, "
        "title FROM news_events ORDER BY ts NULLS LAST, event_id", db=db)))


@events_group.command("confirm")
@click.argument("event_id")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to write to.")
@click.option("--time", "when", default=None,
              help="Corrected local time, e.g. 2025-01-30T18:22 (with --tz).")
@click.option("--tz", default=None, help="IANA zone of --time (default: the event's).")
@_handle_errors
def events_confirm_cmd(event_id: str, db: str, when: str | None, tz: str | None) -> None:
    """Confirm a candidate news event so that it enters studies."""
    from datetime import datetime

    t = None
    if when:
        try:
            t = datetime.fromisoformat(when)
        except ValueError:
            raise click.BadParameter("use a local ISO time, e.g. 2025-01-30T18:22",
                                     param_hint="--time") from None
        if t.tzinfo is not None:
            raise click.BadParameter("give the local time without an offset, and --tz",
                                     param_hint="--time")
    eid = api.confirm(event_id, db=db, when=t, tz=tz)
    click.echo(f"confirmed: {eid}")


@main.command("update")
@click.option("--config", "config_path", default="events/update.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The update file: studies and feeds.")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False),
              help="DuckDB file to update.")
@_handle_errors
def update_cmd(config_path: str, db: str) -> None:
    """Bring prices, news, runs and reports up to date (for a scheduler).

    Fetches only missing price days, ingests the configured feeds, re-runs each
    study whose inputs changed and re-renders its report. A second run changes
    nothing and says so; a concurrent one exits at once (exit 8). Exit 5 when
    something could not be fetched (nothing stored is lost).
    """
    summary = api.update(config_path, db=db, progress=_progress)
    for s in summary.steps:
        if s.step != "summary":
            click.echo(f"{s.step:<7} {s.target:<40} {s.status:<9} {s.detail}")
    last = summary.steps[-1]
    click.echo(f"update {summary.update_id}: {last.detail}")
    if summary.exit_code:
        sys.exit(summary.exit_code)


@main.command("schedule")
@click.option("--at", "at", default="07:00", show_default=True, help="Local time HH:MM.")
@click.option("--tz", default="Asia/Seoul", show_default=True, help="IANA zone of --at.")
@click.option("--days", type=click.Choice(["weekdays", "daily"]), default="weekdays",
              show_default=True)
@click.option("--config", "config_path", default="events/update.toml", show_default=True,
              help="The update file passed to impact update.")
@click.option("--db", default=api.DEFAULT_DB, show_default=True, help="The database.")
@click.option("--install", "install_dir", type=click.Path(file_okay=False), default=None,
              help="Write the crontab line and the systemd unit files to this folder "
                   "(e.g. ~/.config/systemd/user) instead of only printing them.")
@_handle_errors
def schedule_cmd(at: str, tz: str, days: str, config_path: str, db: str,
                 install_dir: str | None) -> None:
    """Print (or --install) a crontab line and a systemd service and timer for impact update.

    Example: every weekday at 07:00 Asia/Seoul, before KRX opens.
    """
    files = api.schedule(at=at, tz=tz, days=days, config=config_path, db=db)
    if install_dir is None:
        for name, text in files.items():
            click.echo(f"# ---- {name}\n{text}")
        return
    out = Path(install_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / (name if name != "crontab" else "impact-update.crontab")).write_text(text)
    click.echo(f"written to {out}: impact-update.crontab, impact-update.service, "
               f"impact-update.timer")
    click.echo("enable the timer: systemctl --user daemon-reload && systemctl --user enable "
               "--now impact-update.timer   (or: crontab impact-update.crontab)")


if __name__ == "__main__":  # pragma: no cover
    main()
