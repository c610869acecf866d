"""`impact engine`: the whole-market engine from the command line, its errors and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner

import impact.engine_tests as et
from impact.cli import main
from impact.engine import Exclusions, car_view, market_model, market_model_sql
from impact.storage import STORAGE_COMPATIBILITY

ROOT = Path(__file__).resolve().parents[1]
IMPACT = str(Path(sys.executable).parent / "impact")
sys.path.insert(0, str(ROOT))

from benchmarks.panel import build_panel  # noqa: E402


@pytest.fixture(scope="module")
def panel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("engine") / "panel.duckdb"
    build_panel(str(path), securities=40, years=3, pairs=3000, per_event=20, seed=3)
    return path


def counts(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = {r[0] for r in con.execute(  # engine_ar and engine_car are views
            "SELECT table_name FROM duckdb_tables() UNION ALL "
            "SELECT view_name FROM duckdb_views()").fetchall()}
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in ("engine_fits", "engine_ar", "engine_car") if t in names}
    finally:
        con.close()


def test_engine_command_writes_the_same_tables_as_the_function(panel: Path) -> None:
    con = duckdb.connect(str(panel))  # tests of an earlier run must not survive --no-tests
    con.execute("CREATE OR REPLACE TABLE engine_tests AS SELECT 1 AS stale")
    con.close()
    res = CliRunner().invoke(main, ["engine", "--db", str(panel), "--no-tests",
                                    "--car", "0,0", "--car", "-1,1"])
    assert res.exit_code == 0, res.output
    assert "3,000 pairs" in res.output
    got = counts(panel)
    assert got["engine_fits"] == 3000 and got["engine_car"] == 6000
    with duckdb.connect(str(panel), read_only=True) as ro:  # plain_doubles, also at COMMIT
        kinds = {t: {r[0] for r in ro.execute(
            "SELECT DISTINCT compression FROM pragma_storage_info(?) "
            "WHERE segment_type = 'DOUBLE'", [t]).fetchall()}
            for t in ("engine_fits", "engine_ar_data", "engine_car_data")}
    assert all(k and k <= {"Uncompressed", "Constant"} for k in kinds.values()), kinds
    con = duckdb.connect(str(panel))
    cli_car = con.sql("SELECT pair_id, window_start, car, t FROM engine_car "
                      "ORDER BY ALL").fetchall()
    con.execute("BEGIN")
    market_model(con, returns_table="returns", pairs_table="pairs", tests=False,
                 car_windows=((0, 0), (-1, 1)))
    again = con.sql("SELECT pair_id, window_start, car, t FROM engine_car ORDER BY ALL").fetchall()
    con.execute("ROLLBACK")
    con.close()
    assert cli_car == again
    con = duckdb.connect(str(panel), read_only=True)
    assert not con.execute("SELECT count(*) FROM duckdb_tables() "
                           "WHERE table_name = 'engine_tests'").fetchall()[0][0]
    con.close()


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--estimation", "-250"], 2, "give two integers"),
    (["--pairs", "nope"], 3, "has no table 'nope'"),
    (["--car", "-6,0"], 3, "not inside the event window"),
])
def test_engine_command_errors(panel: Path, args: list[str], code: int, message: str) -> None:
    before = counts(panel)
    res = CliRunner().invoke(main, ["engine", "--db", str(panel), "--no-tests", *args])
    assert res.exit_code == code, res.output
    assert message in res.output
    assert counts(panel) == before


def test_missing_database(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["engine", "--db", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 3 and "there is no database" in res.output
    assert not (tmp_path / "none.duckdb").exists()


def test_ctrl_c_leaves_no_half_written_run(panel: Path) -> None:
    con = duckdb.connect(str(panel))
    con.execute("CREATE OR REPLACE TABLE few AS SELECT * FROM pairs WHERE pair_id < 100")
    con.close()
    ok = subprocess.run([IMPACT, "engine", "--db", str(panel),
                         "--pairs", "few", "--no-tests"], capture_output=True, text=True,
                        cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    before = counts(panel)
    assert before["engine_fits"] == 100
    env = {**os.environ, "IMPACT_TEST_PAUSE_IN_ENGINE": "60"}
    proc = subprocess.Popen([IMPACT, "engine", "--db", str(panel),
                             "--no-tests"], stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until engine_fits is written inside the transaction
        if "paused after writing engine_fits" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert "interrupted" in rest and "nothing was written" in rest
    assert counts(panel) == before  # the 3,000-pair engine_fits never landed


def test_ctrl_c_in_the_closing_checkpoint_keeps_the_committed_run(
        panel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`impact engine` checkpoints after its COMMIT: Ctrl-C (or an error) there must not
    be reported as a rolled-back run, since the run is committed."""
    import impact.api as api

    path = tmp_path / "panel.duckdb"
    path.write_bytes(panel.read_bytes())
    real_open = api.open_file
    seen: list[str] = []

    class NoCheckpoint:
        def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
            self._con = con

        def __getattr__(self, name: str) -> object:
            return getattr(self._con, name)

        def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
            if sql.strip() == "CHECKPOINT":
                seen.append(sql)
                raise KeyboardInterrupt
            return self._con.execute(sql, *args)

    monkeypatch.setattr(api, "open_file", lambda *a, **k: NoCheckpoint(real_open(*a, **k)))
    try:
        out = api.engine(path, tests=False)
    except KeyboardInterrupt:  # not raised through pytest, which would stop the session
        pytest.fail("Ctrl-C in the checkpoint after COMMIT was raised as an interrupted run")
    assert seen and out.pairs == 3000
    assert counts(path)["engine_fits"] == 3000


