"""The Markdown report of a run, rendered from the database (no recomputation).

Everything shown is read back from the tables of :mod:`impact.storage` for one
``run_id``, so the report and the database always agree. Files are written to
a temporary folder and moved into place at the end: a failed render leaves the
previous report as it was.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl

from impact import plots
from impact.calendars import exchange_tz, sessions
from impact.errors import DataError, OutputError

_EXCHANGE_LABEL = {"XNYS": "NYSE/Nasdaq", "XKRX": "KRX"}

#: Report formats written by default.
FORMATS: tuple[str, ...] = ("md", "html")

_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
{{ font_face | safe }}
body { font-family: "Noto Sans", "Helvetica Neue", Arial, "DejaVu Sans", "ImpactHangul",
       "Apple SD Gothic Neo", "Malgun Gothic", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; }
code { background: #f5f5f5; padding: 0 .2em; }
</style>
</head>
<body>
{{ body | safe }}
</body>
</html>
"""


def to_html(markdown_text: str, folder: Path, title: str) -> str:
    """A self-contained HTML page from the report's Markdown.

    The figures the Markdown references (``figures/*.png``) are embedded as data
    URIs, so the page needs no other file and no network. Text from outside was
    made inert when the Markdown was written (:func:`_md`), and the title is
    escaped by the template.
    """
    import base64
    import re

    import jinja2
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")

    def embed(m: re.Match[str]) -> str:
        path = folder / m.group(1)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="(figures/[A-Za-z0-9_.-]+\.png)"', embed, body)
    env = jinja2.Environment(autoescape=True)
    return env.from_string(_HTML).render(title=title, body=body,
                                         font_face=_embedded_font(markdown_text + title))


def _embedded_font(text: str) -> str:
    """Return an @font-face rule with the Hangul glyphs the page uses, or "" if none.

    Readers' machines often have no Korean font; the page carries a subset of
    NanumGothic (a few kilobytes) as a data URI, so 삼성전자 renders anywhere.
    """
    import base64
    import io

    hangul = sorted({ch for ch in text
                     if "\uac00" <= ch <= "\ud7a3" or "\u3130" <= ch <= "\u318f"})
    if not hangul:
        return ""
    from impact.plots import _bundled_font_files

    regular = [f for f in _bundled_font_files() if f.name == "NanumGothic.ttf"]
    if not regular:
        return ""
    import logging

    from fontTools import subset

    logging.getLogger("fontTools").setLevel(logging.ERROR)

    font = subset.load_font(str(regular[0]), subset.Options())
    sub = subset.Subsetter(subset.Options())
    sub.populate(text="".join(hangul))
    sub.subset(font)
    buf = io.BytesIO()
    font.save(buf)
    font.close()
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return ("@font-face { font-family: 'ImpactHangul'; "
            f"src: url(data:font/ttf;base64,{data}) format('truetype'); }}")


@dataclass(frozen=True)
class ReportFiles:
    """Where a report was written."""

    directory: Path
    markdown: Path
    figures: tuple[Path, ...]
    html: Path | None = None


def _q(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None
       ) -> pl.DataFrame:
    frame: pl.DataFrame = con.sql(sql, params=params or None).pl()
    return frame


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:+.{digits}f}%"


def _pct_abs(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:.{digits}f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _p(x: float | None) -> str:
    if x is None:
        return "n/a"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}"


def _p_eq(x: float | None) -> str:
    """'p = 0.0123' or 'p < 0.0001' for running text."""
    if x is None:
        return "p n/a"
    return "p < 0.0001" if x < 1e-4 else f"p = {x:.4f}"


def _sq_eq(p: float | None, n: int | None) -> str:
    """'= 0.012' or '< 1/225' for running text."""
    text = _sq(p, n)
    return text.replace("<", "< ") if text.startswith("<") else f"= {text}"


def _sq(p: float | None, n: int | None) -> str:
    if p is None:
        return "n/a"
    if p == 0 and n:
        return f"<1/{n}"
    return f"{p:.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


_MD_ESCAPES = str.maketrans({
    "\\": "\\\\", "`": "\\`", "*": "\\*", "_": "\\_", "[": "\\[", "]": "\\]",
    "|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " ",
})


