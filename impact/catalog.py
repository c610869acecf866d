"""Study files: the event catalog, the securities and the study parameters.

A study file is TOML (see ``docs/catalog.md``). Loading validates everything
before anything is computed or written, and every error names the file, the line
where it can be found, the event and the key, and says how to fix it.

Timestamps
----------
Every event carries an IANA time zone (``tz``). An event whose time of day is
known gives ``time`` as a local date-time without an offset; an event known
only by its date gives ``date`` and is placed at :data:`DATE_ONLY_TIME` (12:00,
noon) local time in its zone. Noon is a documented compromise: it puts a
date-only event on its own date for an exchange in the same zone, and on the
next session for an exchange whose session that day closed before noon local
time of the event's zone.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from impact.errors import CatalogError
from impact.estimation import ModelSpec, builtin

#: Local time of day given to an event known only by its date.
DATE_ONLY_TIME = time(12, 0)

#: The categories an event may have.
CATEGORIES: dict[str, str] = {
    "model-release": "a model or product is released",
    "news": "news that may move prices",
    "statement": "a statement by a company or an official",
    "article": "a press article",
    "market": "a price move reported as news (an outcome, not a cause)",
    "market-closure": "an exchange is closed (holiday)",
    "confounder": "other news near the event that could move the same prices",
}

#: Built-in expected-return models (multi-factor models are defined in [[models]]).
MODELS: dict[str, str] = {
    "market": "market model: a + b R_m, OLS over the estimation window",
    "constant-mean": "constant mean: the mean return over the estimation window",
    "market-adjusted": "market-adjusted: R_m (no parameters)",
    "scholes-williams": "Scholes-Williams beta for non-synchronous trading",
    "dimson": "Dimson beta: sum of the lag, contemporaneous and lead coefficients",
}

PRICE_SOURCES = ("auto", "snapshot", "yahoo")
STUDY_BLOCK = ("study", 0)
OVERLAP_RULES = ("exclude", "keep")

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_TICKER_RE = re.compile(r"^\^?[A-Za-z0-9.=\-]+$")


@dataclass(frozen=True)
class Event:
    """One dated fact of the case."""

    event_id: str
    #: The event's instant, time-zone aware, in its own zone.
    ts: datetime
    #: IANA zone name of the place where the event happened.
    tz: str
    #: True when only the date is known (``ts`` is then noon local time).
    date_only: bool
    title: str
    source: str
    category: str
    #: Last day of a multi-day event (date-only events), else None.
    date_end: date | None = None
    notes: str = ""
    url: str = ""


@dataclass(frozen=True)
class Security:
    """A security or a benchmark index, with the exchange whose calendar it trades on."""

    ticker: str
    name: str
    exchange: str
    currency: str
    #: Benchmark ticker for a security; None for a benchmark itself.
    benchmark: str | None = None
    name_local: str = ""
    #: Models for this security (overrides the study's list); None: the study's.
    models: tuple[str, ...] | None = None
    #: Other benchmarks to show the market model against (sensitivity), e.g. a
    #: sector index; tickers from [[benchmarks]] on the same exchange.
    sensitivity: tuple[str, ...] = ()


@dataclass(frozen=True)
class Factor:
    """A factor series: a ticker's daily returns aligned on each security's sessions.

    For a security session, the factor's return compounded over the factor's
    sessions that closed after the security's previous close and at or before its
    close (moved ``lag`` factor sessions back); see
    :func:`impact.calendars.align_factor`. For a Korean stock and a New York index
    that is the previous New York session, or several after a KRX holiday.
    """

    factor_id: str
    ticker: str
    exchange: str
    name: str
    lag: int = 0


@dataclass(frozen=True)
class Windows:
    """Windows in sessions relative to day 0 (both ends included)."""

    estimation: tuple[int, int] = (-250, -11)
    event: tuple[int, int] = (-5, 10)
    car: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (-1, 1), (0, 5), (0, 10))


@dataclass(frozen=True)
class CrossSection:
    """A second-stage regression of CARs on security characteristics."""

    #: A patsy/statsmodels formula on ``car`` and attribute columns, e.g.
    #: ``car ~ memory_maker + C(exchange)``.
    formula: str
    #: CSV of security attributes (resolved against the study file); it fills the
    #: database's ``security_attributes`` table.
    attributes: Path
    #: The CAR window and model whose CARs are explained.
    window: tuple[int, int] = (0, 1)
    model: str = "market"
    #: The event (default: the primary event).
    event: str | None = None


@dataclass(frozen=True)
class PriceConfig:
    """Where prices come from."""

    source: str = "auto"
    #: Snapshot directory, resolved against the study file's folder; None if not given.
    snapshot: Path | None = None


@dataclass(frozen=True)
class Study:
    """A validated study file."""

    path: Path
    name: str
    title: str
    description: str
    primary_event: str
    #: Ids of the events estimated for every security.
    study_events: tuple[str, ...]
    #: The study's models (names of built-in or [[models]] entries).
    models: tuple[str, ...]
    windows: Windows
    prices: PriceConfig
    #: What to do when another studied event falls in an estimation window.
    estimation_overlap: str
    securities: tuple[Security, ...]
    benchmarks: tuple[Security, ...]
    events: tuple[Event, ...]
    #: Factor series by id ([[factors]]).
    factors: tuple[Factor, ...] = ()
    #: Every model the study may use, by name: the built-ins and [[models]].
    model_specs: dict[str, ModelSpec] = field(default_factory=dict)
    #: The second-stage regression, if any.
    cross_section: CrossSection | None = None
    #: Covariance of the event-dummy regressions: ``nonrobust`` or ``HAC`` (Newey-West).
    event_dummy_cov: str = "nonrobust"
    #: The raw text of the file (stored with each run for reproducibility).
    text: str = field(repr=False, default="")

    def models_for(self, ticker: str) -> tuple[str, ...]:
        """The models fitted for a security: its own list, else the study's."""
        sec = self.instrument(ticker)
        return sec.models if sec.models is not None else self.models

    @property
    def all_models(self) -> tuple[str, ...]:
        """Every model fitted for some security, in first-use order."""
        out = list(self.models)
        for sec in self.securities:
            out += [m for m in (sec.models or ()) if m not in out]
        return tuple(out)

    def event(self, event_id: str) -> Event:
        """Return the event with this id."""
        for ev in self.events:
            if ev.event_id == event_id:
                return ev
        raise KeyError(event_id)

    @property
    def all_tickers(self) -> tuple[str, ...]:
        """Securities, benchmarks and factor tickers (each once), securities first."""
        out = [s.ticker for s in (*self.securities, *self.benchmarks)]
        out += [f.ticker for f in self.factors if f.ticker not in out]
        return tuple(dict.fromkeys(out))

    def instrument(self, ticker: str) -> Security:
        """Return the security, benchmark or factor ticker with this ticker."""
        for s in (*self.securities, *self.benchmarks):
            if s.ticker == ticker:
                return s
        for f in self.factors:
            if f.ticker == ticker:
                return Security(ticker=f.ticker, name=f.name, exchange=f.exchange, currency="")
        raise KeyError(ticker)