def test_engine_tests_are_wired_to_the_right_events(panel: Path) -> None:
    """engine_tests rows belong to the pairs' event_id: t_cs recomputed from engine_car."""
    con = duckdb.connect(str(panel))
    con.execute("BEGIN")
    run = market_model(con, returns_table="returns", pairs_table="pairs",
                       car_windows=((0, 0), (-1, 1)))
    n_events = con.execute("SELECT count(DISTINCT event_id) FROM pairs").fetchall()[0][0]
    assert run.test_rows == n_events * 2 * 7
    rows = con.execute("""
        WITH c AS (
            SELECT p.event_id, c.window_start, count(*) AS n,
                   sqrt(count(*)) * avg(c.car) / stddev_samp(c.car) AS t
            FROM engine_car c JOIN pairs p USING (pair_id)
            WHERE c.status = 'ok' GROUP BY ALL HAVING count(*) >= 2)
        SELECT c.event_id, c.window_start, c.n, c.t, e.n, e.statistic
        FROM c JOIN engine_tests e ON e.event_id = c.event_id
             AND e.window_start = c.window_start AND e.test = 't_cs'
    """).fetchall()
    con.execute("ROLLBACK")
    con.close()
    assert len(rows) > 100
    for _ev, _w, n, t, n_e, t_e in rows:
        assert n == n_e
        assert abs(t - t_e) <= 1e-9 * max(1.0, abs(t))


def test_readme_whole_market_commands_run_as_written(tmp_path: Path) -> None:
    """The README's panel + `impact engine` lines, run as written (in a scratch folder)."""
    readme = (ROOT / "README.md").read_text()
    lines = [ln.split("#")[0].strip() for ln in readme.splitlines()
             if ln.startswith((".venv/bin/python benchmarks/panel.py", ".venv/bin/impact engine"))]
    assert len(lines) == 2, lines
    bindir = str(Path(sys.executable).parent)
    for line in lines:
        cmd = line.replace(".venv/bin/", bindir + "/").replace(
            "benchmarks/", str(ROOT / "benchmarks") + "/")
        res = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 0, (line, res.stderr)
    assert "100,000 pairs" in res.stdout
    got = counts(tmp_path / "panel.duckdb")
    assert got["engine_fits"] == 100_000 and got["engine_car"] == 500_000