def _md(text: str) -> str:
    """Text from outside (titles, sources, names) made inert in Markdown and HTML.

    Markdown syntax that could form links, images, code or emphasis is escaped
    with backslashes, and ``<``, ``>``, ``&`` become entities, so a title such as
    ``<script>`` or ``[x](javascript:...)`` shows as text in both report.md and
    report.html.
    """
    return text.translate(_MD_ESCAPES)


class StagedReport:
    """A report written to a temporary folder beside its destination.

    :meth:`commit` swaps it into place (the previous report is restored if the
    swap fails); :meth:`discard` removes it. ``impact run`` stages the report
    inside the database transaction and commits it only after the run is stored.
    """

    def __init__(self, tmp: Path, out: Path, figures: tuple[str, ...], *,
                 markdown_name: str = "report.md") -> None:
        self.tmp = tmp
        self.out = out
        self.figure_names = figures
        self.markdown_name = markdown_name

    def commit(self) -> ReportFiles:
        """Move the staged report into place."""
        out, backup = self.out, self.out.with_name(f".{self.out.name}.old")
        try:
            if backup.exists():
                shutil.rmtree(backup)
            if out.exists():
                out.rename(backup)
            try:
                self.tmp.rename(out)
            except OSError:
                if backup.exists() and not out.exists():
                    backup.rename(out)
                raise
            if backup.exists():
                shutil.rmtree(backup)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write the report to {out}: {exc}") from None
        html = out / self.markdown_name.replace(".md", ".html")
        return ReportFiles(directory=out, markdown=out / self.markdown_name,
                           figures=tuple(out / "figures" / f for f in self.figure_names),
                           html=html if html.exists() else None)

    def discard(self) -> None:
        """Remove the staged files."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def stage_report(con: duckdb.DuckDBPyConnection, run_id: int, out_dir: str | Path,
                 formats: tuple[str, ...] = FORMATS) -> StagedReport:
    """Render a stored run's report into a temporary folder beside ``out_dir``.

    ``formats`` is any of ``md`` and ``html``; the figures are always written
    (PNG and SVG).

    Raises
    ------
    DataError
        If the run does not exist or has no results.
    OutputError
        If the folder cannot be written.
    """
    run = _q(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
    if run.height == 0:
        raise DataError(f"there is no run {run_id} in the database")
    r = run.row(0, named=True)
    params = json.loads(r["params"])
    # securities in study-file order, keyed by ticker
    params["securities"] = {d["ticker"]: d for d in params["securities"]}
    notes = json.loads(r["notes"]) if r["notes"] else []
    out = Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write the report to {out}: {exc}") from None
    try:
        figs_dir = tmp / "figures"
        figs_dir.mkdir()
        text, figures = _compose(con, run_id, r, params, notes, params["primary_event"],
                                 figs_dir)
        if "md" in formats:
            (tmp / "report.md").write_text(text, encoding="utf-8")
        if "html" in formats:
            title = f"{params.get('title') or r['study']}: event study report"
            (tmp / "report.html").write_text(to_html(text, tmp, title), encoding="utf-8")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write the report to {out}: {exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StagedReport(tmp, out, tuple(f.name for f in figures))


def render_report(con: duckdb.DuckDBPyConnection, run_id: int, out_dir: str | Path,
                  formats: tuple[str, ...] = FORMATS) -> ReportFiles:
    """Write ``report.md`` and its figures for a stored run.

    Parameters
    ----------
    con
        An open impact database.
    run_id
        The run to render.
    out_dir
        The report folder (e.g. ``reports/deepseek``); replaced as a whole.

    Returns
    -------
    ReportFiles

    Raises
    ------
    DataError
        If the run does not exist or has no results.
    OutputError
        If the folder cannot be written.
    """
    return stage_report(con, run_id, out_dir, formats).commit()


def _compose(con: duckdb.DuckDBPyConnection, run_id: int, r: dict[str, Any],
             params: dict[str, Any], notes: list[str], primary: str, figs_dir: Path,
             ) -> tuple[str, list[Path]]:
    secs = _q(con, "SELECT * FROM securities")
    sec_info = {row["ticker"]: row for row in secs.iter_rows(named=True)}
    tickers = list(params["securities"])
    label = {t: (sec_info[t]["name"] if t in sec_info else t) for t in tickers}
    local = {t: (sec_info[t]["name_local"] or "") if t in sec_info else "" for t in tickers}
    events = _q(con, "SELECT event_id, ts_local, tz, date_only, date_end, title, source, "
                     "category FROM events WHERE study = ? ORDER BY ts", [params["study"]])
    ev_title = {row["event_id"]: row["title"] for row in events.iter_rows(named=True)}
    days = _q(con, "SELECT * FROM event_days WHERE run_id = ?", [run_id])
    exchanges = sorted(days["exchange"].unique().to_list())
    ars = _q(con, "SELECT * FROM abnormal_returns WHERE run_id = ?", [run_id])
    cars = _q(con, "SELECT * FROM car WHERE run_id = ?", [run_id])
    fits = _q(con, "SELECT * FROM model_fits WHERE run_id = ?", [run_id])
    if ars.height == 0 or cars.height == 0:
        raise DataError(f"run {run_id} has no results to report")

    day0 = {(row["event_id"], row["exchange"]): row for row in days.iter_rows(named=True)}
    model = "market" if "market" in params["models"] else params["models"][0]
    nobs = {(row["event_id"], row["ticker"], row["model"]): row["nobs"]
            for row in fits.iter_rows(named=True)}
    main = ars.filter((pl.col("event_id") == primary) & (pl.col("model") == model))
    d0 = {row["ticker"]: row for row in main.filter(pl.col("rel_day") == 0).iter_rows(named=True)}
    wins = [(int(w[0]), int(w[1])) for w in params["windows"]["car"]]

    def name(t: str) -> str:
        return f"{label[t]} ({local[t]}, {t})" if local.get(t) else f"{label[t]} ({t})"

    lines: list[str] = [f"# {_md(params.get('title') or r['study'])}: event study report", ""]

    # --- 1. headline
    parts = []
    for t in tickers:
        row = d0.get(t)
        if row is None or row["ret"] is None:
            continue
        ex = params["securities"][t]["exchange"]
        verb = "fell" if row["ret"] < 0 else "rose"
        parts.append(
            f"{_md(name(t))} {verb} {_pct_abs(abs(row['ret']))} on its day 0, {row['date']} "
            f"({_EXCHANGE_LABEL.get(ex, ex)}), of which {_pct(row['ar'])} was abnormal under "
            f"the {model} model (t = {_num(row['t'])}, {_p_eq(row['p'])}; sample-quantile "
            f"p {_sq_eq(row['sq_p'], nobs.get((primary, t, model)))})")
    headline_title = _md(ev_title.get(primary, primary)).rstrip(".") + "."
    lines += [f"**{headline_title}** " + "; ".join(parts) + ".", ""]
    lines += _robust_headline(con, run_id, primary, model)
    lines += ["Day 0 is the first session of each security's own exchange that closes at or "
              "after the news; relative days count that exchange's sessions. Returns are "
              "simple returns shown as percentages.", ""]

    # --- 2. timeline with day 0 per exchange
    lines += ["## Event timeline", "",
              "Every dated fact of the case, with its day 0 on each exchange (hours from the "
              "news to that session's close). ⚠ marks confounding news; **bold** ids are "
              "the studied events. Date-only events are placed at 12:00 local time.", ""]
    studied = set(params["events"])
    rows = []
    for ev in events.iter_rows(named=True):
        when = ev["ts_local"][:10] + ("" if ev["date_only"] else " " + ev["ts_local"][11:16])
        if ev["date_end"]:
            when += f" .. {ev['date_end']}"
        eid = _md(ev["event_id"])
        eid = f"**{eid}**" if ev["event_id"] in studied else eid
        mark = "⚠ " if ev["category"] == "confounder" else ""
        cells = [f"{when} ({ev['tz']})", eid, ev["category"], mark + _md(ev["title"]),
                 _md(ev["source"])]
        for ex in exchanges:
            a = day0.get((ev["event_id"], ex))
            cells.append("" if a is None else f"{a['day0']} ({a['hours_to_close']:.1f} h)")
        rows.append(cells)
    lines += _table(["when (local)", "event", "category", "what", "source"]
                    + [f"{_EXCHANGE_LABEL.get(e, e)} day 0" for e in exchanges], rows)

    # --- 3. one table per security
    lines += ["## Securities", "",
              "Per security, for the event above: day 0 on its own exchange, the raw return, "
              "the expected return and the abnormal return (AR) under each model, then the "
              "CARs. t is against t(L1 − k) with the forecast-error-corrected variance "
              "Var(CAR) = s² [L + L²/L1 + (Σ_W (R_m − R̄_m))² / S_mm] (market model; 1′V1 "
              "for the others); SQ p is the sample-quantile p-value (share of "
              "estimation-window residual sums at least as extreme in the CAR's direction). "
              "The last column names other studied events whose day 0 falls inside a window.",
              ""]
    for t in tickers:
        ex = params["securities"][t]["exchange"]
        bench = params["securities"][t]["benchmark"]
        ev_ars = ars.filter((pl.col("event_id") == primary) & (pl.col("ticker") == t)
                            & (pl.col("rel_day") == 0))
        if ev_ars.height == 0:
            continue
        first = ev_ars.row(0, named=True)
        lines += [f"### {_md(name(t))}", "",
                  f"Day 0: {first['date']} on {_EXCHANGE_LABEL.get(ex, ex)}; raw return "
                  f"{_pct(first['ret'])}; benchmark {bench} {_pct(first['benchmark_ret'])}; "
                  f"return basis `{first['basis']}`.", ""]
        rows = []
        for row in ev_ars.sort("model").iter_rows(named=True):
            rows.append([row["model"], _pct(row["expected_ret"]), _pct(row["ar"]),
                         _num(row["t"]), _p(row["p"]),
                         _sq(row["sq_p"], nobs.get((primary, t, row["model"])))])
        lines += _table(["model", "expected (day 0)", "AR (day 0)", "t", "p", "SQ p"], rows)
        rows = []
        for row in cars.filter((pl.col("event_id") == primary) & (pl.col("ticker") == t)).sort(
                ["model", "window_start", "window_end"]).iter_rows(named=True):
            win = f"[{row['window_start']:+d}, {row['window_end']:+d}]"
            if row["status"] != "ok":
                rows.append([row["model"], win, "not computed: " + _md(row["reason"] or ""),
                             "", "", "", "", "", ""])
                continue
            rows.append([row["model"], win, _pct(row["car"]), _pct_abs(row["se"]),
                         _num(row["t"]), _p(row["p"]), _sq(row["sq_p"], row["sq_n"]),
                         _pct(row["bhar"]), _md(row["other_events"] or "")])
        lines += _table(["model", "window", "CAR", "s.e.", "t", "p", "SQ p", "BHAR",
                         "other events inside"], rows)

    # --- 4. tests across securities
    lines += _tests_section(con, run_id, primary, model, params)

    # --- 5. figures
    figures = _figures(con, run_id, params, events, tickers, name, primary, days, main,
                       model, figs_dir)
    lines += ["## Figures", ""]
    for fig, caption in figures:
        lines += [f"![{caption}](figures/{fig.name})", "", caption, ""]

    # --- 6. benchmark sensitivity
    lines += _sensitivity_section(con, run_id, wins, name)

    # --- other results
    lines += _cross_section_section(con, run_id)
    others = [e for e in params["events"] if e != primary]
    if others:
        shown = wins[:2]
        names = [f"CAR[{a:+d}, {b:+d}]" for a, b in shown]
        lines += ["## Other studied events", "",
                  f"The {model} model, {' and '.join(names)} on each security's own day 0.",
                  ""]
        rows = []
        for e in others:
            for t in tickers:
                c = {(row["window_start"], row["window_end"]): row for row in cars.filter(
                    (pl.col("event_id") == e) & (pl.col("ticker") == t)
                    & (pl.col("model") == model)).iter_rows(named=True)}
                a = day0.get((e, params["securities"][t]["exchange"]))
                cells = [f"`{e}`", _md(label[t]), str(a["day0"]) if a else ""]
                for cwin in shown:
                    cw = c.get(cwin)
                    if cw is not None and cw["status"] == "ok":
                        cells += [_pct(cw["car"]), _num(cw["t"])]
                    else:
                        cells += ["n/a", ""]
                rows.append(cells)
        header = ["event", "security", "day 0"]
        for n in names:
            header += [n, "t"]
        lines += _table(header, rows)
    lines += ["## Estimation", "",
              f"Estimation window {params['windows']['estimation']} sessions, event window "
              f"{params['windows']['event']}; sessions inside another studied event's window "
              f"are {'left out' if params['estimation_overlap'] == 'exclude' else 'kept'}.", ""]
    rows = []
    for row in fits.filter(pl.col("event_id") == primary).sort(["ticker", "model"]).iter_rows(
            named=True):
        rows.append([_md(label.get(row["ticker"], row["ticker"])), row["model"],
                     row["benchmark"] or "", _num(row["alpha"], 5), _num(row["beta"], 3),
                     _num(row["sigma"], 5), _num(row["r2"], 3), str(row["nobs"]),
                     f"{row['est_window_start']} .. {row['est_window_end']} "
                     f"({row['n_excluded']})"])
    lines += _table(["security", "model", "benchmark", "alpha", "beta", "sigma", "R²", "L1",
                     "estimation window (sessions left out)"], rows)

    # --- 7. data provenance
    lines += _provenance_section(r, params, notes)

    # --- 8. reproducibility
    versions = params.get("versions", {})
    lines += ["## Reproducibility", "",
              f"- Run {run_id}, computed {r['created_at']:%Y-%m-%d %H:%M} UTC.",
              f"- Command: `{r['command'] or 'impact run ' + r['study_file']}`",
              "- Packages: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
              f"- Inputs hash (SHA-256 of the study file, prices and dividends): "
              f"`{r['inputs_hash']}`",
              "- The numbers are in the database: `impact sql \"SELECT * FROM car WHERE "
              f"run_id = {run_id}\"`.", ""]
    return "\n".join(lines), [f for f, _ in figures]


def _robust_headline(con: duckdb.DuckDBPyConnection, run_id: int, primary: str,
                     model: str) -> list[str]:
    """Return a sentence per group: is day 0 significant under the clustering-robust tests."""
    tests = _q(con, "SELECT * FROM tests WHERE run_id = ? AND event_id = ? AND model = ? "
                    "AND window_start = 0 AND window_end = 0 AND clustering_robust "
                    "AND tickers LIKE '%,%' AND status = 'ok'", [run_id, primary, model])
    out = []
    show = ["kp_bmp", "bw_cda", "sur_wald", "grank"]
    for group in sorted(tests["group_name"].unique().to_list(), key=lambda g: (g == "all", g)):
        g = tests.filter(pl.col("group_name") == group)
        picked = [row for name in show for row in g.filter(pl.col("test") == name)
                  .iter_rows(named=True)]
        if not picked:
            continue
        n_sig = sum(1 for row in g.iter_rows(named=True) if row["p"] < 0.05)
        who = ("Across all securities" if group == "all" else
               f"The {_EXCHANGE_LABEL.get(group, group)} securities share day 0, so their "
               f"abnormal returns are cross-correlated; tested together")
        def symbol(dist: str) -> str:
            return "F" if dist.startswith("F") else "t" if dist == "t" else "z"

        stats = "; ".join(
            f"{row['label']} {symbol(row['distribution'])} = {_num(row['statistic'])} "
            f"({_p_eq(row['p'])})" for row in picked)
        out += [f"{who} ({g['tickers'][0]}), day 0 under the clustering-robust tests: "
                f"{stats}. Significant at 5% under {n_sig} of {g.height} clustering-robust "
                f"tests.", ""]
    return out


def _figures(con: duckdb.DuckDBPyConnection, run_id: int, params: dict[str, Any],
             events: pl.DataFrame, tickers: list[str], name: Any, primary: str,
             days: pl.DataFrame, main: pl.DataFrame, model: str, figs_dir: Path,
             ) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    labels = {t: name(t) for t in tickers}
    ax = plots.plot_car_paths(main.select("ticker", "rel_day", "car", "car_se"), labels,
                              title=f"Cumulative abnormal returns ({model} model)")
    out.append((Path(plots.save(ax, str(figs_dir / "car_paths.png"))[0]),
                f"CAR paths per security from the first event-window day, {model} model, with "
                f"95% bands from the forecast-error-corrected variance."))
    ax = plots.plot_ar_bars(main.select("ticker", "rel_day", "ar", "se"), labels,
                            title=f"Abnormal returns around day 0 ({model} model)")
    out.append((Path(plots.save(ax, str(figs_dir / "ar_bars.png"))[0]),
                "Daily abnormal returns around each security's day 0, with 95% error bars."))
    fig = _indexed_prices_figure(con, params, events, tickers, labels, primary, days, main,
                                 figs_dir)
    out.append((fig, "Securities (solid) and benchmarks (dashed) indexed to 100 at the last "
                     "close before the shock, in calendar time (each point at its session's "
                     "close, UTC); weekdays on which an exchange was closed are shaded and the "
                     "studied events and confounders are marked. A line stops at a missing "
                     "price."))
    marks = [(datetime.fromisoformat(ev["ts_local"]).astimezone(UTC).replace(tzinfo=None),
              ev["event_id"], ev["category"], ev["category"] == "confounder")
             for ev in events.iter_rows(named=True)]
    ax = plots.plot_event_timeline(marks, closures=_closures(params, marks))
    out.append((Path(plots.save(ax, str(figs_dir / "timeline.png"))[0]),
                "The event timeline in calendar time (UTC): confounders in red, exchange "
                "closures shaded."))
    return out


def _closures(params: dict[str, Any], marks: list[tuple[datetime, str, str, bool]]
              ) -> dict[str, list[tuple[datetime, datetime]]]:
    """Weekday closures of each exchange over the span of the events (UTC spans)."""
    lo = min(m[0] for m in marks).date() - timedelta(days=2)
    hi = max(m[0] for m in marks).date() + timedelta(days=2)
    return _closure_spans({v["exchange"] for v in params["securities"].values()}, lo, hi)


def _closure_spans(exchanges: set[str], lo: date, hi: date
                   ) -> dict[str, list[tuple[datetime, datetime]]]:
    """Each exchange's closed weekdays between two dates, as UTC (start, end) spans."""
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    for ex in sorted(exchanges):
        sess_days = set(sessions(ex, lo - timedelta(days=10), hi + timedelta(days=10)).dates)
        zone = _tzinfo(ex)
        spans = []
        for i in range((hi - lo).days + 1):
            d = lo + timedelta(days=i)
            if d.weekday() < 5 and d not in sess_days:
                start = datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)
                spans.append((start.replace(tzinfo=None),
                              (start + timedelta(days=1)).replace(tzinfo=None)))
        out[_EXCHANGE_LABEL.get(ex, ex)] = spans
    return out


