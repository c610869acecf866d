"""The DuckDB database: a documented, stable interface for SQL users.

Why this module is shaped this way
----------------------------------
The database is part of the product: analysts open ``impact.duckdb`` with the
``duckdb`` CLI and query it. So every table, view and column is declared once,
here, with a comment; the DDL, the ``COMMENT ON`` statements and
``docs/schema.md`` are all generated from :data:`TABLES` and :data:`VIEWS`.
Internal tables start with ``_``; the schema version is in ``_impact_meta``.

A run is written in one transaction, after everything was computed: either all
of it lands or nothing does. Re-running a study adds a run; prices, returns,
events and securities are upserted (a price row is only rewritten when a value
changed), so older runs are never altered or duplicated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from impact import __version__
from impact.errors import DatabaseError

#: Version of the schema written by this code; stored in ``_impact_meta``.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Column:
    """A column: name, SQL type, comment."""

    name: str
    type: str
    comment: str


@dataclass(frozen=True)
class Table:
    """A table: name, comment, columns and primary key."""

    name: str
    comment: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()


def _c(name: str, type_: str, comment: str) -> Column:
    return Column(name, type_, comment)


RUN_ID = _c("run_id", "BIGINT", "The run (runs.run_id).")
EVENT_ID = _c("event_id", "VARCHAR", "The event (events.event_id).")
TICKER = _c("ticker", "VARCHAR", "Yahoo ticker of the security (securities.ticker).")
MODEL = _c("model", "VARCHAR",
           "Expected-return model: market (OLS a + b R_m), constant-mean, market-adjusted.")

TABLES: tuple[Table, ...] = (
    Table("_impact_meta", "Internal: key-value facts about this database (schema_version).", (
        _c("key", "VARCHAR", "Name of the fact."),
        _c("value", "VARCHAR", "Its value."),
    ), ("key",)),
    Table("events", "Every dated fact of each study's event catalog: news, releases, "
          "statements, articles, market moves and closures. Upserted from the study file.", (
        EVENT_ID,
        _c("ts", "TIMESTAMPTZ", "The event's instant (shown in the session's TimeZone; "
           "see ts_local for the local time)."),
        _c("ts_local", "VARCHAR", "The instant as ISO 8601 local time with its UTC offset."),
        _c("tz", "VARCHAR", "IANA time zone of the place of the event."),
        _c("date_only", "BOOLEAN", "True when only the date is known: ts is then 12:00 local "
           "time (the catalog's documented rule)."),
        _c("date_end", "DATE", "Last day of a multi-day event, else NULL."),
        _c("title", "VARCHAR", "What happened."),
        _c("source", "VARCHAR", "The publication or record the event is taken from."),
        _c("category", "VARCHAR", "model-release, news, statement, article, market, "
           "market-closure or confounder."),
        _c("notes", "VARCHAR", "Remarks for the study (may be empty)."),
        _c("url", "VARCHAR", "Link to the source, if any."),
        _c("study", "VARCHAR", "Name of the study file that defines the event."),
    ), ("event_id",)),
    Table("securities", "Securities and benchmark indices with their exchange calendars.", (
        TICKER,
        _c("name", "VARCHAR", "Name in English."),
        _c("name_local", "VARCHAR", "Name in the local language, if given."),
        _c("exchange", "VARCHAR", "exchange_calendars name of the exchange whose sessions "
           "the security trades on (XNYS, XKRX, ...)."),
        _c("currency", "VARCHAR", "Currency of the prices (ISO 4217)."),
        _c("role", "VARCHAR", "security or benchmark."),
        _c("benchmark", "VARCHAR", "Default benchmark ticker of a security; NULL for a "
           "benchmark."),
    ), ("ticker",)),
    Table("prices", "Daily prices as delivered by the source. close is the as-traded "
          "(split-adjusted) close; adj_close the split- and dividend-adjusted close.", (
        TICKER,
        _c("date", "DATE", "Exchange-local trading date."),
        _c("open", "DOUBLE", "Opening price (NULL if the source has none)."),
        _c("high", "DOUBLE", "High."),
        _c("low", "DOUBLE", "Low."),
        _c("close", "DOUBLE", "Close, split-adjusted, not dividend-adjusted."),
        _c("adj_close", "DOUBLE", "Close adjusted for splits and dividends (NULL if the "
           "source has none)."),
        _c("volume", "DOUBLE", "Volume in the source's unit (KOSPI: thousands of shares)."),
        _c("source", "VARCHAR", "Where the row came from: yahoo or snapshot:<directory>."),
        _c("loaded_at", "TIMESTAMP", "When the row was written or last changed (UTC)."),
    ), ("ticker", "date")),
    Table("dividends", "Cash dividends per share, in the currency and share basis of the "
          "prices (split-adjusted).", (
        TICKER,
        _c("ex_date", "DATE", "First session trading without the dividend."),
        _c("amount", "DOUBLE", "Gross cash amount per share."),
        _c("currency", "VARCHAR", "Currency of the amount, if known."),
        _c("source", "VARCHAR", "Where the row came from."),
        _c("loaded_at", "TIMESTAMP", "When the row was written (UTC)."),
    ), ("ticker", "ex_date")),
    Table("returns", "Daily simple returns on each session of the security's own exchange, "
          "with the basis used. A session without a price is a row with basis 'gap' and "
          "ret NULL, never a silent shift.", (
        TICKER,
        _c("date", "DATE", "Session date (exchange-local)."),
        _c("prev_date", "DATE", "The previous session of the same exchange."),
        _c("ret", "DOUBLE", "Return from prev_date's close to date's close, as a decimal "
           "fraction (-0.1697 = -16.97%). NULL at a gap."),
        _c("basis", "VARCHAR", "adj_close, close+dividends (close plus the cash dividend "
           "going ex that day), close, or gap."),
        _c("source", "VARCHAR", "Source of the prices used."),
    ), ("ticker", "date")),
    Table("runs", "One row per execution of a study. Results tables are keyed by run_id; "
          "re-running adds a run and never changes an older one.", (
        RUN_ID,
        _c("created_at", "TIMESTAMP", "When the run was computed (UTC)."),
        _c("study", "VARCHAR", "Study name (study.name in the study file)."),
        _c("study_file", "VARCHAR", "Path of the study file."),
        _c("params", "JSON", "Parameters: events, models, windows, price source, securities "
           "and benchmarks."),
        _c("impact_version", "VARCHAR", "Version of impact that computed the run."),
        _c("price_source", "VARCHAR", "yahoo or snapshot:<directory>."),
        _c("inputs_hash", "VARCHAR", "SHA-256 of the study file and the prices and dividends "
           "used: equal hashes mean equal inputs."),
        _c("notes", "JSON", "Warnings and remarks (list of strings): gaps, excluded sessions."),
        _c("command", "VARCHAR", "The command line that made the run, if any."),
    ), ("run_id",)),
    Table("event_days", "Day 0 of every catalog event on every exchange of the study: the "
          "first session whose close is at or after the event.", (
        RUN_ID, EVENT_ID,
        _c("exchange", "VARCHAR", "exchange_calendars name."),
        _c("event_ts", "TIMESTAMP", "The event's instant in UTC."),
        _c("day0", "DATE", "Day 0 on this exchange."),
        _c("day0_open", "TIMESTAMP", "Day 0's session open, UTC."),
        _c("day0_close", "TIMESTAMP", "Day 0's session close, UTC."),
        _c("hours_to_close", "DOUBLE", "Hours from the event to day 0's close."),
        _c("during_session", "BOOLEAN", "True when the event fell while day 0's session "
           "was open."),
        _c("closed_weekdays", "INTEGER", "Weekdays between the event's local date and day 0 "
           "on which the exchange was closed (holidays)."),
    ), ("run_id", "event_id", "exchange")),
    Table("model_fits", "Expected-return model fitted over each estimation window.", (
        RUN_ID, EVENT_ID, TICKER,
        _c("benchmark", "VARCHAR", "Benchmark ticker (unused by constant-mean)."),
        MODEL,
        _c("alpha", "DOUBLE", "Intercept (market) or mean return (constant-mean); NULL for "
           "market-adjusted."),
        _c("beta", "DOUBLE", "Slope on the benchmark return (market); NULL otherwise."),
        _c("sigma", "DOUBLE", "Residual standard deviation s = sqrt(SSR / (nobs - k))."),
        _c("r2", "DOUBLE", "R-squared (market model)."),
        _c("nobs", "INTEGER", "Estimation-window returns used (L1)."),
        _c("k", "INTEGER", "Parameters estimated (2 market, 1 constant-mean, 0 "
           "market-adjusted)."),
        _c("df", "INTEGER", "Degrees of freedom of the t tests, nobs - k."),
        _c("est_start", "DATE", "First estimation-window session used."),
        _c("est_end", "DATE", "Last estimation-window session used."),
    ), ("run_id", "event_id", "ticker", "model")),
    Table("abnormal_returns", "Daily abnormal returns over each event window.", (
        RUN_ID, EVENT_ID, TICKER, MODEL,
        _c("date", "DATE", "Session date on the security's exchange."),
        _c("rel_day", "INTEGER", "Sessions from day 0 on the security's own exchange."),
        _c("ret", "DOUBLE", "Security return (decimal fraction); NULL at a gap."),
        _c("benchmark_ret", "DOUBLE", "Benchmark return that day."),
        _c("expected_ret", "DOUBLE", "Expected return under the model."),
        _c("ar", "DOUBLE", "Abnormal return = ret - expected_ret."),
        _c("se", "DOUBLE", "Standard error of the AR with the forecast-error correction "
           "(S_it)."),
        _c("t", "DOUBLE", "Standardized AR = ar / se, distributed t(df)."),
        _c("p", "DOUBLE", "Two-sided p-value of t."),
        _c("sq_p", "DOUBLE", "Sample-quantile p-value: share of estimation-window residuals "
           "with |e| >= |ar| (0 = more extreme than all)."),
        _c("car", "DOUBLE", "Cumulative AR from the first event-window day to this day."),
        _c("car_se", "DOUBLE", "Standard error of car (forecast-error corrected)."),
    ), ("run_id", "event_id", "ticker", "model", "date")),
    Table("car", "Cumulative abnormal returns over the study's CAR windows, with the "
          "single-security t and sample-quantile tests and the buy-and-hold abnormal return.", (
        RUN_ID, EVENT_ID, TICKER, MODEL,
        _c("window_start", "INTEGER", "First day of the window, relative to day 0."),
        _c("window_end", "INTEGER", "Last day of the window, relative to day 0."),
        _c("start_date", "DATE", "Date of the window's first session."),
        _c("end_date", "DATE", "Date of the window's last session."),
        _c("n_days", "INTEGER", "Sessions in the window."),
        _c("car", "DOUBLE", "Sum of the window's abnormal returns."),
        _c("se", "DOUBLE", "sqrt(Var(CAR)), Var(CAR) = 1'V1 with V = s^2 [I + X_W "
           "(X_E'X_E)^-1 X_W'] (forecast-error corrected)."),
        _c("t", "DOUBLE", "car / se."),
        _c("df", "INTEGER", "Degrees of freedom, nobs - k."),
        _c("p", "DOUBLE", "Two-sided p-value of t under t(df)."),
        _c("sq_p", "DOUBLE", "Sample-quantile p-value (Gelbach-Helland-Klick): share of "
           "estimation-window n_days-day residual sums with |sum| >= |car|."),
        _c("sq_n", "INTEGER", "Number of estimation-window sums behind sq_p."),
        _c("bhar", "DOUBLE", "Buy-and-hold abnormal return: prod(1+ret) - "
           "prod(1+expected_ret)."),
        _c("status", "VARCHAR", "ok, or incomplete when a day of the window has no AR."),
        _c("reason", "VARCHAR", "Why the window is incomplete."),
    ), ("run_id", "event_id", "ticker", "model", "window_start", "window_end")),
)

VIEWS: tuple[tuple[str, str, str], ...] = (
    ("latest_runs", "The most recent run of each study.",
     "SELECT * FROM runs QUALIFY row_number() OVER (PARTITION BY study "
     "ORDER BY run_id DESC) = 1"),
    ("day0", "Day 0 of each event on each exchange, from the latest run of each study.",
     "SELECT d.* FROM event_days d JOIN latest_runs USING (run_id)"),
)

_TABLE_NAMES = tuple(t.name for t in TABLES)


def ddl() -> list[str]:
    """CREATE and COMMENT statements for the whole schema."""
    out: list[str] = ["CREATE SEQUENCE IF NOT EXISTS runs_seq START 1"]
    for t in TABLES:
        cols = ",\n  ".join(f'"{c.name}" {c.type}' for c in t.columns)
        pk = f",\n  PRIMARY KEY ({', '.join(t.primary_key)})" if t.primary_key else ""
        out.append(f"CREATE TABLE IF NOT EXISTS {t.name} (\n  {cols}{pk}\n)")
        out.append(f"COMMENT ON TABLE {t.name} IS {_q(t.comment)}")
        for c in t.columns:
            out.append(f'COMMENT ON COLUMN {t.name}."{c.name}" IS {_q(c.comment)}')
    for name, comment, sql in VIEWS:
        out.append(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        out.append(f"COMMENT ON VIEW {name} IS {_q(comment)}")
    return out


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def schema_markdown() -> str:
    """The schema as Markdown (``docs/schema.md`` is this text)."""
    lines = [
        "# Database schema",
        "",
        "Generated from `impact/storage.py` (`python -m impact.storage > docs/schema.md`); a "
        "test fails when this file is stale. The same comments are in the database: "
        "`SELECT table_name, comment FROM duckdb_tables()`.",
        "",
        f"Schema version: {SCHEMA_VERSION}.",
        "",
    ]
    for t in TABLES:
        lines += [f"## `{t.name}`", "", t.comment, ""]
        if t.primary_key:
            lines += [f"Key: `{', '.join(t.primary_key)}`.", ""]
        lines += ["| column | type | meaning |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.type} | {c.comment} |" for c in t.columns]
        lines.append("")
    lines += ["## Views", ""]
    for name, comment, sql in VIEWS:
        lines += [f"### `{name}`", "", comment, "", "```sql", sql, "```", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- connection


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
              ) -> tuple[Any, ...] | None:
    """First row of a query, or None; the whole result is consumed.

    DuckDB refuses further work on a connection whose last result was not read
    to the end, so ``fetchone()`` alone is not enough.
    """
    rows = con.execute(sql, params or []).fetchall()
    return tuple(rows[0]) if rows else None


def _is_impact_db(con: duckdb.DuckDBPyConnection) -> bool:
    names = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()}
    return "_impact_meta" in names


def schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version of an open database, or None if it is not an impact database."""
    if not _is_impact_db(con):
        return None
    row = fetch_one(con, "SELECT value FROM _impact_meta WHERE key = 'schema_version'")
    return int(row[0]) if row else None