# --------------------------------------------------------------------------- helpers


class _Ctx:
    """Error context: the file, its text (to find lines) and the current event."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, pattern: str, start: int = 0) -> int | None:
        rx = re.compile(pattern)
        for i in range(start, len(self.lines)):
            if rx.search(self.lines[i]):
                return i + 1
        return None

    def table_start(self, header: str, index: int = 0) -> int | None:
        """Line of the ``index``-th ``[header]`` or ``[[header]]`` line."""
        rx = re.compile(rf"^\s*\[\[?{re.escape(header)}\]\]?\s*(#.*)?$")
        hits = [i + 1 for i, line in enumerate(self.lines) if rx.match(line)]
        return hits[index] if index < len(hits) else None

    def key_line(self, block: tuple[str, int] | None, key: str) -> int | None:
        """Line of ``key = ...`` inside a table; the table's header line when absent."""
        if block is None:
            return self.line_of(rf"^\s*{re.escape(key)}\s*=")
        start = self.table_start(*block)
        if start is None:
            return None
        for i in range(start, len(self.lines)):
            line = self.lines[i]
            if re.match(r"^\s*\[", line):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return i + 1
        return start

    def event_line(self, event_id: str, key: str | None = None) -> int | None:
        start = self.line_of(rf'^\s*id\s*=\s*["\']{re.escape(event_id)}["\']')
        if start is None or key is None:
            return start
        # the key inside the same [[events]] block
        for i in range(start - 1, len(self.lines)):
            line = self.lines[i]
            if i > start - 1 and line.strip().startswith("[["):
                break
            if re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return i + 1
        return start

    def error(
        self,
        message: str,
        *,
        event_id: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> CatalogError:
        return CatalogError(str(self.path), message, event_id=event_id, field=field, line=line)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed keys: " + ", ".join(sorted(choices))


def _check_keys(
    ctx: _Ctx,
    table: Mapping[str, Any],
    allowed: Sequence[str],
    where: str,
    *,
    event_id: str | None = None,
    block: tuple[str, int] | None = None,
) -> None:
    for key in table:
        if key not in allowed:
            line = ctx.event_line(event_id, key) if event_id else ctx.key_line(block, key)
            raise ctx.error(
                f"unknown key '{key}' in {where}: {_did_you_mean(key, allowed)}",
                event_id=event_id,
                field=key,
                line=line,
            )


def _req_str(
    ctx: _Ctx,
    table: Mapping[str, Any],
    key: str,
    where: str,
    *,
    event_id: str | None = None,
    block: tuple[str, int] | None = None,
) -> str:
    value = table.get(key)
    line = ctx.event_line(event_id, key) if event_id else ctx.key_line(block, key)
    if value is None:
        raise ctx.error(
            f"{where} has no '{key}': add {key} = \"...\"",
            event_id=event_id,
            field=key,
            line=line,
        )
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(
            f"'{key}' must be a non-empty string, not {value!r}",
            event_id=event_id,
            field=key,
            line=line,
        )
    return value.strip()


def _opt_str(
    ctx: _Ctx,
    table: Mapping[str, Any],
    key: str,
    *,
    event_id: str | None = None,
    block: tuple[str, int] | None = None,
) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ctx.error(
            f"'{key}' must be a string, not {value!r}",
            event_id=event_id,
            field=key,
            line=ctx.event_line(event_id, key) if event_id else ctx.key_line(block, key),
        )
    return value.strip()


def _window(ctx: _Ctx, value: Any, key: str) -> tuple[int, int]:
    line = ctx.key_line(("study.windows", 0), key.split(".")[-1])
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or value[0] > value[1]
    ):
        raise ctx.error(
            f"a window is two whole numbers of sessions [start, end] with start <= end, "
            f"e.g. [-250, -11]; got {value!r}",
            field=key,
            line=line,
        )
    return (int(value[0]), int(value[1]))