def _sensitivity_section(con: duckdb.DuckDBPyConnection, run_id: int,
                         wins: list[tuple[int, int]], name: Any) -> list[str]:
    sens = _q(con, "SELECT * FROM sensitivity WHERE run_id = ?", [run_id])
    if sens.height == 0:
        return []
    bench_names = dict(_q(con, "SELECT ticker, name FROM securities").iter_rows())
    lines = ["## Benchmark sensitivity", "",
             "The market model against other benchmarks, same windows. An industry "
             "benchmark absorbs an industry shock: when the whole sector fell on the news, "
             "the abnormal return against a sector index understates the news's effect on "
             "the firm (and measures its move relative to its sector).", ""]
    for t in sens["ticker"].unique(maintain_order=True).to_list():
        g = sens.filter(pl.col("ticker") == t)
        lines += [f"### {_md(name(t)) if callable(name) else t}", ""]
        rows = []
        for b in g["benchmark"].unique(maintain_order=True).to_list():
            gb = g.filter(pl.col("benchmark") == b)
            first = gb.row(0, named=True)
            cells = [f"{_md(bench_names.get(b, b))} ({b})", _num(first["beta"], 3),
                     _num(first["r2"], 3)]
            for a, e in wins:
                c = gb.filter((pl.col("window_start") == a) & (pl.col("window_end") == e))
                row = c.row(0, named=True) if c.height else None
                cells.append("n/a" if row is None or row["status"] != "ok"
                             else f"{_pct(row['car'])} ({_num(row['t'])})")
            rows.append(cells)
        lines += _table(["benchmark", "beta", "R²"] + [f"CAR[{a:+d}, {e:+d}] (t)"
                                                       for a, e in wins], rows)
    return lines


