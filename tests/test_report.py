"""The report: golden Markdown, numbers equal to the database, safe and self-contained HTML."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from impact.cli import main
from tests.conftest import ROOT, STUDY

GOLDEN = ROOT / "tests" / "golden" / "deepseek_report.md"


def normalize(text: str) -> str:
    """Mask what legitimately differs between machines and runs."""
    text = re.sub(r"snapshot:[^`]*", "snapshot:<prices>", text)
    text = re.sub(r"computed \d{4}-\d\d-\d\d \d\d:\d\d UTC", "computed <time> UTC", text)
    text = re.sub(r"- Command: .*", "- Command: <command>", text)
    return re.sub(r"- Packages: .*", "- Packages: <versions>", text)


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("LANG", "C.UTF-8")


def render(db: Path, out: Path, *args: str) -> CliRunner:
    res = CliRunner().invoke(main, ["report", "1", "--db", str(db), "--out", str(out), *args])
    assert res.exit_code == 0, res.output
    return res  # type: ignore[return-value]


def test_report_md_matches_the_golden_file(deepseek_run, tmp_path: Path, pinned: None) -> None:  # type: ignore[no-untyped-def]
    render(deepseek_run.db, tmp_path / "r", "--format", "md")
    got = normalize((tmp_path / "r" / "report.md").read_text(encoding="utf-8"))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(got, encoding="utf-8")
    assert got == GOLDEN.read_text(encoding="utf-8"), (
        "report.md changed: review the difference, then regenerate with "
        "UPDATE_GOLDEN=1 pytest tests/test_report.py")
    assert not (tmp_path / "r" / "report.html").exists()  # --format md only


def test_sections_come_in_the_documented_order(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    text = deepseek_run.report.markdown.read_text(encoding="utf-8")
    order = ["## Event timeline", "## Securities", "## Tests across securities",
             "## Figures", "## Benchmark sensitivity", "## Data", "## Reproducibility"]
    pos = [text.index(h) for h in order]
    assert pos == sorted(pos)
    assert text.index("**") < pos[0]  # the headline comes first


def test_headline_numbers_equal_the_database(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    text = deepseek_run.report.markdown.read_text(encoding="utf-8")
    headline = text.split("\n\n")[1]
    con = duckdb.connect(str(deepseek_run.db), read_only=True)
    rows = con.execute("SELECT ticker, date, ret, ar, t FROM abnormal_returns WHERE run_id = 1 "
                       "AND event_id = 'deepseek-app-store' AND model = 'market' "
                       "AND rel_day = 0").fetchall()
    robust = con.execute("SELECT label, statistic, p FROM tests WHERE run_id = 1 AND "
                         "event_id = 'deepseek-app-store' AND model = 'market' AND "
                         "group_name = 'XKRX' AND test = 'kp_bmp' AND window_start = 0 "
                         "AND window_end = 0").fetchall()
    con.close()
    assert len(rows) == 3
    for ticker, day, ret, ar, t in rows:
        sentence = next(s for s in headline.split("; ") if ticker in s)
        verb = "fell" if ret < 0 else "rose"
        assert f"{verb} {abs(ret) * 100:.2f}% on its day 0, {day}" in sentence
        assert f"of which {ar * 100:+.2f}% was abnormal" in sentence
        assert f"(t = {t:.2f}," in sentence
    # the published facts, as printed
    assert "fell 16.97% on its day 0, 2025-01-27" in headline
    assert "fell 9.86% on its day 0, 2025-01-31" in headline
    assert "fell 2.42% on its day 0, 2025-01-31" in headline
    (label, stat, p), = robust
    robust_par = text.split("\n\n")[2]
    assert "share day 0" in robust_par and "clustering-robust" in robust_par
    assert f"{label} t = {stat:.2f}" in robust_par
    assert ("p < 0.0001" if p < 1e-4 else f"p = {p:.4f}") in robust_par


def test_html_is_self_contained(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    html = deepseek_run.report.html.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert 'src="figures/' not in html and "http://" not in html and "https://" not in html
    n_figs = len(re.findall(r"!\[", deepseek_run.report.markdown.read_text()))
    assert html.count('src="data:image/png;base64,') == n_figs == 4
    assert "SK하이닉스" in html and "삼성전자" in html
    for fig in deepseek_run.report.figures:
        assert fig.stat().st_size > 10_000
        assert fig.with_suffix(".svg").stat().st_size > 10_000


def test_text_from_outside_is_escaped(tmp_path: Path, prices_dir: Path) -> None:
    bad = '<script>alert(1)</script> [click](javascript:alert(2)) <img src=x onerror=alert(3)>'
    text = STUDY.read_text(encoding="utf-8").replace(
        'attributes = "deepseek_attributes.csv"',
        f'attributes = "{STUDY.parent / "deepseek_attributes.csv"}"').replace(
        'title = "US tariff news hits markets"', f"title = '{bad}'")
    assert bad in text
    study = tmp_path / "evil.toml"
    study.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(main, ["run", str(study), "--db", str(tmp_path / "x.duckdb"),
                                    "--prices-dir", str(prices_dir), "--reports-dir",
                                    str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r" / "deepseek" / "report.html").read_text(encoding="utf-8")
    md = (tmp_path / "r" / "deepseek" / "report.md").read_text(encoding="utf-8")
    assert "<script" not in html and "<img src=x" not in html
    assert 'href="javascript:' not in html and "javascript:alert(2)" in html  # shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in md and "&lt;script&gt;" in md


def test_unknown_run_or_study_writes_nothing(deepseek_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    for target, message in (("99", "there is no run 99"),
                            ("nostudy", "there is no run of a study named 'nostudy'")):
        res = CliRunner().invoke(main, ["report", target, "--db", str(deepseek_run.db),
                                        "--out", str(out)])
        assert res.exit_code == 4, res.output
        assert message in res.stderr and "Traceback" not in res.output
        assert not out.exists()


def test_run_without_results_writes_nothing(deepseek_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "x.duckdb"
    shutil.copy(deepseek_run.db, db)
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO runs SELECT 2, created_at, study, study_file, params, "
                "impact_version, price_source, inputs_hash, notes, command FROM runs "
                "WHERE run_id = 1")
    con.close()
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["report", "2", "--db", str(db), "--out", str(out)])
    assert res.exit_code == 4
    assert "run 2 has no results to report" in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True,
                          timeout=120)


def test_html_renders_in_headless_chromium(deepseek_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (CI installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from PIL import Image

    page = deepseek_run.report.html.as_uri()
    shot = tmp_path / "report.png"
    profile = tmp_path / "profile"
    res = _chromium(f"--user-data-dir={profile}", f"--screenshot={shot}",
                    "--window-size=1280,2200", page)
    assert shot.exists(), res.stderr[-2000:]
    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100  # not blank: dark text on a light page
    assert len(img.resize((64, 64)).getcolors(maxcolors=4096) or []) > 10
    dom = _chromium(f"--user-data-dir={profile}-dom", "--dump-dom", page).stdout
    for number in ("16.97%", "9.86%", "2.42%", "2025-01-27", "2025-01-31"):
        assert number in dom, number


def test_html_carries_a_hangul_font_subset(deepseek_run) -> None:  # type: ignore[no-untyped-def]
    """Readers' machines may lack a Korean font: the page embeds the glyphs it uses."""
    import base64
    import io

    from fontTools.ttLib import TTFont

    html = deepseek_run.report.html.read_text(encoding="utf-8")
    m = re.search(r"font-family: 'ImpactHangul'; src: url\(data:font/ttf;base64,([^)]+)\)",
                  html)
    assert m is not None
    font = TTFont(io.BytesIO(base64.b64decode(m.group(1))))
    cmap = font.getBestCmap()
    for ch in "SK하이닉스삼성전자":
        if "\uac00" <= ch <= "\ud7a3":
            assert ord(ch) in cmap, ch
    assert len(m.group(1)) < 100_000  # a subset, not the whole font


def test_report_by_study_name_html_only(deepseek_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "deepseek-report"
    res = CliRunner().invoke(main, ["report", "deepseek", "--db", str(deepseek_run.db),
                                    "--format", "html", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").exists() and not (out / "report.md").exists()
    assert sorted(p.suffix for p in (out / "figures").iterdir()) == [".png"] * 4 + [".svg"] * 4
    bad = CliRunner().invoke(main, ["report", "deepseek", "--db", str(deepseek_run.db),
                                    "--format", "pdf", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 4 and "unknown report format" in bad.stderr
    assert not (tmp_path / "x").exists()