def test_exclusions_table_from_the_command_line(panel: Path, tmp_path: Path) -> None:
    """--exclusions leaves other events' windows out: the same fits as the SQL form."""
    db = tmp_path / "panel.duckdb"
    db.write_bytes(panel.read_bytes())
    con = duckdb.connect(str(db))
    con.execute((ROOT / "docs/engine-exclusions.sql").read_text())
    con.close()
    res = CliRunner().invoke(main, ["engine", "--db", str(db), "--exclusions", "exclusions",
                                    "--no-tests", "--car", "0,1"])
    assert res.exit_code == 0, res.output
    con = duckdb.connect(str(db))
    n_ex = con.sql("SELECT count(DISTINCT pair_id) FROM exclusions").fetchall()[0][0]
    assert n_ex > 1000  # most pairs have another event of the same security nearby
    cli = con.sql("SELECT pair_id, status, nobs, alpha, beta, sigma FROM engine_fits "
                  "ORDER BY pair_id").fetchall()
    cli_car = con.sql("SELECT pair_id, car, var_car FROM engine_car ORDER BY pair_id").fetchall()
    con.execute("BEGIN")
    market_model_sql(con, returns_table="returns", pairs_table="pairs",
                     car_windows=((0, 1),), exclusions_table="exclusions")
    sql = con.sql("SELECT pair_id, status, nobs, alpha, beta, sigma FROM engine_fits "
                  "ORDER BY pair_id").fetchall()
    sql_car = con.sql("SELECT pair_id, car, var_car FROM engine_car ORDER BY pair_id").fetchall()
    market_model(con, returns_table="returns", pairs_table="pairs", tests=False,
                 car_windows=((0, 1),))
    plain = con.sql("SELECT nobs FROM engine_fits ORDER BY pair_id").fetchall()
    # the tests get the exclusions too (their residuals: tests/test_engine_tests.py)
    seen: list[object] = []
    real = et.event_tests

    def spy(p: et.PanelArrays, **kw: object) -> object:
        seen.append(p.exclusions)
        return real(p, **kw)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(et, "event_tests", spy)
        market_model(con, returns_table="returns", pairs_table="pairs", car_windows=((0, 0),),
                     exclusions_table="exclusions")
    con.execute("ROLLBACK")
    assert len(seen) == 1 and isinstance(seen[0], Exclusions)
    assert len(np.unique(seen[0].pair)) == n_ex
    con.close()
    assert sum(a[2] < b[0] for a, b in zip(cli, plain, strict=True)) > 1000
    for a, b in zip(cli, sql, strict=True):
        assert a[:3] == b[:3]
        for x, y in zip(a[3:], b[3:], strict=True):
            assert (x is None and y is None) or abs(x - y) <= 1e-9 * abs(y)
    for a, b in zip(cli_car, sql_car, strict=True):
        for x, y in zip(a[1:], b[1:], strict=True):
            assert (x is None and y is None) or abs(x - y) <= 1e-9 * max(abs(y), 1e-12)


def test_exclusions_table_errors(panel: Path, tmp_path: Path) -> None:
    db = tmp_path / "panel.duckdb"
    db.write_bytes(panel.read_bytes())
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE bad AS SELECT 999999 AS pair_id, -20 AS rel_lo, -15 AS rel_hi")
    con.close()
    before = counts(db)
    for table, message in (("nope", "has no table 'nope': name it with --exclusions"),
                           ("bad", "1 rows of bad name a pair_id that is not in pairs")):
        res = CliRunner().invoke(main, ["engine", "--db", str(db), "--exclusions", table,
                                        "--no-tests"])
        assert res.exit_code == 3, res.output
        assert message in res.output
        assert counts(db) == before