def _provenance_section(r: dict[str, Any], params: dict[str, Any], notes: list[str]
                        ) -> list[str]:
    prov: dict[str, Any] = params.get("provenance", {})
    lines = ["## Data", "", f"Prices: `{r['price_source']}`. Returns are simple close-to-close "
             "returns on each exchange's sessions; the basis says how each was computed "
             "(adj_close: the adjusted close; close+dividends: the close plus the cash "
             "dividend on its ex-date; close: the close alone; gap: no price).", ""]
    rows = []
    for t, info in prov.items():
        basis = ", ".join(f"{k} {v}" for k, v in info["basis"].items())
        gaps = ", ".join(info["gaps"]) if info["gaps"] else "none"
        divs = "; ".join(f"{d['ex_date']}: {d['amount']:g} {d['currency'] or ''} "
                         f"({d['how']})" for d in info["dividends"]) or "none"
        rows.append([t, f"{info['first']} .. {info['last']}", basis, _md(gaps), _md(divs)])
    lines += _table(["ticker", "returns from .. to", "basis (sessions)", "gaps",
                     "dividends in the range"], rows)
    if notes:
        lines += ["Notes:", ""] + [f"- {_md(n)}" for n in notes] + [""]
    return lines


def _indexed_prices_figure(con: duckdb.DuckDBPyConnection, params: dict[str, Any],
                           events: pl.DataFrame, tickers: list[str], label: dict[str, str],
                           primary: str, days: pl.DataFrame, main: pl.DataFrame,
                           figs_dir: Path) -> Path:
    """Prices indexed to 100 (see :func:`_figures`)."""
    """Prices indexed to 100 over the event window, each close at its real instant (UTC).

    Built from the run's own rows (``abnormal_returns``: each security's return and
    its benchmark's), so a later run cannot change an older run's figure.
    """
    exchange_of = {t: v["exchange"] for t, v in params["securities"].items()}
    bench_of = {t: v["benchmark"] for t, v in params["securities"].items()}
    d0s = days.filter(pl.col("event_id") == primary)["day0"].to_list()
    base_day = min(d0s)
    series_rets: dict[str, tuple[str, list[tuple[date, float | None]]]] = {}
    for t in tickers:
        g = main.filter(pl.col("ticker") == t).sort("date")
        series_rets[t] = (exchange_of[t], list(zip(g["date"], g["ret"], strict=True)))
        b = bench_of[t]
        if b not in series_rets:
            series_rets[b] = (exchange_of[t], list(zip(g["date"], g["benchmark_ret"],
                                                       strict=True)))
    all_dates = [d for _, rows in series_rets.values() for d, _ in rows]
    lo, hi = min(all_dates), max(all_dates)
    close_at: dict[str, dict[date, datetime]] = {}
    for ex in sorted(set(exchange_of.values())):
        sess = sessions(ex, lo - timedelta(days=10), hi + timedelta(days=10))
        close_at[ex] = {d: c.astype("datetime64[us]").item()
                        for d, c in zip(sess.dates, sess.closes, strict=True)}
    series: dict[str, tuple[list[datetime], list[float | None]]] = {}
    for t, (ex, rows) in series_rets.items():
        closes = close_at[ex]
        before = [(d, r) for d, r in rows if d < base_day]
        after = [(d, r) for d, r in rows if d >= base_day]
        # 100 at the last close before the shock; a missing return ends the line
        points: list[tuple[datetime, float | None]] = []
        level: float | None = 100.0
        for d, ret in reversed(before):
            points.append((closes[d], level))
            level = None if level is None or ret is None else level / (1 + ret)
        points.reverse()
        level = 100.0
        for d, ret in after:
            level = None if level is None or ret is None else level * (1 + ret)
            points.append((closes[d], level))
        series[label.get(t, t)] = (
            [p[0] for p in points], [p[1] for p in points])
    closures = _closure_spans(set(exchange_of.values()), lo, hi)
    marks: list[tuple[datetime, str]] = []
    studied = set(params["events"])
    for ev in events.iter_rows(named=True):
        if ev["event_id"] in studied or ev["category"] == "confounder":
            ts = datetime.fromisoformat(ev["ts_local"]).astimezone(UTC).replace(tzinfo=None)
            if lo <= ts.date() <= hi:
                marks.append((ts, ev["event_id"]))
    ax = plots.plot_indexed_prices(series, closures, marks)
    path = figs_dir / "prices_indexed.png"
    plots.save(ax, str(path))
    return path