def connect(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (and, for writing, create or check) an impact database.

    Parameters
    ----------
    path
        The DuckDB file, or ``:memory:``.
    read_only
        Open without the right to write.

    Returns
    -------
    duckdb.DuckDBPyConnection

    Raises
    ------
    DatabaseError
        If the file cannot be opened (locked by another process, not a DuckDB
        file), belongs to something else, or has a newer schema.
    """
    p = str(path)
    try:
        con = duckdb.connect(p, read_only=read_only)
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        hint = ("another process is writing it: retry when it has finished"
                if "lock" in msg.lower() else "check the path")
        raise DatabaseError(f"cannot open the database {p}: {msg} ({hint})") from None
    version = schema_version(con)
    if version is None:
        tables = fetch_one(
            con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        )
        if tables and tables[0] > 0:
            con.close()
            raise DatabaseError(
                f"{p} is a DuckDB file but not an impact database (no _impact_meta table): "
                f"choose another file with --db"
            )
        if read_only:
            con.close()
            raise DatabaseError(f"{p} holds no impact data yet: run 'impact run' first")
        with transaction(con):
            for stmt in ddl():
                con.execute(stmt)
            con.execute("INSERT INTO _impact_meta VALUES ('schema_version', ?), "
                        "('created_by', ?)", [str(SCHEMA_VERSION), f"impact {__version__}"])
    elif version > SCHEMA_VERSION:
        con.close()
        raise DatabaseError(
            f"{p} has schema version {version}, newer than this impact ({SCHEMA_VERSION}): "
            f"upgrade impact"
        )
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Insert a frame's columns by name into a table."""
    if frame.height == 0:
        return
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    con.register("_frame", frame)
    try:
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _frame")
    finally:
        con.unregister("_frame")


def _upsert_changed(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame,
                    key: tuple[str, ...], compare: tuple[str, ...]) -> int:
    """Insert rows that are new, replace rows whose compared values changed.

    Returns the number of rows written.
    """
    if frame.height == 0:
        return 0
    con.register("_frame", frame)
    try:
        on = " AND ".join(f'o."{k}" = n."{k}"' for k in key)
        diff = " OR ".join(f'o."{c}" IS DISTINCT FROM n."{c}"' for c in compare)
        cols = ", ".join(f'"{c}"' for c in frame.columns)
        sel = ", ".join(f'n."{c}"' for c in frame.columns)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _changed AS SELECT {sel} FROM _frame n "
                    f"LEFT JOIN {table} o ON {on} WHERE o.\"{key[0]}\" IS NULL OR {diff}")
        row = fetch_one(con, "SELECT count(*) FROM _changed")
        n = int(row[0]) if row else 0
        if n:
            con.execute(f"INSERT OR REPLACE INTO {table} ({cols}) SELECT {cols} FROM _changed")
        con.execute("DROP TABLE _changed")
        return n
    finally:
        con.unregister("_frame")