@pytest.mark.parametrize("form", ["dense", "sql"])
def test_engine_tables_are_documented_in_the_file(panel: Path, tmp_path: Path, form: str
                                                  ) -> None:
    """A user opening the file with the duckdb CLI finds every engine table and column
    commented (COMMENT ON), for both forms."""
    path = tmp_path / "panel.duckdb"
    path.write_bytes(panel.read_bytes())
    con = duckdb.connect(str(path))
    con.execute("BEGIN")
    if form == "dense":  # engine_ar and engine_car are views over arrays
        market_model(con, returns_table="returns", pairs_table="pairs")
        want = {"engine_fits", "engine_ar", "engine_car", "engine_tests", "engine_ar_data",
                "engine_car_data"}
    else:
        market_model_sql(con, returns_table="returns", pairs_table="pairs")
        want = {"engine_fits", "engine_ar", "engine_car"}
    con.execute("COMMIT")
    tables = dict(con.execute("SELECT table_name, comment FROM duckdb_tables() "
                              "WHERE table_name LIKE 'engine_%' UNION ALL "
                              "SELECT view_name, comment FROM duckdb_views() "
                              "WHERE view_name LIKE 'engine_%'").fetchall())
    assert set(tables) == want, tables  # nothing stale from the other form
    assert want <= set(tables), tables
    assert all(tables[t] and "impact engine" in tables[t] for t in want), tables
    cols = con.execute("SELECT table_name, column_name, comment FROM duckdb_columns() "
                       "WHERE table_name LIKE 'engine_%'").fetchall()
    con.close()
    missing = [(t, c) for t, c, comment in cols if t in want and not comment]
    assert not missing, missing
    assert {t for t, _, _ in cols} >= want


def test_sql_form_drops_stale_tests_and_comments_only_its_own_database(panel: Path,
                                                                       tmp_path: Path) -> None:
    path = tmp_path / "panel.duckdb"
    path.write_bytes(panel.read_bytes())
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as o:  # an engine table in another attached database
        o.execute("CREATE TABLE engine_car AS SELECT 1 AS x")
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE engine_tests AS SELECT 1 AS stale")
    con.execute(f"ATTACH '{other}' AS other")
    con.execute("BEGIN")
    market_model_sql(con, returns_table="returns", pairs_table="pairs")
    con.execute("COMMIT")
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                       "WHERE database_name = current_database()").fetchall()}
    other_comment = con.execute("SELECT comment FROM duckdb_tables() "
                                "WHERE database_name = 'other'").fetchall()
    con.close()
    assert "engine_tests" not in names and "engine_car" in names
    assert other_comment == [(None,)]


def test_runs_in_another_schema_leave_main_alone(panel: Path, tmp_path: Path) -> None:
    """Each form replaces only the current schema's engine objects: a run in schema s
    must not drop main's engine_ar_data (the view engine_ar in main reads it)."""
    path = tmp_path / "panel.duckdb"
    path.write_bytes(panel.read_bytes())
    con = duckdb.connect(str(path))
    market_model(con, returns_table="returns", pairs_table="pairs")
    want = con.sql("SELECT count(*), sum(ar) FROM engine_ar").fetchall()
    n_tests = con.sql("SELECT count(*) FROM engine_tests").fetchall()
    con.execute("CREATE SCHEMA s")
    con.execute("CREATE TABLE s.returns AS SELECT * FROM returns WHERE ticker < 'M'")
    con.execute("CREATE TABLE s.pairs AS SELECT * FROM pairs WHERE pair_id < 500")
    con.execute("USE s")
    for run in (market_model_sql, market_model, market_model_sql, market_model):
        run(con, returns_table="returns", pairs_table="pairs")
        assert con.sql("SELECT count(*), sum(ar) FROM main.engine_ar").fetchall() == want
        assert con.sql("SELECT count(*) FROM main.engine_tests").fetchall() == n_tests
    assert con.sql("SELECT count(DISTINCT pair_id) FROM engine_ar").fetchall()[0][0] < 500
    con.execute("USE main")
    assert con.sql("SELECT count(*), sum(ar) FROM engine_ar").fetchall() == want
    con.close()