def _tzinfo(exchange: str) -> Any:
    return ZoneInfo(exchange_tz(exchange))


def _tests_section(con: duckdb.DuckDBPyConnection, run_id: int, primary: str, model: str,
                   params: dict[str, Any]) -> list[str]:
    """The test table for each group of securities of the primary event."""
    tests = _q(con, "SELECT * FROM tests WHERE run_id = ? AND event_id = ? AND model = ? "
                    "AND tickers LIKE '%,%'", [run_id, primary, model])
    aggs = _q(con, "SELECT * FROM aggregates WHERE run_id = ? AND event_id = ? AND model = ?",
              [run_id, primary, model])
    if tests.height == 0:
        return []
    wins = [(int(w[0]), int(w[1])) for w in params["windows"]["car"]]
    lines = ["## Tests across securities", "",
             f"Event `{primary}`, {model} model. Securities of one exchange share day 0, so "
             "their abnormal returns are cross-correlated: tests that assume independent "
             "securities overstate significance. **Clustering-robust tests** (valid when "
             "securities share an event date) are marked ✔; the others are shown for "
             "comparison. CAAR standard errors: cross-sectional (independence), portfolio "
             "(Brown-Warner, robust). Definitions: docs/tests.md.", ""]
    order = {name: i for i, name in enumerate(
        ["kp_bmp", "kp_patell", "bw_cda", "portfolio_wald", "sur_wald", "sur_joint", "grank",
         "corrado", "corrado_cowan", "bootstrap_caar", "t_cs", "patell", "bmp", "sign",
         "gsign", "wilcoxon", "skew_t"])}
    groups = sorted(tests["group_name"].unique().to_list(), key=lambda g: (g == "all", g))
    for group in groups:
        sub = tests.filter(pl.col("group_name") == group)
        tickers = sub["tickers"][0]
        title = ("all securities" if group == "all"
                 else f"{_EXCHANGE_LABEL.get(group, group)} securities (shared day 0)")
        lines += [f"### {title}: {tickers}", ""]
        agg_rows = []
        for a, b in wins:
            ag = aggs.filter((pl.col("group_name") == group) & (pl.col("window_start") == a)
                             & (pl.col("window_end") == b))
            if ag.height:
                r = ag.row(0, named=True)
                agg_rows.append([f"[{a:+d}, {b:+d}]", str(r["n"]), _pct(r["caar"]),
                                 _pct_abs(r["se_cross_section"]), _pct_abs(r["se_portfolio"])])
        lines += _table(["window", "n", "CAAR", "s.e. cross-section", "s.e. portfolio"],
                        agg_rows)
        header = ["test", "robust"] + [f"[{a:+d}, {b:+d}]" for a, b in wins]
        rows = []
        names = sorted(sub["test"].unique().to_list(), key=lambda t: order.get(t, 99))
        for name in names:
            t = sub.filter(pl.col("test") == name)
            label = t["label"][0]
            robust = "✔" if t["clustering_robust"][0] else ""
            cells = [label, robust]
            for a, b in wins:
                c = t.filter((pl.col("window_start") == a) & (pl.col("window_end") == b))
                if c.height == 0:
                    cells.append("")
                    continue
                r = c.row(0, named=True)
                if r["status"] != "ok" and (r["reason"] or "").startswith("one-day test"):
                    cells.append("(one day only)")
                elif r["status"] != "ok":
                    cells.append("not computed: " + _md(r["reason"] or ""))
                else:
                    cells.append(f"{_num(r['statistic'])} ({_p(r['p'])})")
            rows.append(cells)
        lines += ["Statistic (p-value) per window:", ""]
        lines += _table(header, rows)
    return lines


def _cross_section_section(con: duckdb.DuckDBPyConnection, run_id: int) -> list[str]:
    cs = _q(con, "SELECT * FROM cross_section WHERE run_id = ? ORDER BY term", [run_id])
    if cs.height == 0:
        return []
    r0 = cs.row(0, named=True)
    lines = ["## Cross-sectional regression", "",
             f"`{r0['formula']}` on CAR[{r0['window_start']:+d}, {r0['window_end']:+d}] "
             f"({r0['model']} model, event `{r0['event_id']}`), {r0['cov_type']} standard "
             f"errors, {r0['nobs']} securities, R² = {_num(r0['r2'], 3)}.", ""]
    if r0["descriptive"]:
        lines += [f"**Descriptive only.** {r0['notice'] or ''}", ""]
    rows = [[_md(r["term"]), _num(r["coef"], 4),
             _num(r["se"], 4) if not r0["descriptive"] else "",
             _num(r["t"]) if not r0["descriptive"] else "",
             _p(r["p"]) if not r0["descriptive"] else ""]
            for r in cs.iter_rows(named=True)]
    lines += _table(["term", "coefficient", "s.e.", "t", "p"], rows)
    return lines
