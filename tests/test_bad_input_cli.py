"""Bad input through the CLI: one ``error:`` line, the documented exit code, the database intact.

Each case runs ``impact run STUDY --db DB --prices-dir DIR --reports-dir R`` with one
thing wrong, once against a database that does not exist yet and once against a
database that already holds a successful run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from impact.cli import main
from impact.errors import CatalogError, DataError, ExitCode, InputError, PriceFileError
from tests.conftest import PRICES

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "events" / "deepseek.toml"
SHARED = PRICES  # ../shared/data/prices beside the checkout
#: The files the deepseek study reads (tickers of its securities and benchmarks).
NEEDED = ("NVDA.csv", "000660.KS.csv", "005930.KS.csv", "GSPC.csv", "KS11.csv", "IXIC.csv",
          "SOXX.csv", "dividends.csv")

pytestmark = pytest.mark.skipif(
    not all((SHARED / name).is_file() for name in NEEDED),
    reason="the shared price snapshot is not available",
)


# --------------------------------------------------------------------------- helpers


def run_cli(study: Path, db: Path, prices_dir: Path, reports: Path) -> Result:
    return CliRunner().invoke(
        main,
        ["run", str(study), "--db", str(db), "--prices-dir", str(prices_dir),
         "--reports-dir", str(reports)],
    )


def edited_study(tmp_path: Path, old: str, new: str) -> Path:
    text = STUDY.read_text(encoding="utf-8")
    assert old in text, f"the test's anchor {old!r} is no longer in events/deepseek.toml"
    path = tmp_path / "study.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def copy_snapshot(tmp_path: Path, edit: Callable[[str, list[str]], list[str]]) -> Path:
    """A snapshot directory with the study's files, each passed through ``edit``.

    ``edit(file_name, lines)`` returns the lines to write (the header included).
    """
    d = tmp_path / "prices"
    d.mkdir()
    for name in NEEDED:
        lines = (SHARED / name).read_text(encoding="utf-8").splitlines()
        (d / name).write_text("\n".join(edit(name, lines)) + "\n", encoding="utf-8")
    return d


def db_state(db: Path) -> tuple[dict[str, int], list[int]]:
    """Row counts of every table and the run ids."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "ORDER BY table_name").fetchall()]
        counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        run_ids = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
    finally:
        con.close()
    return counts, run_ids


