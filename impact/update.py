"""``impact update``: keep prices, news, runs and reports current, for a scheduler.

Steps, each written in its own transaction and recorded in ``update_log``:

1. **prices**: for every ticker the configured studies track, fetch only the
   days after the last stored one (Yahoo, or the snapshot directory), and store
   the new rows and their returns;
2. **feeds**: ingest each configured feed (duplicates are merged);
3. **studies**: recompute each study from the database (with its confirmed news)
   and add a run only when its inputs changed (the inputs hash of the latest run
   differs, or impact's version does), then re-render its report.

A lock file beside the database lets one update run at a time: a second one
exits at once with a message. A network failure is retried with backoff, then
reported (exit code 5); nothing already stored is lost, and a killed update
leaves the database as it was before the step that was running.
"""

from __future__ import annotations

import fcntl
import os
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import duckdb
import polars as pl

from impact import __version__
from impact.calendars import sessions
from impact.catalog import Study, load_study
from impact.errors import CatalogError, ExitCode, ImpactError, InputError
from impact.returns import compute_returns
from impact.sources import PriceSource, choose_source
from impact.storage import _upsert_changed, connect, fetch_one, transaction


class UpdateLockedError(ImpactError):
    """Another ``impact update`` holds the lock."""

    exit_code = ExitCode.LOCKED


@dataclass(frozen=True)
class UpdateConfig:
    """What ``impact update`` keeps current (``events/update.toml``)."""

    path: Path
    studies: tuple[Path, ...]
    feeds: tuple[str, ...] = ()
    source: str | None = None
    prices_dir: Path | None = None
    reports_dir: Path = Path("reports")
    #: Default zone of feed items without one (IANA), e.g. Asia/Seoul.
    feed_tz: str | None = None


def load_update_config(path: str | Path) -> UpdateConfig:
    """Read and validate an update configuration file.

    Raises
    ------
    CatalogError
        With the file, the key and the fix.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(str(p), "no such file: give an update file such as "
                           "events/update.toml") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(str(p), f"not valid TOML: {exc}") from None
    raw = doc.get("update")
    if not isinstance(raw, dict) or set(doc) - {"update"}:
        raise CatalogError(str(p), "the file must hold one [update] table", field="update")
    allowed = {"studies", "feeds", "source", "prices_dir", "reports_dir", "feed_tz"}
    for key in raw:
        if key not in allowed:
            raise CatalogError(str(p), f"unknown key '{key}' (allowed: "
                               f"{', '.join(sorted(allowed))})", field=f"update.{key}")
    studies = raw.get("studies")
    if not isinstance(studies, list) or not studies or not all(
            isinstance(s, str) for s in studies):
        raise CatalogError(str(p), "studies must list study files, e.g. studies = "
                           "[\"deepseek.toml\"]", field="update.studies")
    feeds = raw.get("feeds", [])
    if not isinstance(feeds, list) or not all(isinstance(f, str) for f in feeds):
        raise CatalogError(str(p), "feeds must be a list of feed URLs or files",
                           field="update.feeds")
    base = p.parent

    def resolve(s: str) -> str:
        return s if s.startswith(("http://", "https://")) else str((base / s).resolve())

    prices_dir = raw.get("prices_dir")
    return UpdateConfig(
        path=p,
        studies=tuple((base / s).resolve() for s in studies),
        feeds=tuple(resolve(f) for f in feeds),
        source=raw.get("source"),
        prices_dir=(base / prices_dir).resolve() if isinstance(prices_dir, str) else None,
        reports_dir=Path(raw.get("reports_dir", "reports")),
        feed_tz=raw.get("feed_tz"),
    )


@contextmanager
def update_lock(db: Path) -> Iterator[None]:
    """Hold ``<db>.lock`` for the whole update; a second holder fails at once.

    The lock is an advisory ``flock``: the operating system releases it when the
    process ends, even when it is killed, so a stale lock file never blocks.
    """
    path = db.with_name(db.name + ".lock")
    handle: IO[str] = path.open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UpdateLockedError(
                f"another impact update is running on {db} ({holder}): this one stops "
                f"without changing anything; run it again when that one has finished"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")
        handle.flush()
        yield
    finally:
        handle.close()


@dataclass
class StepResult:
    """One line of ``update_log``."""

    step: str
    target: str
    status: str
    rows: int = 0
    detail: str = ""


@dataclass
class UpdateSummary:
    """What an update did."""

    update_id: int
    steps: list[StepResult] = field(default_factory=list)

    @property
    def failed(self) -> list[StepResult]:
        """Steps that failed."""
        return [s for s in self.steps if s.status == "failed"]

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return any(s.status == "changed" for s in self.steps)

    @property
    def exit_code(self) -> int:
        """0 when every step worked; the code of the first failure's kind otherwise."""
        if not self.failed:
            return int(ExitCode.OK)
        if any(s.step in ("prices", "feed") for s in self.failed):
            return int(ExitCode.SOURCE)
        return int(ExitCode.DATA)


