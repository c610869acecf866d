"""The Python API: one function per CLI command, no printing.

>>> from impact.api import run
>>> outcome = run("events/deepseek.toml", db="impact.duckdb")   # doctest: +SKIP
>>> outcome.run_id                                             # doctest: +SKIP
1
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import polars as pl

from impact.backtesting import BacktestOutcome
from impact.catalog import Event, Study, load_study
from impact.engine import EngineRun, market_model_committed
from impact.errors import InputError
from impact.ingest import IngestResult
from impact.query import TableInfo
from impact.report import ReportFiles, StagedReport, render_report, stage_report
from impact.sources import choose_source
from impact.storage import connect, fetch_one, open_file, write_run
from impact.study import StudyRun, compute_study
from impact.update import UpdateSummary

#: Default database file.
DEFAULT_DB = "impact.duckdb"
#: Default folder for reports (one sub-folder per study).
DEFAULT_REPORTS = "reports"


@dataclass
class RunOutcome:
    """What :func:`run` did."""

    run_id: int
    db: Path
    study: Study
    price_source: str
    prices_written: int
    report: ReportFiles | None
    notes: list[str] = field(default_factory=list)


def validate(study_path: str | Path) -> Study:
    """Load and validate a study file (raises :class:`impact.errors.CatalogError`)."""
    return load_study(study_path)


class EventStudy:
    """An event study from a study file: ``EventStudy(path).fit()`` -> results.

    The Python face of ``impact run``: the same validation, prices, alignment,
    models and tests, without writing anything until :meth:`StudyResults.save`.

    Parameters
    ----------
    study
        Path of a study file, or a loaded :class:`~impact.catalog.Study`.
    source
        ``auto``, ``snapshot`` or ``yahoo`` (default: the study file's).
    prices_dir
        Snapshot directory (overrides the study file and ``IMPACT_PRICES_DIR``).

    Examples
    --------
    >>> res = EventStudy("events/deepseek.toml").fit()          # doctest: +SKIP
    >>> res.car.filter(pl.col("ticker") == "NVDA")             # doctest: +SKIP
    >>> print(res.summary)                                     # doctest: +SKIP
    """

    def __init__(self, study: str | Path | Study, *, source: str | None = None,
                 prices_dir: str | Path | None = None) -> None:
        self.study = study if isinstance(study, Study) else load_study(study)
        self.source = choose_source(
            self.study.prices.source, self.study.prices.snapshot, override_source=source,
            override_dir=Path(prices_dir) if prices_dir else None)

    def fit(self, progress: Callable[[str], None] | None = None,
            extra_events: Sequence[Event] = ()) -> StudyResults:
        """Fetch prices, align, estimate and test; nothing is written.

        ``extra_events`` are confirmed news events to show on the timeline.
        """
        return StudyResults(compute_study(self.study, self.source, progress=progress,
                                          extra_events=extra_events))


class StudyResults:
    """What :meth:`EventStudy.fit` computed, as read-only frames.

    Each frame has the columns of the database table of the same name
    (``docs/schema.md``), without ``run_id``.
    """

    def __init__(self, run: StudyRun) -> None:
        self._run = run

    @property
    def run(self) -> StudyRun:
        """Everything computed, as stored by :meth:`save`."""
        return self._run

    @property
    def params(self) -> pl.DataFrame:
        """Fitted models: alpha, beta, sigma, nobs, ... per event, security and model."""
        return self._run.fits

    @property
    def abnormal_returns(self) -> pl.DataFrame:
        """Daily abnormal returns over the event windows."""
        return self._run.abnormal_returns

    @property
    def car(self) -> pl.DataFrame:
        """CARs per window with the single-security t and sample-quantile tests and BHAR."""
        return self._run.car

    @property
    def tests(self) -> pl.DataFrame:
        """Every test per event, group of securities, model and window."""
        return self._run.tests

    @property
    def aggregates(self) -> pl.DataFrame:
        """CAAR across securities (and across events) with their standard errors."""
        return self._run.aggregates

    @property
    def day0(self) -> pl.DataFrame:
        """Day 0 of every event on every exchange."""
        return self._run.alignments

    @property
    def summary(self) -> str:
        """A short text summary: day-0 returns and CARs of the primary event."""
        st = self._run.study
        model = "market" if "market" in st.all_models else st.all_models[0]
        lines = [f"{st.title} ({st.name}): primary event {st.primary_event}, {model} model"]
        ars = self.abnormal_returns.filter(
            (pl.col("event_id") == st.primary_event) & (pl.col("model") == model)
            & (pl.col("rel_day") == 0))
        for r in ars.iter_rows(named=True):
            lines.append(f"  {r['ticker']:<10} day 0 {r['date']}  return {r['ret']:+.2%}  "
                         f"AR {r['ar']:+.2%}  t {r['t']:+.2f}")
        for r in self.car.filter((pl.col("event_id") == st.primary_event)
                                 & (pl.col("model") == model)).iter_rows(named=True):
            if r["status"] == "ok":
                lines.append(f"  {r['ticker']:<10} CAR[{r['window_start']:+d},"
                             f"{r['window_end']:+d}] {r['car']:+.2%}  t {r['t']:+.2f}  "
                             f"p {r['p']:.4f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary

    def save(self, db: str | Path = DEFAULT_DB, *, reports_dir: str | Path | None = None,
             command: str | None = None,
             progress: Callable[[str], None] | None = None) -> RunOutcome:
        """Store the results as a new run (and render its report if ``reports_dir``)."""
        return _store(self._run, db, reports_dir, command, progress or (lambda _m: None))


def run(
    study_path: str | Path,
    *,
    db: str | Path = DEFAULT_DB,
    source: str | None = None,
    prices_dir: str | Path | None = None,
    reports_dir: str | Path | None = DEFAULT_REPORTS,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run a study end to end: validate, fetch prices, estimate, store, report.

    Parameters
    ----------
    study_path
        The study file (e.g. ``events/deepseek.toml``).
    db
        The DuckDB file to add the run to (created if missing).
    source
        ``auto``, ``snapshot`` or ``yahoo``; overrides the study file.
    prices_dir
        Snapshot directory; overrides the study file and ``IMPACT_PRICES_DIR``.
    reports_dir
        Parent folder of the report (``<reports_dir>/<study>/report.md``); None
        for no report.
    command
        The command line, stored with the run.
    progress
        Called with a short message at each stage.

    Returns
    -------
    RunOutcome

    Raises
    ------
    impact.errors.ImpactError
        On any invalid input or unusable data; the database is then unchanged
        (and not created if it did not exist).
    """
    say = progress or (lambda _m: None)
    es = EventStudy(study_path, source=source, prices_dir=prices_dir)
    news = _confirmed_news(db, [s.ticker for s in es.study.securities])
    results = es.fit(progress=say, extra_events=news)
    return _store(results.run, db, reports_dir, command, say)


def _confirmed_news(db: str | Path, tickers: list[str]) -> list[Event]:
    """Confirmed news events of an existing database that name the tickers."""
    if not Path(db).exists():
        return []
    from impact.ingest import confirmed_events

    con = connect(db, read_only=True, wait=5.0)
    try:
        return confirmed_events(con, tickers)
    finally:
        con.close()


def _store(computed: StudyRun, db: str | Path, reports_dir: str | Path | None,
           command: str | None, say: Callable[[str], None]) -> RunOutcome:
    """Write a computed run (and its report) in one transaction."""
    study = computed.study
    db_path = Path(db)
    existed = db_path.exists()
    say(f"writing run to {db_path}")
    try:
        con = connect(db_path)
    except BaseException:
        if not existed:
            _remove_db(db_path)
        raise
    try:
        staged: list[StagedReport] = []

        def _render(c: duckdb.DuckDBPyConnection, run_id: int) -> None:
            if reports_dir is not None:
                say("rendering the report")
                staged.append(stage_report(c, run_id, Path(reports_dir) / study.name))

        try:
            summary = write_run(con, computed, command=command, before_commit=_render)
        except BaseException:
            for s in staged:
                s.discard()
            raise
        # the run is stored: now the report replaces the previous one
        report = staged[0].commit() if staged else None
    except BaseException:
        con.close()
        if not existed:
            _remove_db(db_path)
        raise
    con.close()
    return RunOutcome(
        run_id=summary.run_id,
        db=db_path,
        study=study,
        price_source=computed.price_source,
        prices_written=summary.prices_written,
        report=report,
        notes=computed.notes,
    )


def report(target: str | int, *, db: str | Path = DEFAULT_DB,
           out: str | Path | None = None, reports_dir: str | Path = DEFAULT_REPORTS,
           formats: tuple[str, ...] = ("md", "html")) -> ReportFiles:
    """Render the report of a stored run from the database (no recomputation).

    Parameters
    ----------
    target
        A run id, or a study name (its latest run).
    db
        The database (opened read-only).
    out
        The report folder; default ``<reports_dir>/<study>``.
    reports_dir
        Parent folder when ``out`` is not given.
    formats
        Any of ``md`` and ``html``.

    Raises
    ------
    impact.errors.DataError
        If the run or study is unknown or has no results (nothing is written).
    """
    from impact.errors import DataError

    bad = [f for f in formats if f not in ("md", "html")]
    if bad or not formats:
        raise DataError(f"unknown report format(s) {', '.join(bad) or '(none)'}: use md, html "
                        f"or md,html")
    con = connect(db, read_only=True)
    try:
        if isinstance(target, int) or str(target).isdigit():
            run_id = int(target)
            row = fetch_one(con, "SELECT study FROM runs WHERE run_id = ?", [run_id])
            if row is None:
                raise DataError(f"there is no run {run_id} in {db}: see "
                                f"'impact sql \"SELECT run_id, study, created_at FROM runs\"'")
            study = str(row[0])
        else:
            study = str(target)
            row = fetch_one(con, "SELECT max(run_id) FROM runs WHERE study = ?", [study])
            if row is None or row[0] is None:
                known = [r[0] for r in con.execute(
                    "SELECT DISTINCT study FROM runs ORDER BY 1").fetchall()]
                raise DataError(f"there is no run of a study named '{study}' in {db} (studies: "
                                f"{', '.join(known) or 'none'})")
            run_id = int(row[0])
        folder = Path(out) if out is not None else Path(reports_dir) / study
        return render_report(con, run_id, folder, formats)
    finally:
        con.close()


def _remove_db(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@dataclass(frozen=True)
class Day0Row:
    """Day 0 of one event on each exchange of a study."""

    event_id: str
    #: The event's instant as ISO 8601 local time with offset.
    ts_local: str
    #: Exchange -> day 0.
    day0: dict[str, date]


def day0_table(study_path: str | Path) -> list[Day0Row]:
    """Day 0 of every event of a study on each of its exchanges (no prices needed).

    Returns
    -------
    list of Day0Row
        One per event, in catalog order.
    """
    from impact.calendars import align, exchange_tz, sessions
    from impact.study import _span

    study = load_study(study_path)
    start, end = _span(study)
    exchanges = sorted({s.exchange for s in (*study.securities, *study.benchmarks)})
    sess = {ex: sessions(ex, start, end) for ex in exchanges}
    return [
        Day0Row(
            event_id=ev.event_id,
            ts_local=ev.ts.isoformat(),
            day0={ex: align(ev.event_id, ev.ts, sess[ex], exchange_tz(ex)).day0
                  for ex in exchanges},
        )
        for ev in study.events
    ]


def sql(query: str, *, db: str | Path = DEFAULT_DB, wait: float = 5.0) -> pl.DataFrame:
    """Run read-only SQL on a database (see :func:`impact.query.run_query`)."""
    from impact.query import run_query

    return run_query(db, query, wait=wait)


def tables(*, db: str | Path = DEFAULT_DB) -> list[TableInfo]:
    """Tables, views and macros of a database with row counts and comments."""
    from impact.query import list_tables

    return list_tables(db)


def schema_text() -> str:
    """The schema as Markdown (the text of ``docs/schema.md``)."""
    from impact.schema import schema_markdown

    return schema_markdown()


def migrate(*, db: str | Path = DEFAULT_DB) -> tuple[int, list[int]]:
    """Upgrade a database in place to the current schema.

    Returns
    -------
    (version, applied)
        The version reached and the migration steps applied (empty if current).
    """
    from impact.storage import upgrade

    return upgrade(db)


def ingest(target: str, *, db: str | Path = DEFAULT_DB, publisher: str | None = None,
           publisher_tz: str | None = None, reference_time: datetime | None = None,
           ) -> IngestResult:
    """Ingest an article or a feed into the database (see :func:`impact.ingest.ingest`)."""
    from impact.ingest import ingest as _ingest

    con = connect(db)
    try:
        return _ingest(con, target, publisher=publisher, publisher_tz=publisher_tz,
                       reference_time=reference_time)
    finally:
        con.close()


def confirm(event_id: str, *, db: str | Path = DEFAULT_DB, when: datetime | None = None,
            tz: str | None = None) -> str:
    """Confirm a candidate news event (see :func:`impact.ingest.confirm`)."""
    from impact.ingest import confirm as _confirm

    con = connect(db)
    try:
        return _confirm(con, event_id, when=when, tz=tz)
    finally:
        con.close()


def update(config: str | Path, *, db: str | Path = DEFAULT_DB,
           progress: Callable[[str], None] | None = None) -> UpdateSummary:
    """Run ``impact update`` (see :mod:`impact.update`)."""
    from impact.update import load_update_config, run_update

    return run_update(load_update_config(config), db, progress=progress)


def schedule(*, at: str, tz: str, days: str, config: str, db: str) -> dict[str, str]:
    """The crontab line and systemd units for ``impact update``."""
    from impact.update import schedule_files

    return schedule_files(at=at, tz=tz, days=days, workdir=Path.cwd(), db=db, config=config)


def backtest(strategy: str | Path, *, db: str | Path = DEFAULT_DB, source: str | None = None,
             prices_dir: str | Path | None = None,
             reports_dir: str | Path | None = DEFAULT_REPORTS,
             progress: Callable[[str], None] | None = None) -> BacktestOutcome:
    """Run a strategy file (see :mod:`impact.backtesting`)."""
    from impact.backtesting import backtest as _backtest

    return _backtest(strategy, db=db, source=source, prices_dir=prices_dir,
                     reports_dir=reports_dir, progress=progress)


def engine(db: str | Path, *, returns: str = "returns", pairs: str = "pairs",
           estimation: tuple[int, int] = (-250, -11), event: tuple[int, int] = (-5, 10),
           car_windows: Sequence[tuple[int, int]] = ((-1, 1), (0, 0), (0, 1), (-5, 10),
                                                     (0, 10)),
           tests: bool = True, exclusions: str | None = None,
           progress: Callable[[str, int, int], None] | None = None) -> EngineRun:
    """Run the whole-market engine on the tables of a DuckDB file, in one transaction.

    Parameters
    ----------
    db
        A DuckDB file holding the returns and pairs tables (layout in
        :mod:`impact.engine`); it need not be an impact study database.
    returns, pairs
        Table names.
    estimation, event, car_windows
        Windows in sessions relative to day 0.
    tests
        Run the per-event test battery (needs ``event_id`` in the pairs).
    exclusions
        A table ``(pair_id, rel_lo, rel_hi)`` of estimation-window sessions to leave
        out per pair (relative days, both ends included), e.g. other events' windows.
    progress
        Called as ``progress(step, done, total)`` after each step.

    Returns
    -------
    EngineRun

    Raises
    ------
    InputError
        If the file or a table or column is missing, or a window is malformed.
    DatabaseError
        If another process holds the file.
    KeyboardInterrupt
        Re-raised after the transaction is rolled back: nothing is written.
    """
    path = Path(db)
    if not path.exists():
        raise InputError(f"there is no database at {path}: build one with the returns and "
                         f"pairs tables (see docs/engine.md), e.g. benchmarks/panel.py")
    con = open_file(path, wait=5.0)
    try:
        need = {returns: ("ticker", "session_idx", "ret", "mkt"),
                pairs: ("pair_id", "ticker", "day0_idx")}
        if exclusions is not None:
            need[exclusions] = ("pair_id", "rel_lo", "rel_hi")
        flag = {returns: "returns", pairs: "pairs", exclusions: "exclusions"}
        for table, cols in need.items():
            have = {r[0] for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                "AND database_name = current_database()", [table]).fetchall()}
            if not have:
                raise InputError(f"{path} has no table '{table}': name it with "
                                 f"--{flag[table]}")
            missing = [c for c in cols if c not in have]
            if missing:
                raise InputError(f"table '{table}' in {path} lacks column(s) "
                                 f"{', '.join(missing)} (layout: docs/engine.md)")
        pause = float(os.environ.get("IMPACT_TEST_PAUSE_IN_ENGINE", "0") or 0)

        def report(step: str, done: int, total: int) -> None:
            if progress is not None:
                progress(step, done, total)
            if pause and step == "write fits":  # test hook: a half-written transaction
                print("test hook: paused after writing engine_fits", file=sys.stderr,
                      flush=True)
                time.sleep(pause)

        return market_model_committed(con, returns_table=returns, pairs_table=pairs,
                                      estimation=estimation, event=event,
                                      car_windows=tuple(car_windows), tests=tests,
                                      exclusions_table=exclusions, progress=report)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    finally:
        con.close()