def test_duckdb_cli_reads_the_engine_comments(panel: Path, tmp_path: Path) -> None:
    """docs/engine.md: the duckdb command-line client (1.x) opens the README's panel and
    shows the engine tables' comments."""
    cli = Path(sys.executable).parent / "duckdb"
    if not cli.exists():
        pytest.skip("the duckdb CLI is not installed (pip install duckdb-cli)")
    path = tmp_path / "panel.duckdb"
    path.write_bytes(panel.read_bytes())
    res = CliRunner().invoke(main, ["engine", "--db", str(path), "--no-tests"])
    assert res.exit_code == 0, res.output
    out = subprocess.run([str(cli), "-readonly", str(path), "-c",
                          "SELECT table_name, comment FROM duckdb_tables() UNION ALL "
                          "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "engine_car" in out and "impact engine: cumulative abnormal returns" in out
    assert "engine_ar_data" in out
    rows = subprocess.run([str(cli), "-readonly", "-csv", str(path), "-c",
                           "SELECT count(*), count(ar), sum(var_ar) > 0 FROM engine_ar; "
                           "SELECT count(*), count(t) FROM engine_car"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    con = duckdb.connect(str(path), read_only=True)  # the views read the same in the CLI
    want = [con.sql("SELECT count(*), count(ar), sum(var_ar) > 0 FROM engine_ar").fetchall(),
            con.sql("SELECT count(*), count(t) FROM engine_car").fetchall()]
    con.close()
    lines = [ln for ln in rows.splitlines() if ln and ln[0].isdigit()]
    assert lines == [",".join(str(v).lower() for v in w[0]) for w in want], (rows, want)
    assert "synthetic daily returns" in out and "synthetic event-security pairs" in out


def test_duckdb_cli_makes_t_at_odd_variances(tmp_path: Path) -> None:
    """engine_car's t (made by the view) reads the same in the duckdb CLI (1.x), whose
    sqrt raises on a negative number, as in Python's duckdb: +-inf at a zero variance,
    NULL at a negative or NaN one."""
    cli = Path(sys.executable).parent / "duckdb"
    if not cli.exists():
        pytest.skip("the duckdb CLI is not installed (pip install duckdb-cli)")
    path = tmp_path / "odd.duckdb"
    con = duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_COMPATIBILITY})
    con.execute("""
        CREATE TABLE engine_car_data AS
        SELECT i::BIGINT AS pair_id, 200::BIGINT AS df, [256 + i * 16 + 1]::INTEGER[1] AS code,
               [c]::DOUBLE[1] AS car, [v]::DOUBLE[1] AS var_car
        FROM (VALUES (0, 0.05, 0.0), (1, -0.05, 0.0), (2, 0.05, -1e-20), (3, 0.0, 0.0),
                     (4, 0.02, 'NaN'::DOUBLE), (5, 0.0123, 3.7e-4)) v(i, c, v)""")
    con.execute(car_view([(0, 0)]))
    want = [r[0] for r in con.execute("SELECT t FROM engine_car ORDER BY pair_id").fetchall()]
    con.close()
    assert want[:5] == [np.inf, -np.inf, None, None, None]
    out = subprocess.run([str(cli), "-readonly", "-csv", "-noheader", str(path), "-c",
                          "SELECT t FROM engine_car ORDER BY pair_id"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    got = [None if x.strip() in ("", "NULL") else float(x) for x in lines]
    assert got == want, (out, want)
    # and the packed n_days, status and reason (code = n_days * 256 + reason * 16 + status)
    out = subprocess.run([str(cli), "-readonly", "-csv", "-noheader", str(path), "-c",
                          "SELECT n_days, status, reason FROM engine_car ORDER BY pair_id"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.splitlines() == ["1,incomplete,", "1,incomplete,no_session",
                                "1,incomplete,gap", "1,incomplete,insufficient",
                                "1,incomplete,collinear", "1,incomplete,no_data"], out