def run_update(
    config: UpdateConfig,
    db: str | Path,
    *,
    source: PriceSource | None = None,
    today: date | None = None,
    progress: Callable[[str], None] | None = None,
    fetch: Callable[[str], bytes] | None = None,
) -> UpdateSummary:
    """Run every step of an update (see the module docstring).

    Parameters
    ----------
    config
        From :func:`load_update_config`.
    db
        The database (created if missing).
    source
        A price source to use instead of the configured one (tests pass fakes).
    today
        The last day to fetch (default: today, UTC).
    progress
        Called with a message per step.
    fetch
        URL fetcher for feeds (default :func:`impact.ingest.fetch_url`).

    Returns
    -------
    UpdateSummary

    Raises
    ------
    UpdateLockedError
        If another update holds the lock.
    """
    say = progress or (lambda _m: None)
    db_path = Path(db)
    studies = [load_study(p) for p in config.studies]  # all valid before anything runs
    with update_lock(db_path):
        con = connect(db_path)
        try:
            row = fetch_one(con, "SELECT coalesce(max(update_id), 0) + 1 FROM update_log")
            summary = UpdateSummary(update_id=int(row[0]) if row else 1)
            src = source or choose_source(
                config.source or studies[0].prices.source, studies[0].prices.snapshot,
                override_dir=config.prices_dir)
            _update_prices(con, summary, studies, src, today or datetime.now(UTC).date(), say)
            for feed in config.feeds:
                _update_feed(con, summary, feed, config.feed_tz, fetch, say)
            for study in studies:
                _update_study(con, summary, study, config.reports_dir, say)
            changed = [s for s in summary.steps if s.status == "changed"]
            detail = ("nothing changed" if not changed else
                      f"{len(changed)} step(s) changed: "
                      + ", ".join(f"{s.step} {s.target}" for s in changed))
            if summary.failed:
                detail += f"; {len(summary.failed)} failed"
            _log(con, summary, StepResult("summary", "update", "failed" if summary.failed
                                          else "changed" if changed else "unchanged",
                                          len(changed), detail), datetime.now(UTC))
            return summary
        finally:
            con.close()


def _log(con: duckdb.DuckDBPyConnection, summary: UpdateSummary, step: StepResult,
         started: datetime) -> None:
    summary.steps.append(step)
    con.execute("INSERT OR REPLACE INTO update_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
        summary.update_id, step.step, step.target, step.status, step.rows, step.detail,
        started.replace(tzinfo=None), datetime.now(UTC).replace(tzinfo=None)])


def _tracked(studies: list[Study]) -> dict[str, tuple[str, date]]:
    """Ticker -> (exchange, first date any study needs)."""
    from impact.study import _span

    out: dict[str, tuple[str, date]] = {}
    for st in studies:
        start, _end = _span(st)
        for t in st.all_tickers:
            ex = st.instrument(t).exchange
            if t not in out or start < out[t][1]:
                out[t] = (ex, start)
    return out


