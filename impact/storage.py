"""The DuckDB database: a documented, stable interface for SQL users.

Why this module is shaped this way
----------------------------------
The database is part of the product: analysts open ``impact.duckdb`` with the
``duckdb`` CLI and query it. Every table, view, macro and column is declared
once, with a comment, in :mod:`impact.schema`; :mod:`impact.migrations` builds a
new database or upgrades an older one to that declaration, one transaction per
step. Internal tables start with ``_``; the schema version is in ``_impact_meta``.

A run is written in one transaction, after everything was computed: either all
of it lands or nothing does. Re-running a study adds a run; prices, returns,
events and securities are upserted (a price row is only rewritten when a value
changed), so older runs are never altered or duplicated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from impact import __version__
from impact.errors import DatabaseError
from impact.migrations import current_version, migrate
from impact.schema import SCHEMA_VERSION, TABLE_NAMES

# --------------------------------------------------------------------------- connection


def fetch_one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
              ) -> tuple[Any, ...] | None:
    """First row of a query, or None; the whole result is consumed.

    DuckDB refuses further work on a connection whose last result was not read
    to the end, so ``fetchone()`` alone is not enough.
    """
    rows = con.execute(sql, params or []).fetchall()
    return tuple(rows[0]) if rows else None


def schema_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version of an open database, or None if it is not an impact database."""
    version = current_version(con)
    return version or None


#: New files are written in a storage format that DuckDB 1.4 and later can read,
#: so analysts can open them with the duckdb CLI they already have.
STORAGE_COMPATIBILITY = "v1.4.0"


def _open(path: str, read_only: bool, wait: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait
    delay = 0.05
    new = path != ":memory:" and not Path(path).exists()
    config: dict[str, str | bool | int | float | list[str]] = (
        {"storage_compatibility_version": STORAGE_COMPATIBILITY} if new else {})
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=config)
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            locked = "lock" in msg.lower()
            remaining = deadline - time.monotonic()
            if locked and remaining > 0:
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)
                continue
            if locked:
                raise DatabaseError(
                    f"the database {path} is in use by another process that is writing it "
                    f"(a run or an update): retry when it has finished ({msg})"
                ) from None
            raise DatabaseError(f"cannot open the database {path}: {msg}") from None


def open_file(path: str | Path, *, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open any DuckDB file for writing (no impact schema), waiting for another writer.

    Raises
    ------
    DatabaseError
        If the file stays locked for ``wait`` seconds or is not a DuckDB file.
    """
    return _open(str(path), False, wait)


def connect(path: str | Path, *, read_only: bool = False, wait: float = 0.0
            ) -> duckdb.DuckDBPyConnection:
    """Open an impact database; for writing, create it or upgrade it to the current schema.

    Parameters
    ----------
    path
        The DuckDB file, or ``:memory:``.
    read_only
        Open without the right to write. The file must exist, hold an impact
        database, and be at the current schema version.
    wait
        Seconds to keep retrying while another process holds the file's lock.

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
    if read_only and p != ":memory:" and not Path(p).exists():
        raise DatabaseError(f"there is no database at {p}: run 'impact run STUDY' first")
    con = _open(p, read_only, wait)
    version = current_version(con)
    if version == 0:
        rows = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        if rows[0][0] > 0:
            con.close()
            raise DatabaseError(
                f"{p} is a DuckDB file but not an impact database (no _impact_meta table): "
                f"choose another file with --db"
            )
        if read_only:
            con.close()
            raise DatabaseError(f"{p} holds no impact data yet: run 'impact run' first")
    if version > SCHEMA_VERSION:
        con.close()
        raise DatabaseError(
            f"{p} has schema version {version}, newer than this impact ({SCHEMA_VERSION}): "
            f"upgrade impact"
        )
    if version < SCHEMA_VERSION:
        if read_only:
            con.close()
            raise DatabaseError(
                f"{p} has schema version {version}; this impact reads version "
                f"{SCHEMA_VERSION}: upgrade it in place with 'impact migrate --db {p}'"
            )
        migrate(con)
    return con


def upgrade(path: str | Path) -> tuple[int, list[int]]:
    """Upgrade an existing impact database in place (``impact migrate``).

    Returns
    -------
    (version, applied)
        The version reached and the steps applied, each in its own transaction.
    """
    p = str(path)
    if not Path(p).exists():
        raise DatabaseError(f"there is no database at {p}")
    con = _open(p, False, 0.0)
    try:
        version = current_version(con)
        if version == 0:
            raise DatabaseError(f"{p} is not an impact database (no _impact_meta table)")
        if version > SCHEMA_VERSION:
            raise DatabaseError(f"{p} has schema version {version}, newer than this impact "
                                f"({SCHEMA_VERSION}): upgrade impact")
        applied = migrate(con)
        return current_version(con), applied
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception (Ctrl-C too).

    A ROLLBACK that fails in turn (a transaction DuckDB already ended) does not hide
    the exception that caused it.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with suppress(duckdb.Error):
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


#: Common names of exchanges (others are shown by their calendar name).
EXCHANGE_NAMES = {"XNYS": "NYSE/Nasdaq", "XKRX": "KRX"}


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
    from impact.calendars import exchange_tz

    exchanges = sorted({s.exchange for s in (*study.securities, *study.benchmarks)})
    ex_rows = [(ex, EXCHANGE_NAMES.get(ex, ex), exchange_tz(ex)) for ex in exchanges]
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
        con.executemany("INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?)", ex_rows)
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
        if run.security_attributes.height:
            attrs = run.security_attributes.with_columns(pl.lit(now).alias("loaded_at"))
            _upsert_changed(con, "security_attributes", attrs, ("ticker", "attribute"),
                            ("value", "value_text", "source"))
        row = fetch_one(con, "SELECT coalesce(max(run_id), 0) + 1 FROM runs")
        assert row is not None
        run_id = int(row[0])
        con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, now, study.name, str(study.path), json.dumps(run.params, sort_keys=True),
             __version__, run.price_source, run.inputs_hash, json.dumps(run.notes), command],
        )
        for table, frame in (("event_days", run.alignments), ("model_fits", run.fits),
                             ("abnormal_returns", run.abnormal_returns), ("car", run.car),
                             ("tests", run.tests), ("aggregates", run.aggregates),
                             ("aar", run.aar), ("cross_section", run.cross_section),
                             ("sensitivity", run.sensitivity)):
            _insert(con, table, frame.with_columns(pl.lit(run_id).alias("run_id")))
        if before_commit is not None:
            before_commit(con, run_id)
    return WriteSummary(run_id=run_id, prices_written=n_prices, returns_written=n_returns)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every table of the schema."""
    out = {}
    for name in TABLE_NAMES:
        row = fetch_one(con, f"SELECT count(*) FROM {name}")
        out[name] = int(row[0]) if row else 0
    return out