@dataclass(frozen=True)
class WriteSummary:
    """What :func:`write_run` wrote."""

    run_id: int
    prices_written: int
    returns_written: int


def write_run(
    con: duckdb.DuckDBPyConnection,
    run: Any,
    *,
    command: str | None = None,
    before_commit: Callable[[duckdb.DuckDBPyConnection, int], None] | None = None,
) -> WriteSummary:
    """Store a computed run and its inputs in one transaction.

    Parameters
    ----------
    con
        An open impact database (:func:`connect`).
    run
        A :class:`impact.study.StudyRun`.
    command
        The command line, recorded in ``runs.command``.
    before_commit
        Called with the connection and the new run id inside the transaction,
        after everything was written; if it raises, nothing is stored (the
        report is rendered here, so a run and its report land together).

    Returns
    -------
    WriteSummary
    """
    study = run.study
    now = run.created_at
    event_rows = [
        (e.event_id, e.ts.isoformat(), e.ts.isoformat(), e.tz, e.date_only, e.date_end,
         e.title, e.source, e.category, e.notes, e.url, study.name)
        for e in study.events
    ]
    sec_rows = [
        (s.ticker, s.name, s.name_local, s.exchange, s.currency, role, s.benchmark)
        for role, group in (("security", study.securities), ("benchmark", study.benchmarks))
        for s in group
    ]
    prices = run.prices.with_columns(
        pl.lit(run.price_source).alias("source"), pl.lit(now).alias("loaded_at")
    )
    returns = run.returns.with_columns(pl.lit(run.price_source).alias("source"))
    with transaction(con):
        con.executemany(
            "INSERT OR REPLACE INTO events VALUES (?, CAST(? AS TIMESTAMPTZ), ?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?)", event_rows)
        con.executemany("INSERT OR REPLACE INTO securities VALUES (?, ?, ?, ?, ?, ?, ?)",
                        sec_rows)
        n_prices = _upsert_changed(
            con, "prices", prices, ("ticker", "date"),
            ("open", "high", "low", "close", "adj_close", "volume", "source"))
        if run.dividends is not None and run.dividends.height:
            divs = run.dividends.with_columns(
                pl.lit(run.price_source).alias("source"), pl.lit(now).alias("loaded_at"))
            _upsert_changed(con, "dividends", divs, ("ticker", "ex_date"),
                            ("amount", "currency", "source"))
        n_returns = _upsert_changed(con, "returns", returns, ("ticker", "date"),
                                    ("prev_date", "ret", "basis", "source"))
        row = fetch_one(con, "SELECT nextval('runs_seq')")
        assert row is not None
        run_id = int(row[0])
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, now, study.name, str(study.path), json.dumps(run.params, sort_keys=True),
             __version__, run.price_source, run.inputs_hash, json.dumps(run.notes), command],
        )
        for table, frame in (("event_days", run.alignments), ("model_fits", run.fits),
                             ("abnormal_returns", run.abnormal_returns), ("car", run.car)):
            _insert(con, table, frame.with_columns(pl.lit(run_id).alias("run_id")))
        if before_commit is not None:
            before_commit(con, run_id)
    return WriteSummary(run_id=run_id, prices_written=n_prices, returns_written=n_returns)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every table of the schema."""
    out = {}
    for name in _TABLE_NAMES:
        row = fetch_one(con, f"SELECT count(*) FROM {name}")
        out[name] = int(row[0]) if row else 0
    return out


if __name__ == "__main__":  # pragma: no cover - regenerates docs/schema.md
    print(schema_markdown())
