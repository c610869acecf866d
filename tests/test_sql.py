"""SQL exploration: migrations, views, README questions, read-only `impact sql`, locking."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from impact import api, migrations, schema, storage
from impact.cli import main
from tests.conftest import ROOT, STUDY

TABLES = [t.name for t in schema.TABLES]


def counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0] for n in names}
    finally:
        con.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path, deepseek_run) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "impact.duckdb"
    shutil.copy(deepseek_run.db, path)
    return path


# --------------------------------------------------------------------------- migrations


def build_v1(path: Path, source: Path) -> dict[str, int]:
    """A database at schema version 1 holding the rows of a current one."""
    con = duckdb.connect(str(path))
    migrations.migrate(con, target=1)
    assert migrations.current_version(con) == 1
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    v1_tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name <> '_impact_meta'").fetchall()]
    for t in v1_tables:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND table_name = ? ORDER BY column_index", [t]).fetchall()]
        col_list = ", ".join(f'"{c}"' for c in cols)
        con.execute(f"INSERT INTO {t} ({col_list}) SELECT {col_list} FROM src.{t}")
    con.execute("DETACH src")
    rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in v1_tables}
    con.close()
    return rows


def test_upgrade_from_version_1_keeps_every_row(tmp_path: Path, deepseek_run) -> None:  # type: ignore[no-untyped-def]
    old = tmp_path / "v1.duckdb"
    before = build_v1(old, deepseek_run.db)
    assert before["car"] > 0 and before["prices"] > 0
    # read-only use of an old database says how to upgrade
    res = CliRunner().invoke(main, ["sql", "SELECT 1", "--db", str(old)])
    assert res.exit_code == 6 and "impact migrate" in res.stderr
    res = CliRunner().invoke(main, ["migrate", "--db", str(old)])
    assert res.exit_code == 0, res.output
    assert "upgraded to schema version 2 (steps 2)" in res.output
    after = counts(old)
    for t, n in before.items():
        assert after[t] == n, t
    con = duckdb.connect(str(old), read_only=True)
    # the new column is backfilled, the new table filled, the views answer
    assert con.execute("SELECT count(*) FROM event_days WHERE calendar_days IS NULL"
                       ).fetchall() == [(0,)]
    assert con.execute("SELECT calendar_days FROM event_days WHERE event_id = "
                       "'deepseek-app-store' AND exchange = 'XKRX'").fetchall() == [(5,)]
    assert dict(con.execute("SELECT exchange, tz FROM exchanges").fetchall()) == {
        "XNYS": "America/New_York", "XKRX": "Asia/Seoul"}
    assert con.execute("SELECT version FROM _impact_migrations ORDER BY 1").fetchall() == [
        (1,), (2,)]
    assert con.execute("SELECT count(*) FROM day0").fetchall()[0][0] == before["event_days"]
    con.close()
    res = CliRunner().invoke(main, ["migrate", "--db", str(old)])
    assert "already at schema version 2" in res.output


def test_a_failing_step_rolls_back(tmp_path: Path, deepseek_run,  # type: ignore[no-untyped-def]
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "v1.duckdb"
    build_v1(old, deepseek_run.db)

    def broken(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE exchanges (exchange VARCHAR)")
        raise RuntimeError("disk full")

    steps = (migrations.MIGRATIONS[0],
             migrations.Migration(2, "broken", broken))
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    with pytest.raises(RuntimeError):
        storage.connect(old)
    con = duckdb.connect(str(old), read_only=True)
    assert migrations.current_version(con) == 1
    assert "exchanges" not in {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()


def test_migrations_build_exactly_the_declared_schema(tmp_path: Path) -> None:
    con = storage.connect(tmp_path / "new.duckdb")
    got = {}
    for t, c, ty in con.execute("SELECT table_name, column_name, data_type FROM duckdb_columns() "
                                "WHERE NOT internal ORDER BY table_name, column_index"
                                ).fetchall():
        got.setdefault(t, []).append((c, ty))
    con.close()
    for t in schema.TABLES:
        alias = {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}
        assert got.pop(t.name) == [(c.name, alias.get(c.type, c.type)) for c in t.columns], t.name
    views = {v.name for v in schema.VIEWS}
    assert set(got) == views  # nothing undeclared


# --------------------------------------------------------------------------- README questions


def readme_questions() -> list[tuple[str, list[str], list[list[str]]]]:
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"```sql\n(.*?)```\n\n(\|.*?)\n\n", text, flags=re.S)
    out = []
    for sql, table in found:
        lines = [ln.strip().strip("|").split("|") for ln in table.strip().splitlines()]
        header = [c.strip() for c in lines[0]]
        rows = [[c.strip() for c in ln] for ln in lines[2:]]
        out.append((sql, header, rows))
    return out


def test_readme_has_five_questions() -> None:
    assert len(readme_questions()) >= 5


@pytest.mark.parametrize("index", range(5))
def test_readme_question_gives_the_documented_answer(index: int, deepseek_run) -> None:  # type: ignore[no-untyped-def]
    sql, header, rows = readme_questions()[index]
    frame = api.sql(sql, db=deepseek_run.db)
    assert frame.columns == header
    got = [[str(v) for v in row] for row in frame.iter_rows()]
    assert got == rows


# --------------------------------------------------------------------------- impact sql


@pytest.mark.parametrize("query", [
    "DELETE FROM runs",
    "DROP TABLE car",
    "SELECT 1; UPDATE prices SET close = 0",
    "ATTACH '{tmp}/other.duckdb' AS o",
    "ATTACH '{tmp}/other.duckdb' AS o (READ_WRITE)",
    "COPY car TO '{tmp}/car.csv'",
    "CREATE TABLE x AS SELECT 1",
    "INSTALL httpfs",
])
def test_sql_refuses_writes_and_changes_nothing(query: str, db: Path, tmp_path: Path) -> None:
    before = digest(db)
    res = CliRunner().invoke(main, ["sql", query.format(tmp=tmp_path), "--db", str(db)])
    assert res.exit_code == 3
    assert "impact sql only reads" in res.stderr and "refused" in res.stderr
    assert "Traceback" not in res.output
    assert digest(db) == before
    assert not (tmp_path / "other.duckdb").exists()
    assert not (tmp_path / "car.csv").exists()


def test_query_errors_show_duckdbs_message(db: Path) -> None:
    res = CliRunner().invoke(main, ["sql", "SELECT nope FROM runs", "--db", str(db)])
    assert res.exit_code == 3
    assert res.stderr.startswith("error: Binder Error")
    assert 'column "nope" not found' in res.stderr
    assert "Traceback" not in res.output
    res = CliRunner().invoke(main, ["sql", "SELEC 1", "--db", str(db)])
    assert res.exit_code == 3 and "syntax error" in res.stderr.lower()
    res = CliRunner().invoke(main, ["sql", "SELECT 1", "--db", str(db.parent / "none.duckdb")])
    assert res.exit_code == 6 and "no database" in res.stderr
    assert not (db.parent / "none.duckdb").exists()


def test_sql_output_formats(db: Path, tmp_path: Path) -> None:
    q = ("SELECT ticker, round(ar, 6) AS ar FROM latest_abnormal_returns WHERE rel_day = 0 "
         "AND model = 'market' AND event_id = 'deepseek-app-store' ORDER BY ticker")
    runner = CliRunner()
    csv = runner.invoke(main, ["sql", q, "--db", str(db), "--csv"]).stdout
    assert csv.splitlines()[0] == "ticker,ar"
    assert csv.splitlines()[1].startswith("000660.KS,-0.0884")
    rows = json.loads(runner.invoke(main, ["sql", q, "--db", str(db), "--json"]).stdout)
    assert [r["ticker"] for r in rows] == ["000660.KS", "005930.KS", "NVDA"]
    out = tmp_path / "x.parquet"
    res = runner.invoke(main, ["sql", q, "--db", str(db), "--parquet", str(out)])
    assert res.exit_code == 0
    assert pl.read_parquet(out).height == 3
    table = runner.invoke(main, ["sql", q, "--db", str(db)]).stdout
    assert table.splitlines()[0].split() == ["ticker", "ar"]
    assert table.rstrip().endswith("(3 rows)")
    f = tmp_path / "q.sql"
    f.write_text(q)
    assert runner.invoke(main, ["sql", "-f", str(f), "--db", str(db), "--csv"]).stdout == csv
    # nested columns become text in CSV
    res = runner.invoke(main, ["sql", "SELECT tickers FROM caar LIMIT 1", "--db", str(db),
                               "--csv"])
    assert res.stdout.splitlines()[1] == '"000660.KS, 005930.KS, NVDA"'


def test_tables_lists_counts_and_comments(db: Path) -> None:
    res = CliRunner().invoke(main, ["tables", "--db", str(db)])
    assert res.exit_code == 0
    lines = {ln.split()[0]: ln for ln in res.stdout.splitlines()}
    for name in [*TABLES, "day0", "caar", "latest_car", "event_timeline"]:
        assert name in lines, name
    assert lines["events"].split()[1:3] == ["table", "19"]
    assert "Daily abnormal returns" in lines["abnormal_returns"]
    assert any(k.startswith("car_between(") for k in lines)


def test_schema_command_prints_the_doc() -> None:
    res = CliRunner().invoke(main, ["schema"])
    assert res.exit_code == 0
    assert res.stdout == (ROOT / "docs" / "schema.md").read_text()


def test_every_view_and_macro_has_a_comment(db: Path) -> None:
    con = duckdb.connect(str(db), read_only=True)
    views = con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
                        ).fetchall()
    macros = con.execute("SELECT function_name, comment FROM duckdb_functions() "
                         "WHERE function_type = 'table_macro' AND NOT internal").fetchall()
    con.close()
    assert {v for v, _ in views} == {v.name for v in schema.VIEWS}
    assert {m for m, _ in macros} == {m.name for m in schema.MACROS}
    assert all(c for _, c in views + macros)


def test_duckdb_cli_reads_the_file(db: Path) -> None:
    """The README's duckdb command works with the 1.x command-line client."""
    cli = Path(sys.executable).parent / "duckdb"
    if not cli.exists():
        pytest.skip("the duckdb CLI is not installed (pip install duckdb-cli)")
    out = subprocess.run(
        [str(cli), "-readonly", str(db), "-c",
         "SELECT table_name, comment FROM duckdb_tables()"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    assert "abnormal_returns" in out and "Daily abnormal returns" in out


# --------------------------------------------------------------------------- concurrency

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
con.execute("DELETE FROM car")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
con.close()
"""


def test_reading_while_a_writer_holds_the_file_fails_clearly(db: Path, tmp_path: Path) -> None:
    script = tmp_path / "hold.py"
    script.write_text(HOLD)
    n_before = api.sql("SELECT count(*) AS n FROM car", db=db)["n"][0]
    writer = subprocess.Popen([sys.executable, str(script), str(db), "30"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "holding"
        t0 = time.monotonic()
        with pytest.raises(Exception, match=r"in use by another process.*retry"):
            api.sql("SELECT count(*) FROM car", db=db, wait=1.0)
        assert time.monotonic() - t0 >= 0.9  # it waited before giving up
    finally:
        writer.kill()
        writer.wait()
    # after the writer is gone (killed mid-transaction) the file is intact
    assert api.sql("SELECT count(*) AS n FROM car", db=db)["n"][0] == n_before


def test_reads_during_a_real_run_work_or_ask_to_retry(db: Path, tmp_path: Path,
                                                      prices_dir: Path) -> None:
    impact = [sys.executable, "-m", "impact.cli"]
    run = subprocess.Popen([*impact, "run", str(STUDY), "--db", str(db), "--prices-dir",
                            str(prices_dir), "--reports-dir", str(tmp_path / "r")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    outcomes = []
    while run.poll() is None:
        res = subprocess.run([*impact, "sql", "SELECT count(*) FROM runs", "--db", str(db),
                              "--csv"], capture_output=True, text=True, cwd=ROOT)
        if res.returncode == 0:
            outcomes.append(int(res.stdout.splitlines()[1]))
        else:
            assert res.returncode == 6 and "retry" in res.stderr, res.stderr
            outcomes.append(-1)
    assert run.returncode == 0, run.stderr.read() if run.stderr else ""
    assert outcomes and set(outcomes) <= {1, 2, -1}
    assert api.sql("SELECT count(*) AS n FROM runs", db=db)["n"][0] == 2


def test_readme_sql_file_example_runs_as_written(deepseek_run, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
                                                  ) -> None:
    """`impact sql -f docs/questions/furthest-fall.sql --csv`: the file is question 1."""
    text = (ROOT / "README.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(".venv/bin/impact sql -f "))
    args = line.split("#")[0].split()[1:]
    sql_file = ROOT / args[2]
    assert sql_file.read_text().split("\n", 1)[1] == readme_questions()[0][0]
    monkeypatch.chdir(ROOT)
    res = CliRunner().invoke(main, [*args, "--db", str(deepseek_run.db)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == ["ticker,car_pct,t,p", "000660.KS,-9.21,-2.59,0.0102"]