def error_lines(result: Result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


# --------------------------------------------------------------------------- the bad inputs


@dataclass(frozen=True)
class Case:
    """One bad input: how to build it, the error class and what the message must say."""

    make: Callable[[Path], tuple[Path, Path]]  # tmp_path -> (study, prices_dir)
    error: type[Exception]
    exit_code: ExitCode
    says: tuple[str, ...]


def _no_tz(tmp_path: Path) -> tuple[Path, Path]:
    study = edited_study(
        tmp_path,
        'id = "deepseek-r1-release"\ndate = 2025-01-20\ntz = "Asia/Shanghai"\n',
        'id = "deepseek-r1-release"\ndate = 2025-01-20\n',
    )
    return study, SHARED


def _unknown_ticker(tmp_path: Path) -> tuple[Path, Path]:
    return edited_study(tmp_path, 'ticker = "NVDA"', 'ticker = "NVDX"'), SHARED


def _short_history(tmp_path: Path) -> tuple[Path, Path]:
    def edit(name: str, lines: list[str]) -> list[str]:
        if name != "NVDA.csv":
            return lines
        return [lines[0], *(row for row in lines[1:] if row[:10] >= "2024-10-01")]

    prices = copy_snapshot(tmp_path, edit)
    first = (prices / "NVDA.csv").read_text(encoding="utf-8").splitlines()[1]
    assert first.startswith("2024-10-01,")
    return STUDY, prices


def _missing_column(tmp_path: Path) -> tuple[Path, Path]:
    def edit(name: str, lines: list[str]) -> list[str]:
        if name != "NVDA.csv":
            return lines
        assert lines[0] == "date,open,high,low,close,adj_close,volume"
        out = []
        for line in lines:
            cells = line.split(",")
            del cells[5]  # adj_close
            out.append(",".join(cells))
        return out

    return STUDY, copy_snapshot(tmp_path, edit)


def _key_typo(tmp_path: Path) -> tuple[Path, Path]:
    study = edited_study(
        tmp_path, 'title = "Nvidia rebounds +8.93%"', 'titel = "Nvidia rebounds +8.93%"')
    return study, SHARED


CASES = {
    "event-without-tz": Case(
        _no_tz, CatalogError, ExitCode.INPUT,
        ("study.toml:", "event 'deepseek-r1-release'", "field 'tz'", "no time zone",
         "add tz =")),
    "unknown-ticker": Case(
        _unknown_ticker, InputError, ExitCode.INPUT,
        ("unknown ticker 'NVDX'", "has no NVDX.csv", "NVDA")),
    "too-little-history": Case(
        _short_history, DataError, ExitCode.DATA,
        ("'NVDA' has too little history", "estimation window [-250, -11]",
         "its returns start on 2024-10-0", "shorten [study.windows] estimation")),
    "missing-column": Case(
        _missing_column, PriceFileError, ExitCode.INPUT,
        ("NVDA.csv:1:", "lacks column(s) adj_close",
         "the header must be date,open,high,low,close,adj_close,volume")),
    "key-typo": Case(
        _key_typo, CatalogError, ExitCode.INPUT,
        ("study.toml:", "event 'nvda-rebounds-2025-01-28'", "unknown key 'titel'",
         "did you mean 'title'?")),
}


def test_exit_codes_are_the_documented_ones() -> None:
    assert ExitCode.INPUT == 3 and ExitCode.DATA == 4
    for case in CASES.values():
        assert case.error.exit_code == case.exit_code  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the good database


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int], list[int]]:
    """A database holding one successful run of the real study."""
    d = tmp_path_factory.mktemp("good")
    db = d / "good.duckdb"
    result = run_cli(STUDY, db, SHARED, d / "reports")
    assert result.exit_code == 0, result.output
    assert "run 1 of study 'deepseek' stored in" in result.output
    counts, run_ids = db_state(db)
    assert run_ids == [1]
    assert counts["runs"] == 1 and counts["car"] > 0 and counts["prices"] > 0
    return db, counts, run_ids


# --------------------------------------------------------------------------- the tests


def check_failure(result: Result, case: Case) -> str:
    assert result.exit_code != 0
    assert result.exit_code == int(case.exit_code), result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = error_lines(result)
    assert len(errors) == 1, result.output
    for text in case.says:
        assert text in errors[0], f"{text!r} not in {errors[0]!r}"
    # the error line goes to stderr, not to stdout
    assert not any(line.startswith("error: ") for line in result.stdout.splitlines())
    assert "stored in" not in result.output
    return errors[0]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_does_not_create_the_database(name: str, tmp_path: Path) -> None:
    case = CASES[name]
    study, prices = case.make(tmp_path)
    db = tmp_path / "new.duckdb"
    reports = tmp_path / "reports"
    result = run_cli(study, db, prices, reports)
    check_failure(result, case)
    assert not db.exists()
    assert not db.with_name(db.name + ".wal").exists()
    assert not (reports / "deepseek").exists()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_leaves_the_database_as_it_was(
    name: str, tmp_path: Path, good_db: tuple[Path, dict[str, int], list[int]]
) -> None:
    case = CASES[name]
    source, counts, run_ids = good_db
    db = tmp_path / "impact.duckdb"
    shutil.copy(source, db)
    study, prices = case.make(tmp_path)
    result = run_cli(study, db, prices, tmp_path / "reports")
    check_failure(result, case)
    assert db_state(db) == (counts, run_ids)