def _update_prices(con: duckdb.DuckDBPyConnection, summary: UpdateSummary,
                   studies: list[Study], src: PriceSource, today: date,
                   say: Callable[[str], None]) -> None:
    for ticker, (exchange, first_needed) in sorted(_tracked(studies).items()):
        started = datetime.now(UTC)
        row = fetch_one(con, "SELECT min(date), max(date) FROM prices WHERE ticker = ?", [ticker])
        have_first: date | None = row[0] if row else None
        have_last: date | None = row[1] if row else None
        start: date = (first_needed if have_first is None or have_last is None
                       or have_first > first_needed else have_last + timedelta(days=1))
        if start > today:
            _log(con, summary, StepResult("prices", ticker, "unchanged", 0, "up to date"),
                 started)
            continue
        say(f"prices {ticker}: {start} .. {today} from {src.name}")
        try:
            data = src.fetch([ticker], start, today)
        except ImpactError as exc:
            with transaction(con):
                _log(con, summary, StepResult("prices", ticker, "failed", 0, str(exc)), started)
            continue
        try:
            with transaction(con):
                n = _store_prices(con, ticker, exchange, data.prices, data.dividends,
                                  data.source)
                _test_pause()
                _log(con, summary, StepResult("prices", ticker, "changed" if n else "unchanged",
                                              n, f"{n} new or changed price rows" if n
                                              else "no new prices"), started)
        except ImpactError as exc:
            _log(con, summary, StepResult("prices", ticker, "failed", 0, str(exc)), started)


def _test_pause() -> None:
    """Test hook: IMPACT_TEST_PAUSE_IN_UPDATE=<seconds> sleeps inside a write transaction.

    The tests use it to kill an update while it is writing; it is never set otherwise.
    """
    pause = os.environ.get("IMPACT_TEST_PAUSE_IN_UPDATE")
    if pause:
        import sys
        import time

        print("update: paused inside a transaction", file=sys.stderr, flush=True)
        time.sleep(float(pause))


def _store_prices(con: duckdb.DuckDBPyConnection, ticker: str, exchange: str,
                  prices: pl.DataFrame, dividends: pl.DataFrame | None, source: str) -> int:
    """Upsert new price rows and recompute the ticker's returns from the stored history."""
    now = datetime.now(UTC).replace(tzinfo=None)
    if prices.height == 0:
        return 0
    n = _upsert_changed(con, "prices", prices.with_columns(
        pl.lit(source).alias("source"), pl.lit(now).alias("loaded_at")), ("ticker", "date"),
        ("open", "high", "low", "close", "adj_close", "volume", "source"))
    if dividends is not None and dividends.height:
        _upsert_changed(con, "dividends", dividends.with_columns(
            pl.lit(source).alias("source"), pl.lit(now).alias("loaded_at")),
            ("ticker", "ex_date"), ("amount", "currency", "source"))
    if n == 0:
        return 0
    from impact.frames import DIVIDENDS_SCHEMA, PRICES_SCHEMA

    hist = pl.DataFrame(con.execute(
        f"SELECT {', '.join(PRICES_SCHEMA)} FROM prices WHERE ticker = ? ORDER BY date",
        [ticker]).fetchall(), schema=PRICES_SCHEMA, orient="row")
    divs = pl.DataFrame(con.execute(
        f"SELECT {', '.join(DIVIDENDS_SCHEMA)} FROM dividends WHERE ticker = ?",
        [ticker]).fetchall(), schema=DIVIDENDS_SCHEMA, orient="row")
    sess = sessions(exchange, hist["date"].min(), hist["date"].max())  # type: ignore[arg-type]
    rr = compute_returns(hist, divs if divs.height else None, {ticker: sess})
    _upsert_changed(con, "returns", rr.returns.with_columns(pl.lit(source).alias("source")),
                    ("ticker", "date"), ("prev_date", "ret", "basis", "source"))
    return n


def _update_feed(con: duckdb.DuckDBPyConnection, summary: UpdateSummary, feed: str,
                 feed_tz: str | None, fetch: Callable[[str], bytes] | None,
                 say: Callable[[str], None]) -> None:
    from impact.ingest import fetch_url, ingest

    started = datetime.now(UTC)
    say(f"feed {feed}")
    try:
        res = ingest(con, feed, publisher_tz=feed_tz, fetch=fetch or fetch_url)
    except ImpactError as exc:
        _log(con, summary, StepResult("feed", feed, "failed", 0, str(exc)), started)
        return
    n = len(res.new)
    detail = (f"{n} new article(s), {len(res.merged)} already stored"
              + (f", {len(res.needs_timestamp)} without a publication time"
                 if res.needs_timestamp else ""))
    _log(con, summary, StepResult("feed", feed, "changed" if n else "unchanged", n, detail),
         started)