# --------------------------------------------------------------------------- parsing


def _parse_event(ctx: _Ctx, raw: Any, index: int) -> Event:
    if not isinstance(raw, dict):
        raise ctx.error(f"events[{index}] must be a table ([[events]])", field="events")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not _ID_RE.match(event_id):
        raise ctx.error(
            f"events[{index}] needs an id of lower-case letters, digits, '.', '_' or '-' "
            f"(e.g. id = \"deepseek-r1-release\"); got {event_id!r}",
            field="id",
        )
    allowed = ("id", "date", "date_end", "time", "tz", "title", "source", "category",
               "notes", "url")
    _check_keys(ctx, raw, allowed, f"event '{event_id}'", event_id=event_id)

    tz_name = raw.get("tz")
    if tz_name is None:
        raise ctx.error(
            "the event has no time zone: add tz = \"Asia/Seoul\" (or another IANA zone "
            "name such as \"America/New_York\")",
            event_id=event_id,
            field="tz",
            line=ctx.event_line(event_id),
        )
    if not isinstance(tz_name, str):
        raise ctx.error(f"tz must be a string, not {tz_name!r}", event_id=event_id, field="tz",
                        line=ctx.event_line(event_id, "tz"))
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(tz_name, sorted(available_timezones()), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "use an IANA name like 'Asia/Seoul'"
        raise ctx.error(
            f"'{tz_name}' is not an IANA time zone: {hint}",
            event_id=event_id,
            field="tz",
            line=ctx.event_line(event_id, "tz"),
        ) from None

    has_date, has_time = "date" in raw, "time" in raw
    if has_date == has_time:
        raise ctx.error(
            "give exactly one of 'date' (a date, e.g. date = 2025-01-20) or 'time' "
            "(a local date-time, e.g. time = 2025-01-30T18:22:00)",
            event_id=event_id,
            field="time" if has_time else "date",
            line=ctx.event_line(event_id),
        )
    date_end: date | None = None
    if has_date:
        d = raw["date"]
        if isinstance(d, datetime) or not isinstance(d, date):
            raise ctx.error(
                f"'date' must be a bare TOML date like 2025-01-20 (no quotes, no time); "
                f"got {d!r}. For a known time of day use 'time'.",
                event_id=event_id, field="date", line=ctx.event_line(event_id, "date"),
            )
        ts = datetime.combine(d, DATE_ONLY_TIME, tzinfo=zone)
        if "date_end" in raw:
            de = raw["date_end"]
            if isinstance(de, datetime) or not isinstance(de, date) or de < d:
                raise ctx.error(
                    f"'date_end' must be a TOML date on or after 'date' ({d}); got {de!r}",
                    event_id=event_id, field="date_end",
                    line=ctx.event_line(event_id, "date_end"),
                )
            date_end = de
    else:
        t = raw["time"]
        if not isinstance(t, datetime):
            raise ctx.error(
                f"'time' must be a TOML local date-time like 2025-01-30T18:22:00 (no quotes); "
                f"got {t!r}",
                event_id=event_id, field="time", line=ctx.event_line(event_id, "time"),
            )
        if t.tzinfo is not None:
            raise ctx.error(
                f"'time' has a UTC offset ({t.isoformat()}): write the local time without an "
                f"offset and the place's zone in tz (e.g. time = "
                f"{t.replace(tzinfo=None).isoformat()} and tz = \"Asia/Seoul\")",
                event_id=event_id, field="time", line=ctx.event_line(event_id, "time"),
            )
        if "date_end" in raw:
            raise ctx.error(
                "'date_end' goes with 'date' (a multi-day event), not with 'time'",
                event_id=event_id, field="date_end", line=ctx.event_line(event_id, "date_end"),
            )
        ts = t.replace(tzinfo=zone)

    category = _req_str(ctx, raw, "category", f"event '{event_id}'", event_id=event_id)
    if category not in CATEGORIES:
        raise ctx.error(
            f"unknown category '{category}': {_did_you_mean(category, list(CATEGORIES))} "
            f"(categories: {', '.join(CATEGORIES)})",
            event_id=event_id, field="category", line=ctx.event_line(event_id, "category"),
        )
    return Event(
        event_id=event_id,
        ts=ts,
        tz=tz_name,
        date_only=has_date,
        title=_req_str(ctx, raw, "title", f"event '{event_id}'", event_id=event_id),
        source=_req_str(ctx, raw, "source", f"event '{event_id}'", event_id=event_id),
        category=category,
        date_end=date_end,
        notes=_opt_str(ctx, raw, "notes", event_id=event_id),
        url=_opt_str(ctx, raw, "url", event_id=event_id),
    )


def _parse_instrument(ctx: _Ctx, raw: Any, kind: str, index: int) -> Security:
    if not isinstance(raw, dict):
        raise ctx.error(f"{kind}[{index}] must be a table ([[{kind}]])", field=kind)
    allowed = ["ticker", "name", "exchange", "currency", "name_local"]
    if kind == "securities":
        allowed += ["benchmark", "models", "sensitivity"]
    block = (kind, index)
    _check_keys(ctx, raw, allowed, f"{kind}[{index}]", block=block)
    ticker = _req_str(ctx, raw, "ticker", f"{kind}[{index}]", block=block)
    if not _TICKER_RE.match(ticker):
        raise ctx.error(
            f"'{ticker}' does not look like a Yahoo ticker (e.g. NVDA, 000660.KS, ^GSPC)",
            field=f"{kind}.ticker", line=ctx.key_line(block, "ticker"),
        )
    exchange = _req_str(ctx, raw, "exchange", f"{kind} '{ticker}'", block=block)
    from impact.calendars import known_exchanges  # local: keeps catalog import light

    names = known_exchanges()
    if exchange not in names:
        raise ctx.error(
            f"{kind} '{ticker}': '{exchange}' is not an exchange_calendars calendar name: "
            f"{_did_you_mean(exchange, names)} (e.g. XNYS for NYSE/Nasdaq, XKRX for KRX)",
            field=f"{kind}.exchange",
            line=ctx.key_line(block, "exchange"),
        )
    benchmark = None
    if kind == "securities":
        benchmark = _req_str(ctx, raw, "benchmark", f"security '{ticker}'", block=block)
    return Security(
        ticker=ticker,
        name=_req_str(ctx, raw, "name", f"{kind} '{ticker}'", block=block),
        exchange=exchange,
        currency=_req_str(ctx, raw, "currency", f"{kind} '{ticker}'", block=block),
        benchmark=benchmark,
        name_local=_opt_str(ctx, raw, "name_local", block=block),
        models=_model_list(ctx, raw["models"], ("securities", index))
        if "models" in raw else None,
        sensitivity=_ticker_list(ctx, raw.get("sensitivity", []), ("securities", index),
                                 "sensitivity"),
    )


def parse_study(text: str, path: Path) -> Study:
    """Parse and validate a study file's text.

    Parameters
    ----------
    text
        The TOML text.
    path
        The file it came from (for messages and to resolve relative paths).

    Returns
    -------
    Study
        The validated study.

    Raises
    ------
    CatalogError
        With the file, line, event, key and fix, on the first problem found.
    """
    ctx = _Ctx(path, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise CatalogError(str(path), f"not valid TOML: {exc}",
                           line=int(m.group(1)) if m else None) from None

    _check_keys(ctx, doc, ["study", "securities", "benchmarks", "events", "factors", "models"],
                "the file")
    for key in ("study", "securities", "benchmarks", "events"):
        if key not in doc:
            raise ctx.error(f"the file has no [{key}] section; see docs/catalog.md", field=key)

    raw_study = doc["study"]
    if not isinstance(raw_study, dict):
        raise ctx.error("[study] must be a table", field="study")
    _check_keys(
        ctx, raw_study,
        ["name", "title", "description", "primary_event", "events", "models", "windows",
         "prices", "estimation_overlap", "cross_section", "event_dummy_cov"],
        "[study]", block=STUDY_BLOCK,
    )

    events = [_parse_event(ctx, raw, i) for i, raw in enumerate(_as_list(ctx, doc, "events"))]
    seen: set[str] = set()
    for ev in events:
        if ev.event_id in seen:
            rx = rf'^\s*id\s*=\s*["\']{re.escape(ev.event_id)}["\']'
            first = ctx.line_of(rx)
            second = ctx.line_of(rx, first or 0)
            raise ctx.error(
                f"this id is already used by the event at line {first}: give each event "
                f"its own id",
                event_id=ev.event_id, field="id", line=second,
            )
        seen.add(ev.event_id)

    benchmarks = [
        _parse_instrument(ctx, raw, "benchmarks", i)
        for i, raw in enumerate(_as_list(ctx, doc, "benchmarks"))
    ]
    securities = [
        _parse_instrument(ctx, raw, "securities", i)
        for i, raw in enumerate(_as_list(ctx, doc, "securities"))
    ]
    bench_tickers = {b.ticker for b in benchmarks}
    all_tickers: set[str] = set()
    for inst in (*securities, *benchmarks):
        if inst.ticker in all_tickers:
            raise ctx.error(f"ticker '{inst.ticker}' is listed twice", field="ticker")
        all_tickers.add(inst.ticker)
    for i, sec in enumerate(securities):
        if sec.benchmark not in bench_tickers:
            raise ctx.error(
                f"security '{sec.ticker}' has benchmark '{sec.benchmark}', which is not "
                f"among the [[benchmarks]] ({', '.join(sorted(bench_tickers))}): add it there",
                field="securities.benchmark",
                line=ctx.key_line(("securities", i), "benchmark"),
            )
        for alt in sec.sensitivity:
            other = next((b for b in benchmarks if b.ticker == alt), None)
            if other is None or other.exchange != sec.exchange:
                raise ctx.error(
                    f"security '{sec.ticker}': sensitivity benchmark '{alt}' must be one of the "
                    f"[[benchmarks]] on {sec.exchange} "
                    f"({', '.join(b.ticker for b in benchmarks if b.exchange == sec.exchange)})",
                    field="securities.sensitivity",
                    line=ctx.key_line(("securities", i), "sensitivity"))
        bench = next(b for b in benchmarks if b.ticker == sec.benchmark)
        if bench.exchange != sec.exchange:
            raise ctx.error(
                f"security '{sec.ticker}' trades on {sec.exchange} but its benchmark "
                f"'{bench.ticker}' on {bench.exchange}: a market model needs a benchmark "
                f"on the same calendar",
                field="securities.benchmark",
            )

    name = _req_str(ctx, raw_study, "name", "[study]", block=STUDY_BLOCK)
    if not _ID_RE.match(name):
        raise ctx.error(
            f"study name '{name}' must be lower-case letters, digits, '.', '_' or '-' "
            f"(it names the report folder)",
            field="study.name", line=ctx.key_line(STUDY_BLOCK, "name"),
        )
    primary = _req_str(ctx, raw_study, "primary_event", "[study]", block=STUDY_BLOCK)
    study_events_raw = raw_study.get("events", [primary])
    if not isinstance(study_events_raw, list) or not all(
        isinstance(e, str) for e in study_events_raw
    ):
        raise ctx.error("study.events must be a list of event ids", field="study.events")
    for eid in [primary, *study_events_raw]:
        if eid not in seen:
            raise ctx.error(
                f"event '{eid}' is not in the catalog: "
                f"{_did_you_mean(eid, sorted(seen))}",
                field="study.primary_event" if eid == primary else "study.events",
                line=ctx.key_line(STUDY_BLOCK, "primary_event" if eid == primary else "events"),
            )
    study_events = tuple(dict.fromkeys([primary, *study_events_raw]))

    factors = _parse_factors(ctx, doc.get("factors", []))
    specs = _parse_models(ctx, doc.get("models", []), {f.factor_id for f in factors})
    models_raw = _model_list(ctx, raw_study.get("models", ["market"]), STUDY_BLOCK)
    for where, names in [("study.models", models_raw)] + [
            (f"securities '{sec.ticker}' models", list(sec.models))
            for sec in securities if sec.models is not None]:
        for model_name in names:
            if model_name not in specs:
                raise ctx.error(
                    f"unknown model '{model_name}' in {where}: "
                    f"{_did_you_mean(model_name, list(specs))} "
                    f"(built-in: {', '.join(MODELS)}; others are defined in [[models]])",
                    field=where.split()[0] if where.startswith("study") else "models",
                    line=ctx.key_line(STUDY_BLOCK, "models") if where.startswith("study")
                    else None,
                )

    windows = _parse_windows(ctx, raw_study.get("windows", {}))
    prices = _parse_prices(ctx, raw_study.get("prices", {}), path)
    overlap = raw_study.get("estimation_overlap", "exclude")
    if overlap not in OVERLAP_RULES:
        raise ctx.error(
            f"estimation_overlap must be one of {', '.join(OVERLAP_RULES)}; got {overlap!r}",
            field="study.estimation_overlap",
        )
    return Study(
        path=path,
        name=name,
        title=_req_str(ctx, raw_study, "title", "[study]", block=STUDY_BLOCK),
        description=_opt_str(ctx, raw_study, "description", block=STUDY_BLOCK),
        primary_event=primary,
        study_events=study_events,
        models=tuple(dict.fromkeys(models_raw)),
        factors=factors,
        model_specs=specs,
        event_dummy_cov=_parse_dummy_cov(ctx, raw_study.get("event_dummy_cov", "nonrobust")),
        cross_section=_parse_cross_section(ctx, raw_study.get("cross_section"), path, windows,
                                           models_raw, set(seen)),
        windows=windows,
        prices=prices,
        estimation_overlap=str(overlap),
        securities=tuple(securities),
        benchmarks=tuple(benchmarks),
        events=tuple(events),
        text=text,
    )


def _parse_dummy_cov(ctx: _Ctx, raw: Any) -> str:
    if raw not in ("nonrobust", "HAC"):
        raise ctx.error(f"study.event_dummy_cov must be \"nonrobust\" or \"HAC\" (Newey-West); "
                        f"got {raw!r}", field="study.event_dummy_cov",
                        line=ctx.key_line(STUDY_BLOCK, "event_dummy_cov"))
    return str(raw)


def _parse_cross_section(ctx: _Ctx, raw: Any, path: Path, windows: Windows,
                         models: tuple[str, ...], event_ids: set[str]) -> CrossSection | None:
    if raw is None:
        return None
    block = ("study.cross_section", 0)
    if not isinstance(raw, dict):
        raise ctx.error("[study.cross_section] must be a table", field="study.cross_section")
    _check_keys(ctx, raw, ["formula", "attributes", "window", "model", "event"],
                "[study.cross_section]", block=block)
    formula = _req_str(ctx, raw, "formula", "[study.cross_section]", block=block)
    if "~" not in formula or not formula.split("~")[0].strip() == "car":
        raise ctx.error(f"the formula must explain car, e.g. \"car ~ memory_maker\"; got "
                        f"{formula!r}", field="study.cross_section.formula",
                        line=ctx.key_line(block, "formula"))
    window = windows.car[0] if "window" not in raw else _window(ctx, raw["window"],
                                                                "study.cross_section.window")
    if window not in windows.car:
        raise ctx.error(f"study.cross_section.window {list(window)} is not one of the CAR "
                        f"windows {[list(w) for w in windows.car]}",
                        field="study.cross_section.window", line=ctx.key_line(block, "window"))
    model = raw.get("model", "market")
    if model not in models:
        raise ctx.error(f"study.cross_section.model '{model}' is not among the study's models "
                        f"({', '.join(models)})", field="study.cross_section.model",
                        line=ctx.key_line(block, "model"))
    event = raw.get("event")
    if event is not None and event not in event_ids:
        raise ctx.error(f"study.cross_section.event '{event}' is not in the catalog",
                        field="study.cross_section.event", line=ctx.key_line(block, "event"))
    attrs = raw.get("attributes")
    if not isinstance(attrs, str):
        raise ctx.error("study.cross_section.attributes must be the path of a CSV with a "
                        "ticker column and one column per characteristic (relative to the "
                        "study file)", field="study.cross_section.attributes",
                        line=ctx.key_line(block, "attributes"))
    attributes = (path.parent / attrs).resolve()
    return CrossSection(formula=formula, attributes=attributes, window=window,
                        model=str(model), event=event)


def _ticker_list(ctx: _Ctx, raw: Any, block: tuple[str, int], key: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise ctx.error(f"{key} must be a list of tickers from [[benchmarks]], e.g. "
                        f"{key} = [\"^IXIC\"]", field=key, line=ctx.key_line(block, key))
    return tuple(dict.fromkeys(raw))


def _model_list(ctx: _Ctx, raw: Any, block: tuple[str, int]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(m, str) for m in raw):
        raise ctx.error("models must be a non-empty list of model names, e.g. "
                        "models = [\"market\", \"constant-mean\"]", field="models",
                        line=ctx.key_line(block, "models"))
    return tuple(dict.fromkeys(raw))


def _parse_factors(ctx: _Ctx, raw: Any) -> tuple[Factor, ...]:
    from impact.calendars import known_exchanges

    if not isinstance(raw, list):
        raise ctx.error("[[factors]] must be an array of tables", field="factors")
    out: list[Factor] = []
    for i, item in enumerate(raw):
        block = ("factors", i)
        if not isinstance(item, dict):
            raise ctx.error(f"factors[{i}] must be a table", field="factors")
        _check_keys(ctx, item, ["id", "ticker", "exchange", "name", "lag"], f"factors[{i}]",
                    block=block)
        fid = _req_str(ctx, item, "id", f"factors[{i}]", block=block)
        if not _ID_RE.match(fid) or fid in {f.factor_id for f in out}:
            raise ctx.error(f"factor id '{fid}' must be unique, lower-case letters, digits, "
                            f"'.', '_' or '-'", field="factors.id", line=ctx.key_line(block, "id"))
        exchange = _req_str(ctx, item, "exchange", f"factor '{fid}'", block=block)
        if exchange not in known_exchanges():
            raise ctx.error(f"factor '{fid}': '{exchange}' is not an exchange_calendars name: "
                            f"{_did_you_mean(exchange, known_exchanges())}",
                            field="factors.exchange", line=ctx.key_line(block, "exchange"))
        lag = item.get("lag", 0)
        if not isinstance(lag, int) or isinstance(lag, bool) or not 0 <= lag <= 5:
            raise ctx.error(f"factor '{fid}': lag must be a whole number of sessions from 0 "
                            f"to 5; got {lag!r}", field="factors.lag",
                            line=ctx.key_line(block, "lag"))
        out.append(Factor(factor_id=fid,
                          ticker=_req_str(ctx, item, "ticker", f"factor '{fid}'", block=block),
                          exchange=exchange,
                          name=_opt_str(ctx, item, "name", block=block) or fid, lag=lag))
    return tuple(out)


def _parse_models(ctx: _Ctx, raw: Any, factor_ids: set[str]) -> dict[str, ModelSpec]:
    specs = {name: builtin(name) for name in MODELS}
    if not isinstance(raw, list):
        raise ctx.error("[[models]] must be an array of tables", field="models")
    for i, item in enumerate(raw):
        block = ("models", i)
        if not isinstance(item, dict):
            raise ctx.error(f"models[{i}] must be a table", field="models")
        _check_keys(ctx, item, ["name", "factors", "market"], f"models[{i}]", block=block)
        name = _req_str(ctx, item, "name", f"models[{i}]", block=block)
        if name in specs:
            raise ctx.error(f"model name '{name}' is already taken (built-in or defined twice)",
                            field="models.name", line=ctx.key_line(block, "name"))
        fl = item.get("factors")
        if not isinstance(fl, list) or not fl or not all(isinstance(f, str) for f in fl):
            raise ctx.error(f"model '{name}': factors must be a non-empty list of [[factors]] "
                            f"ids", field="models.factors", line=ctx.key_line(block, "factors"))
        for f in fl:
            if f not in factor_ids:
                raise ctx.error(
                    f"model '{name}': factor '{f}' is not defined in [[factors]]"
                    + (f": {_did_you_mean(f, sorted(factor_ids))}" if factor_ids else ""),
                    field="models.factors", line=ctx.key_line(block, "factors"))
        market = item.get("market", True)
        if not isinstance(market, bool):
            raise ctx.error(f"model '{name}': market must be true or false",
                            field="models.market", line=ctx.key_line(block, "market"))
        specs[name] = ModelSpec(name=name, kind="multi-factor", factors=tuple(fl),
                                market=market)
    return specs


def _as_list(ctx: _Ctx, doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc[key]
    if not isinstance(value, list) or not value:
        raise ctx.error(f"[[{key}]] must hold at least one entry", field=key)
    return value


def _parse_windows(ctx: _Ctx, raw: Any) -> Windows:
    if not isinstance(raw, dict):
        raise ctx.error("[study.windows] must be a table", field="study.windows")
    _check_keys(ctx, raw, ["estimation", "event", "car"], "[study.windows]",
                block=("study.windows", 0))
    default = Windows()
    est = _window(ctx, raw["estimation"], "study.windows.estimation") if "estimation" in raw \
        else default.estimation
    evw = _window(ctx, raw["event"], "study.windows.event") if "event" in raw else default.event
    car_raw = raw.get("car")
    if car_raw is None:
        car = default.car
    else:
        if not isinstance(car_raw, list) or not car_raw:
            raise ctx.error("study.windows.car must be a list of [start, end] windows",
                            field="study.windows.car")
        car = tuple(_window(ctx, c, "study.windows.car") for c in car_raw)
    if est[1] >= evw[0]:
        raise ctx.error(
            f"the estimation window {list(est)} must end before the event window "
            f"{list(evw)} starts (e.g. estimation = [-250, -11] with event = [-5, 10])",
            field="study.windows.estimation", line=ctx.key_line(("study.windows", 0), "estimation"),
        )
    if est[1] - est[0] + 1 < 30:
        raise ctx.error(
            f"the estimation window {list(est)} has fewer than 30 sessions: widen it",
            field="study.windows.estimation", line=ctx.key_line(("study.windows", 0), "estimation"),
        )
    for c in car:
        if c[0] < evw[0] or c[1] > evw[1]:
            raise ctx.error(
                f"CAR window {list(c)} is outside the event window {list(evw)}: "
                f"widen the event window or shorten the CAR window",
                field="study.windows.car", line=ctx.key_line(("study.windows", 0), "car"),
            )
    return Windows(estimation=est, event=evw, car=car)


def _parse_prices(ctx: _Ctx, raw: Any, path: Path) -> PriceConfig:
    if not isinstance(raw, dict):
        raise ctx.error("[study.prices] must be a table", field="study.prices")
    _check_keys(ctx, raw, ["source", "snapshot"], "[study.prices]", block=("study.prices", 0))
    source = raw.get("source", "auto")
    if source not in PRICE_SOURCES:
        raise ctx.error(
            f"study.prices.source must be one of {', '.join(PRICE_SOURCES)}; got {source!r}",
            field="study.prices.source", line=ctx.key_line(("study.prices", 0), "source"),
        )
    snap = raw.get("snapshot")
    snapshot = None
    if snap is not None:
        if not isinstance(snap, str):
            raise ctx.error("study.prices.snapshot must be a path string",
                            field="study.prices.snapshot")
        snapshot = (path.parent / snap).resolve()
    return PriceConfig(source=str(source), snapshot=snapshot)


def load_study(path: str | Path) -> Study:
    """Read and validate a study file.

    Parameters
    ----------
    path
        Path to a ``.toml`` study file.

    Returns
    -------
    Study
        The validated study.

    Raises
    ------
    CatalogError
        If the file is missing or invalid.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(str(p), "no such file: give the path of a study file such as "
                           "events/deepseek.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(str(p), f"cannot read the file: {exc}") from None
    return parse_study(text, p)
