"""The commands the README shows, through click's CliRunner."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from impact.cli import main
from tests.conftest import ROOT, STUDY


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    for name, cmd in main.commands.items():
        res = runner.invoke(main, [name, "--help"])
        assert res.exit_code == 0, name
        assert cmd.help and len(cmd.help) > 20, name
        assert f"`impact {name}" in readme, f"'impact {name}' is not documented in the README"


def test_readme_commands_parse() -> None:
    """Every `impact ...` line in the README's sh blocks names a real command."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.splitlines()]
    cmds = [ln.split()[1] for ln in lines if ln.startswith(".venv/bin/impact ")]
    assert cmds, "no impact command found in the README"
    for c in cmds:
        assert c in main.commands, c
    assert "make run" in lines and "make test" in lines


def test_validate_and_day0() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["validate", str(STUDY)])
    assert res.exit_code == 0, res.output
    assert "ok: 19 events, 3 securities, 4 benchmarks" in res.output
    res = runner.invoke(main, ["day0", str(STUDY)])
    assert res.exit_code == 0, res.output
    rows = {ln.split("\t")[0]: ln.split("\t") for ln in res.output.splitlines()}
    assert rows["event_id"][2:] == ["XKRX", "XNYS"]
    assert rows["deepseek-app-store"][2:] == ["2025-01-31", "2025-01-27"]
    assert rows["deepseek-r1-release"][2:] == ["2025-01-20", "2025-01-21"]


def test_run_then_report(tmp_path: Path, prices_dir: Path, deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "impact.duckdb"
    shutil.copy(deepseek_run.db, db)
    runner = CliRunner()
    res = runner.invoke(main, ["run", str(STUDY), "--db", str(db), "--prices-dir",
                               str(prices_dir), "--reports-dir", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "run 2 of study 'deepseek' stored" in res.stdout
    assert "... estimating" in res.stderr  # progress goes to stderr
    # the Korean securities have a fourth model (market+us): 3 events x (3 + 4 + 4) fits
    assert "3 events x 3 securities: 33 fits of 4 models" in res.stderr
    cmd = duckdb.connect(str(db), read_only=True).execute(
        "SELECT command FROM runs WHERE run_id = 2").fetchone()
    assert cmd is not None
    md = tmp_path / "r" / "deepseek" / "report.md"
    first = md.read_text()
    md.unlink()
    res = runner.invoke(main, ["report", "2", "--db", str(db), "--reports-dir",
                               str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    # the re-rendered report equals the one written by the run
    assert md.read_text() == first


def test_report_of_unknown_run_fails_cleanly(tmp_path: Path, deepseek_run) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "impact.duckdb"
    shutil.copy(deepseek_run.db, db)
    res = CliRunner().invoke(main, ["report", "99", "--db", str(db), "--reports-dir",
                                    str(tmp_path / "r")])
    assert res.exit_code == 4
    assert "error: there is no run 99" in res.stderr
    assert not (tmp_path / "r" / "deepseek").exists()
    res = CliRunner().invoke(main, ["report", "1", "--db", str(tmp_path / "none.duckdb")])
    assert res.exit_code != 0 and "no database" in res.output
    assert not (tmp_path / "none.duckdb").exists()


def test_readme_python_example_runs(tmp_path: Path, prices_dir: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (tmp_path / "events").symlink_to(ROOT / "events")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMPACT_PRICES_DIR", str(prices_dir))
    exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "impact.duckdb").exists()
    assert (tmp_path / "reports" / "deepseek" / "report.md").exists()