def _update_study(con: duckdb.DuckDBPyConnection, summary: UpdateSummary, study: Study,
                  reports_dir: Path, say: Callable[[str], None]) -> None:
    from impact.ingest import confirmed_events
    from impact.report import stage_report
    from impact.sources.database import DatabaseSource
    from impact.storage import write_run
    from impact.study import compute_study

    started = datetime.now(UTC)
    target = study.name
    try:
        news = confirmed_events(con, [s.ticker for s in study.securities])
        run = compute_study(study, DatabaseSource(con), extra_events=news)
    except ImpactError as exc:
        _log(con, summary, StepResult("study", target, "failed", 0, str(exc)), started)
        return
    last = fetch_one(con, "SELECT run_id, inputs_hash, impact_version FROM runs WHERE study = ? "
                          "ORDER BY run_id DESC LIMIT 1", [target])
    if last is not None and last[1] == run.inputs_hash and last[2] == __version__:
        _log(con, summary, StepResult("study", target, "unchanged", int(last[0]),
                                      f"inputs unchanged since run {last[0]}"), started)
        return
    say(f"study {target}: inputs changed, adding a run")
    staged: list[Any] = []

    def render(c: duckdb.DuckDBPyConnection, run_id: int) -> None:
        staged.append(stage_report(c, run_id, reports_dir / study.name))

    try:
        res = write_run(con, run, command="impact update", before_commit=render)
    except ImpactError as exc:
        for s in staged:
            s.discard()
        _log(con, summary, StepResult("study", target, "failed", 0, str(exc)), started)
        return
    for s in staged:
        s.commit()
    _log(con, summary, StepResult("study", target, "changed", res.run_id,
                                  f"run {res.run_id} added and its report rendered"), started)


def schedule_files(*, at: str, tz: str, days: str, workdir: Path, db: str, config: str,
                   command: str = "impact") -> dict[str, str]:
    """A crontab line and a systemd service and timer for ``impact update``.

    Parameters
    ----------
    at
        ``HH:MM`` local time.
    tz
        IANA zone of ``at`` (e.g. Asia/Seoul).
    days
        ``weekdays`` or ``daily``.
    workdir, db, config, command
        Where and what to run.

    Returns
    -------
    dict
        ``crontab``, ``impact-update.service`` and ``impact-update.timer`` texts.

    Raises
    ------
    InputError
        For a bad time, zone or days value.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        hh, mm = (int(x) for x in at.split(":"))
        if not (0 <= hh < 24 and 0 <= mm < 60):
            raise ValueError
    except ValueError:
        raise InputError(f"--at must be HH:MM (e.g. 07:00); got {at!r}") from None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"--tz must be an IANA zone such as Asia/Seoul; got {tz!r}") from None
    if days not in ("weekdays", "daily"):
        raise InputError(f"--days must be weekdays or daily; got {days!r}")
    dow = "1-5" if days == "weekdays" else "*"
    cmd = f"{command} update --config {config} --db {db}"
    cron = (f"# impact update at {at} {tz}, {days}\n"
            f"CRON_TZ={tz}\n"
            f"{mm} {hh} * * {dow} cd {workdir} && {cmd} >> {workdir}/update.log 2>&1\n")
    cal = ("Mon..Fri " if days == "weekdays" else "") + f"*-*-* {hh:02d}:{mm:02d}:00 {tz}"
    service = ("[Unit]\nDescription=impact update (prices, news, studies, reports)\n"
               "Wants=network-online.target\nAfter=network-online.target\n\n"
               f"[Service]\nType=oneshot\nWorkingDirectory={workdir}\nExecStart={cmd}\n")
    timer = ("[Unit]\nDescription=Run impact update on schedule\n\n"
             f"[Timer]\nOnCalendar={cal}\nPersistent=true\n\n"
             "[Install]\nWantedBy=timers.target\n")
    return {"crontab": cron, "impact-update.service": service, "impact-update.timer": timer}
