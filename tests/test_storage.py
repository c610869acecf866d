"""The database as an interface: comments everywhere, a schema version, docs in sync."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from impact import schema, storage
from impact.errors import DatabaseError

ROOT = Path(__file__).resolve().parent.parent


def test_every_table_view_and_column_has_a_comment(tmp_path: Path) -> None:
    con = storage.connect(tmp_path / "x.duckdb")
    tables = con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall()
    views = con.execute("SELECT view_name, comment FROM duckdb_views() "
                        "WHERE NOT internal").fetchall()
    cols = con.execute("SELECT table_name, column_name, comment FROM duckdb_columns() "
                       "WHERE NOT internal").fetchall()
    con.close()
    names = {t for t, _ in tables}
    assert {"events", "prices", "runs", "model_fits", "abnormal_returns", "car",
            "event_days", "returns", "dividends", "securities"} <= names
    assert all(c for _, c in tables + views), [t for t, c in tables + views if not c]
    view_names = {v for v, _ in views}
    table_cols = [(t, c, m) for t, c, m in cols if t in names | view_names]
    assert {t for t, _, _ in table_cols} >= view_names  # views' columns are checked too
    assert table_cols and all(m for _, _, m in table_cols), [
        (t, c) for t, c, m in table_cols if not m]


def test_required_columns_exist(tmp_path: Path) -> None:
    con = storage.connect(tmp_path / "x.duckdb")
    required = {
        "events": ["event_id", "ts", "title", "source", "category"],
        "prices": ["ticker", "date", "open", "high", "low", "close", "adj_close", "volume",
                   "source"],
        "runs": ["run_id", "created_at", "params", "impact_version"],
        "model_fits": ["run_id", "event_id", "ticker", "benchmark", "model", "alpha", "beta",
                       "sigma", "nobs", "est_start", "est_end"],
        "abnormal_returns": ["run_id", "event_id", "ticker", "model", "date", "rel_day", "ret",
                             "expected_ret", "ar"],
        "car": ["run_id", "event_id", "ticker", "model", "window_start", "window_end", "car",
                "se", "t", "p"],
    }
    for table, columns in required.items():
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]).fetchall()}
        assert set(columns) <= have, (table, set(columns) - have)
    con.close()


def test_schema_version_is_stored(tmp_path: Path) -> None:
    con = storage.connect(tmp_path / "x.duckdb")
    assert storage.schema_version(con) == storage.SCHEMA_VERSION
    con.close()


def test_foreign_duckdb_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    with pytest.raises(DatabaseError, match="not an impact database"):
        storage.connect(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    con = storage.connect(path)
    con.execute("UPDATE _impact_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(DatabaseError, match="newer than this impact"):
        storage.connect(path)


def test_schema_doc_is_current() -> None:
    doc = (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")
    assert doc == schema.schema_markdown() + "\n", (
        "docs/schema.md is stale: regenerate with "
        "'python -m impact.storage > docs/schema.md'")


def test_failed_write_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    con = storage.connect(path)
    with pytest.raises(RuntimeError), storage.transaction(con):
        con.execute("INSERT INTO _impact_meta VALUES ('probe', '1')")
        raise RuntimeError("boom")
    assert con.execute("SELECT count(*) FROM _impact_meta WHERE key = 'probe'").fetchone() == (0,)
    con.close()


def test_failed_rollback_keeps_the_original_error(tmp_path: Path) -> None:
    """When the transaction is already over, ROLLBACK fails too: the error that caused
    it is the one raised, not DuckDB's "no transaction is active"."""
    con = storage.connect(tmp_path / "x.duckdb")
    with pytest.raises(RuntimeError, match="boom"), storage.transaction(con):
        con.execute("COMMIT")
        raise RuntimeError("boom")
    con.close()
