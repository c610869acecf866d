"""Read-only SQL over an impact database (``impact sql``, ``impact tables``).

Exploration can never change data: the database is opened read-only, and every
statement is checked before anything runs, so that writes to other files
(``ATTACH``, ``COPY ... TO``) are refused too, with a message that says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from impact.errors import QueryError
from impact.schema import MACROS, TABLE_NAMES, VIEWS
from impact.storage import connect

#: Statement types ``impact sql`` runs; anything else is refused before running.
READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL"})


def _kinds(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"the query is not valid SQL: {exc}") from None
    return [str(s.type).rsplit(".", 1)[-1] for s in statements]


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """Refuse anything but reads; return the number of statements.

    Raises
    ------
    QueryError
        If the text holds no statement, or a statement that could write.
    """
    kinds = _kinds(con, sql)
    if not kinds:
        raise QueryError("the query is empty: give a SELECT statement")
    refused = [k for k in kinds if k not in READ_STATEMENTS]
    if refused:
        raise QueryError(
            f"impact sql only reads: {', '.join(sorted(set(refused)))} "
            f"statement{'s are' if len(refused) > 1 else ' is'} refused and nothing was run "
            f"(allowed: {', '.join(sorted(READ_STATEMENTS))}). The database is unchanged."
        )
    return len(kinds)


def run_query(db: str | Path, sql: str, *, wait: float = 5.0) -> pl.DataFrame:
    """Run read-only SQL and return the result of its last statement.

    Parameters
    ----------
    db
        The impact database.
    sql
        One or more statements; only reads are allowed.
    wait
        Seconds to wait for a writer (a run or an update) to finish.

    Returns
    -------
    polars.DataFrame

    Raises
    ------
    QueryError
        For a refused statement or an error DuckDB reports (its message is kept).
    DatabaseError
        If the database cannot be opened.
    """
    con = connect(db, read_only=True, wait=wait)
    try:
        check_read_only(con, sql)
        try:
            statements = con.extract_statements(sql)
            for stmt in statements[:-1]:
                con.execute(stmt.query).fetchall()
            rel = con.sql(statements[-1].query)
            frame: pl.DataFrame = rel.pl() if rel is not None else pl.DataFrame()
        except duckdb.Error as exc:
            raise QueryError(str(exc)) from None
        return frame
    finally:
        con.close()


@dataclass(frozen=True)
class TableInfo:
    """A table, view or table macro of the database."""

    name: str
    #: ``table``, ``view`` or ``macro``.
    kind: str
    #: Row count (None for a macro).
    rows: int | None
    comment: str


def list_tables(db: str | Path, *, wait: float = 5.0) -> list[TableInfo]:
    """Tables and views with their row counts and comments, and the table macros."""
    con = connect(db, read_only=True, wait=wait)
    try:
        comments = dict(con.execute(
            "SELECT table_name, comment FROM duckdb_tables() UNION ALL "
            "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal UNION ALL "
            "SELECT function_name, comment FROM duckdb_functions() "
            "WHERE function_type = 'table_macro' AND NOT internal").fetchall())
        out = []
        for kind, names in (("table", TABLE_NAMES), ("view", [v.name for v in VIEWS])):
            for name in names:
                (n,) = con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0]
                out.append(TableInfo(name, kind, int(n), comments.get(name) or ""))
        for m in MACROS:
            out.append(TableInfo(f"{m.name}({', '.join(m.params)})", "macro", None,
                                 comments.get(m.name) or ""))
        return out
    finally:
        con.close()


def format_table(frame: pl.DataFrame, *, max_rows: int = 200) -> str:
    """A plain aligned text table (the default output of ``impact sql``)."""
    if frame.width == 0:
        return "(no result)"
    cols = frame.columns
    shown = frame.head(max_rows)
    cells = [[_cell(v) for v in row] for row in shown.iter_rows()]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    numeric = [dt.is_numeric() for dt in frame.dtypes]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    out = [line(cols), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    if frame.height > max_rows:
        out.append(f"... {frame.height - max_rows} more rows (use --csv or --json for all)")
    out.append(f"({frame.height} row{'s' if frame.height != 1 else ''})")
    return "\n".join(out)


def _cell(v: object) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def flat(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (lists, structs) as text, for CSV."""
    nested = [c for c, dt in zip(frame.columns, frame.dtypes, strict=True) if dt.is_nested()]
    if not nested:
        return frame
    exprs = []
    for c, dt in zip(frame.columns, frame.dtypes, strict=True):
        if isinstance(dt, pl.List | pl.Array):
            exprs.append(pl.col(c).cast(pl.List(pl.String)).list.join(", "))
        elif isinstance(dt, pl.Struct):
            exprs.append(pl.col(c).struct.json_encode())
    return frame.with_columns(exprs) if nested else frame
