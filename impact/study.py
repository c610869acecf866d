"""Run an event study in memory: prices -> returns -> alignment -> estimation.

:func:`compute_study` does everything except storage and presentation and
returns a :class:`StudyRun` of canonical frames; :mod:`impact.storage` writes it
to DuckDB in one transaction, and :mod:`impact.report` renders it from there.
Nothing is written before everything has been computed and validated, so a
failure leaves the database as it was.

Every model of every event-security pair is fitted at once by the set-based engine
(:func:`impact.engine.fit_series`: the market, constant-mean and market-adjusted
models through the core of ``impact engine``, the multi-factor, Scholes-Williams and
Dimson models on stacked windows), with the estimation-window exclusions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from impact import __version__
from impact.analysis import FitKey, infer
from impact.calendars import Alignment, Sessions, align, align_factor, exchange_tz, sessions
from impact.catalog import Event, Study
from impact.engine import SeriesFit, fit_series
from impact.errors import DataError
from impact.estimation import (
    CarResult,
    EventSeries,
    Fit,
    ModelSpec,
    builtin,
    car,
    fit,
    sq_pvalue,
    t_pvalue,
)
from impact.returns import compute_returns
from impact.sources import PriceSource

#: An estimation window must have usable returns on at least this share of its sessions.
MIN_ESTIMATION_SHARE = 0.5


@dataclass
class StudyRun:
    """Everything one run computed, as canonical frames, ready to be stored."""

    study: Study
    params: dict[str, Any]
    price_source: str
    inputs_hash: str
    created_at: datetime
    prices: pl.DataFrame
    dividends: pl.DataFrame | None
    returns: pl.DataFrame
    alignments: pl.DataFrame
    fits: pl.DataFrame
    abnormal_returns: pl.DataFrame
    car: pl.DataFrame
    tests: pl.DataFrame = field(default_factory=pl.DataFrame)
    aggregates: pl.DataFrame = field(default_factory=pl.DataFrame)
    aar: pl.DataFrame = field(default_factory=pl.DataFrame)
    security_attributes: pl.DataFrame = field(default_factory=pl.DataFrame)
    sensitivity: pl.DataFrame = field(default_factory=pl.DataFrame)
    cross_section: pl.DataFrame = field(default_factory=pl.DataFrame)
    notes: list[str] = field(default_factory=list)


def _span(study: Study) -> tuple[date, date]:
    """Calendar span needed.

    The estimation window before the first event, the event window after the last.
    """
    w = study.windows
    ts = [study.event(e).ts for e in study.study_events] + [e.ts for e in study.events]
    first = min(t.date() for t in ts)
    last = max(t.date() for t in ts)
    before = math.ceil(abs(min(w.estimation[0], w.event[0], 0)) * 7 / 5 * 1.15) + 40
    after = math.ceil(max(w.event[1], 0) * 7 / 5 * 1.15) + 40
    today = datetime.now(UTC).date()
    end = min(last + timedelta(days=after), today + timedelta(days=300))
    return first - timedelta(days=before), max(end, last + timedelta(days=7))


def _hash_inputs(study: Study, prices: pl.DataFrame, dividends: pl.DataFrame | None,
                 extra_events: Sequence[Event] = ()) -> str:
    """SHA-256 of what a run depends on.

    The study file, the prices and dividends used (whatever their source), and the
    confirmed news events merged into the study.
    """
    h = hashlib.sha256()
    h.update(study.text.encode())
    h.update(prices.sort(["ticker", "date"]).write_csv().encode())
    if dividends is not None and dividends.height:
        h.update(dividends.sort(["ticker", "ex_date"]).select(
            "ticker", "ex_date", "amount").write_csv().encode())
    for ev in sorted(extra_events, key=lambda e: e.event_id):
        h.update(f"{ev.event_id}|{ev.ts.isoformat()}|{ev.tz}|{ev.title}".encode())
    return h.hexdigest()


def compute_study(
    study: Study,
    source: PriceSource,
    *,
    progress: Callable[[str], None] | None = None,
    extra_events: Sequence[Event] = (),
    reference: bool = False,
) -> StudyRun:
    """Compute a study from a validated study file and a price source.

    Parameters
    ----------
    study
        From :func:`impact.catalog.load_study`.
    source
        Where prices come from (:func:`impact.sources.choose_source`).
    progress
        Called with a short message at each stage (the CLI prints them on stderr).
    extra_events
        Confirmed news events to add to the catalog (shown on the timeline; not
        estimated unless listed in the study's events).
    reference
        Fit every model pair by pair with :func:`impact.estimation.fit` (the
        reference, for verification) instead of the set-based engine
        (:func:`impact.engine.fit_series`), which is the default. Both give the same
        numbers to 1e-9 (``tests/test_study_engine.py``).

    Returns
    -------
    StudyRun

    Raises
    ------
    DataError
        If a security or benchmark has too little history for a window.
    InputError, SourceError
        From the price source.
    """
    say = progress or (lambda _msg: None)
    known = {e.event_id for e in study.events}
    extra = tuple(e for e in extra_events if e.event_id not in known)
    if extra:
        study = dataclasses.replace(study, events=study.events + extra)
    start, end = _span(study)
    exchanges = sorted({s.exchange for s in (*study.securities, *study.benchmarks)})
    sess_of_ex: dict[str, Sessions] = {ex: sessions(ex, start, end) for ex in exchanges}
    tz_of_ex = {ex: exchange_tz(ex) for ex in exchanges}

    # Every catalog event on every exchange: the day-0 table.
    aligned: dict[tuple[str, str], Alignment] = {}
    for ev in study.events:
        for ex in exchanges:
            aligned[(ev.event_id, ex)] = align(ev.event_id, ev.ts, sess_of_ex[ex], tz_of_ex[ex])

    tickers = list(study.all_tickers)
    say(f"fetching prices for {len(tickers)} tickers from {source.name}")
    exchange_of = {t: study.instrument(t).exchange for t in tickers}
    data = source.fetch(tickers, start, end,
                        timezones={t: tz_of_ex[ex] for t, ex in exchange_of.items()})
    notes = list(data.notes)
    sess_of_ticker = {t: sess_of_ex[exchange_of[t]] for t in tickers}
    prices, dropped = _drop_unfinished_sessions(data.prices, sess_of_ticker)
    notes.extend(dropped)
    dividends = data.dividends
    if dividends is not None:
        dividends = dividends.filter(pl.col("ex_date").is_between(start, end))
        notes.extend(_dividend_notes(dividends, sess_of_ticker, study))
    rr = compute_returns(prices, dividends, sess_of_ticker)
    notes.extend(rr.notes)
    ret_lookup: dict[str, dict[date, float]] = {}
    basis_lookup: dict[str, dict[date, str]] = {}
    first_ret: dict[str, date] = {}
    last_ret: dict[str, date] = {}
    for (tk,), g in rr.returns.partition_by("ticker", as_dict=True).items():
        rets = {d: (r if r is not None else math.nan) for d, r in zip(g["date"], g["ret"],
                                                                      strict=True)}
        ret_lookup[str(tk)] = rets
        basis_lookup[str(tk)] = dict(zip(g["date"], g["basis"], strict=True))
        if g.height:
            first_ret[str(tk)] = min(g["date"])
            last_ret[str(tk)] = max(g["date"])
    for t in tickers:
        if t not in ret_lookup:
            raise DataError(f"'{t}' has no usable prices between {start} and {end}")

    w = study.windows
    all_fits: dict[FitKey, Fit] = {}
    sens_rows: list[dict[str, Any]] = []
    all_series: dict[tuple[str, str], EventSeries] = {}
    fit_rows: list[dict[str, Any]] = []
    ar_rows: list[dict[str, Any]] = []
    car_rows: list[dict[str, Any]] = []
    jobs: list[_Job] = []
    n_fits = len(study.study_events) * sum(len(study.models_for(s.ticker))
                                           for s in study.securities)
    say(f"estimating {len(study.study_events)} events x {len(study.securities)} securities: "
        f"{n_fits} fits of {len(study.all_models)} models")
    for event_id in study.study_events:
        for sec in study.securities:
            ex = sec.exchange
            sess = sess_of_ex[ex]
            al = aligned[(event_id, ex)]
            i0 = sess.index_of(al.day0)
            assert i0 is not None
            i_start = i0 + w.estimation[0]
            est_first = sess.dates[i_start] if i_start >= 0 else None
            for tk in (sec.ticker, str(sec.benchmark)):
                have = first_ret[tk]
                if est_first is None or have > est_first:
                    need = est_first or f"before {sess.dates[0]}"
                    raise DataError(
                        f"'{tk}' has too little history for event '{event_id}': the estimation "
                        f"window {list(w.estimation)} starts {-w.estimation[0]} {ex} sessions "
                        f"before day 0 ({al.day0}), on {need}, but its returns start on {have}. "
                        f"Load earlier prices or shorten [study.windows] estimation."
                    )
            # sessions after the last price of the security or its benchmark are not
            # gaps: they have not happened yet (or the data stop there)
            data_end = min(last_ret[sec.ticker], last_ret[str(sec.benchmark)])
            i_last = sess.index_of(data_end)
            assert i_last is not None
            i_end = min(i0 + w.event[1], i_last)
            if i_end < i0 + w.event[1]:
                notes.append(
                    f"{sec.ticker}, event '{event_id}': prices end on {data_end}, before the "
                    f"end of the event window (day {w.event[1]:+d}): windows past it are "
                    f"incomplete")
            if i_end < i0 + w.estimation[1]:
                raise DataError(
                    f"'{sec.ticker}', event '{event_id}': prices end on {data_end}, before "
                    f"the end of the estimation window (day 0 is {al.day0}): load later "
                    f"prices or drop the event from [study] events")
            idx = range(i_start, i_end + 1)
            dates = tuple(sess.dates[i] for i in idx)
            rel = np.array([i - i0 for i in idx])
            ret = np.array([ret_lookup[sec.ticker].get(d, math.nan) for d in dates])
            mkt = np.array([ret_lookup[str(sec.benchmark)].get(d, math.nan) for d in dates])
            excluded = np.zeros(len(idx), dtype=bool)
            for other in study.study_events:
                if other == event_id:
                    continue
                j0 = sess.index_of(aligned[(other, ex)].day0)
                assert j0 is not None
                lo, hi = j0 + w.event[0] - i0, j0 + w.event[1] - i0
                hit = (rel >= max(lo, w.estimation[0])) & (rel <= min(hi, w.estimation[1]))
                if hit.any():
                    if study.estimation_overlap == "exclude":
                        excluded |= hit
                        notes.append(
                            f"{sec.ticker}, event '{event_id}': {int(hit.sum())} estimation-window "
                            f"sessions inside the event window of '{other}' were left out"
                        )
                    else:
                        notes.append(
                            f"{sec.ticker}, event '{event_id}': the estimation window contains "
                            f"the event window of '{other}' ({int(hit.sum())} sessions); kept "
                            f"because estimation_overlap = \"keep\""
                        )
            factor_values = {
                f.factor_id: align_factor(dates, sess, sess_of_ex[f.exchange],
                                          ret_lookup[f.ticker], f.lag)
                for f in study.factors
            }
            series = EventSeries(rel_day=rel, dates=dates, ret=ret, mkt=mkt, excluded=excluded,
                                 factors=factor_values)
            all_series[(event_id, sec.ticker)] = series
            # studied events whose day 0 on this exchange falls inside the event window
            others_in_window: dict[str, int] = {}
            for other in study.study_events:
                j0 = sess.index_of(aligned[(other, ex)].day0)
                assert j0 is not None
                if other != event_id and w.event[0] <= j0 - i0 <= w.event[1]:
                    others_in_window[other] = j0 - i0
            if others_in_window:
                notes.append(
                    f"{sec.ticker}, event '{event_id}': the event window also holds day 0 of "
                    + ", ".join(f"'{o}' (day {d:+d})" for o, d in others_in_window.items())
                    + ": CARs over those days mix the events")
            window_info = {"est_window_start": sess.dates[i_start],
                           "est_window_end": sess.dates[i0 + w.estimation[1]],
                           "n_excluded": int(excluded.sum())}
            jobs.append(_Job(event_id, sec.ticker, ex, str(sec.benchmark), series, window_info,
                             others_in_window))

    # every model of every pair at once, through the set-based engine
    # (impact.engine.fit_series); reference=True: pair by pair (impact.estimation.fit)
    engine_fits: dict[tuple[str, str, str], SeriesFit] = {}
    for group, group_spec in ({} if reference else _engine_groups(study)).items():
        group_jobs = [j for j in jobs
                      if any(_engine_key(study.model_specs[m]) == group
                             for m in study.models_for(j.ticker))]
        engine_fits.update(zip(
            ((j.event_id, j.ticker, group) for j in group_jobs),
            fit_series([j.series for j in group_jobs], estimation=w.estimation,
                       event=w.event, car_windows=w.car, model=group_spec), strict=True))
    est_len = w.estimation[1] - w.estimation[0] + 1
    for j in jobs:
        sec = study.instrument(j.ticker)
        for model in study.models_for(j.ticker):
            spec = study.model_specs[model]
            sf = engine_fits.get((j.event_id, j.ticker, _engine_key(spec)))
            try:
                f = _fit(j.series, spec, w.estimation, w.event, sf)
            except ValueError as exc:
                raise DataError(
                    f"cannot fit the {model} model for '{j.ticker}', event '{j.event_id}': "
                    f"{exc}"
                ) from None
            usable = est_len - int(j.series.excluded.sum())
            if f.nobs < MIN_ESTIMATION_SHARE * usable:
                raise DataError(
                    f"'{j.ticker}', event '{j.event_id}': only {f.nobs} of {usable} "
                    f"estimation-window sessions have returns (gaps in the prices); at least "
                    f"{MIN_ESTIMATION_SHARE:.0%} are needed. Fill the gaps or move the window."
                )
            key = {"event_id": j.event_id, "ticker": j.ticker, "model": model}
            all_fits[FitKey(j.event_id, j.ticker, j.exchange, model)] = f
            fit_rows.append({**_fit_row(key, j.benchmark, f), **j.window_info})
            ar_rows.extend(
                {**row, "basis": basis_lookup[j.ticker].get(row["date"])}
                for row in _ar_rows(key, f))
            for win in w.car:
                c = _car(f, win, sf)
                car_rows.append({**key, "window_start": win[0], "window_end": win[1],
                                 "start_date": c.start_date, "end_date": c.end_date,
                                 "n_days": c.n_days, "car": _nn(c.car), "se": _nn(c.se),
                                 "t": _nn(c.t), "df": c.df if c.status == "ok" else None,
                                 "p": _nn(c.p), "sq_p": _nn(c.sq_p),
                                 "sq_n": c.sq_n if c.status == "ok" else None,
                                 "bhar": _nn(c.bhar), "status": c.status,
                                 "reason": c.reason or None,
                                 "other_events": ", ".join(
                                     o for o, d in j.others_in_window.items()
                                     if win[0] <= d <= win[1]) or None})
        if j.event_id == study.primary_event and sec.sensitivity:
            sens_rows += _sensitivity(j.event_id, j.ticker,
                                      [j.benchmark, *sec.sensitivity], j.series,
                                      j.series.dates, ret_lookup, w.estimation, w.event, w.car,
                                      reference)

    say("testing: cross-sectional tests, aggregates and event-dummy regressions")
    inference = infer(all_fits, all_series, w.car, w.estimation, w.event,
                      cov_type=study.event_dummy_cov)
    notes.extend(inference.notes)
    attributes, cross = _cross_section(study, car_rows)
    params = {
        "study": study.name,
        "title": study.title,
        "study_file": str(study.path),
        "events": list(study.study_events),
        "primary_event": study.primary_event,
        "models": list(study.all_models),
        "models_by_security": {s.ticker: list(study.models_for(s.ticker))
                               for s in study.securities},
        "model_specs": {name: {"kind": spec.kind, "factors": list(spec.factors),
                               "market": spec.market}
                        for name, spec in study.model_specs.items()
                        if name in study.all_models},
        "factors": [{"id": f.factor_id, "ticker": f.ticker, "exchange": f.exchange,
                     "lag": f.lag} for f in study.factors],
        "windows": {"estimation": list(w.estimation), "event": list(w.event),
                    "car": [list(c) for c in w.car]},
        "estimation_overlap": study.estimation_overlap,
        "event_dummy_cov": study.event_dummy_cov,
        "versions": _versions(),
        "provenance": _provenance(study, rr.returns, dividends, rr.gaps, ar_rows),
        "price_source": data.source,
        "securities": [{"ticker": s.ticker, "exchange": s.exchange, "benchmark": s.benchmark}
                       for s in study.securities],
    }
    align_rows = [
        {"event_id": a.event_id, "exchange": a.exchange,
         "event_ts": a.ts.astimezone(UTC).replace(tzinfo=None), "day0": a.day0,
         "day0_open": a.day0_open_utc, "day0_close": a.day0_close_utc,
         "hours_to_close": a.hours_to_close, "during_session": a.during_session,
         "closed_weekdays": a.closed_weekdays, "calendar_days": a.calendar_days}
        for a in aligned.values()
    ]
    return StudyRun(
        study=study,
        params=params,
        price_source=data.source,
        inputs_hash=_hash_inputs(study, prices, dividends, extra),
        created_at=datetime.now(UTC).replace(tzinfo=None),
        prices=prices,
        dividends=dividends,
        returns=rr.returns,
        alignments=pl.DataFrame(align_rows),
        fits=pl.DataFrame(fit_rows, infer_schema_length=None),
        abnormal_returns=pl.DataFrame(ar_rows, infer_schema_length=None),
        car=pl.DataFrame(car_rows, infer_schema_length=None),
        tests=inference.tests,
        security_attributes=attributes,
        sensitivity=pl.DataFrame(sens_rows, infer_schema_length=None),
        cross_section=cross,
        aggregates=inference.aggregates,
        aar=inference.aar,
        notes=notes,
    )


def _engine_key(spec: ModelSpec) -> str:
    """The engine's group of a model's fits.

    A multi-factor model's ``multi-factor:<name>``; else its kind (the fits of the
    built-in models do not depend on the name).
    """
    return f"multi-factor:{spec.name}" if spec.kind == "multi-factor" else spec.kind


def _engine_groups(study: Study) -> dict[str, ModelSpec]:
    """The engine's groups of the models the study fits (sorted), and the model of each."""
    groups: dict[str, ModelSpec] = {}
    for sec in study.securities:
        for m in study.models_for(sec.ticker):
            spec = study.model_specs[m]
            groups[_engine_key(spec)] = spec if spec.kind == "multi-factor" else builtin(
                spec.kind)
    return dict(sorted(groups.items()))


@dataclass(frozen=True)
class _Job:
    """One event-security pair's aligned inputs, ready to fit."""

    event_id: str
    ticker: str
    exchange: str
    benchmark: str
    series: EventSeries
    window_info: dict[str, Any]
    others_in_window: dict[str, int]


def _fit(series: EventSeries, spec: ModelSpec, estimation: tuple[int, int],
         event: tuple[int, int], sf: SeriesFit | None) -> Fit:
    """The engine's fit when it made one (``sf``), else :func:`impact.estimation.fit`.

    Raises ``ValueError`` with the reference's message when the fit fails either way.
    """
    if sf is None:
        return fit(series, spec, estimation, event)
    if sf.fit is None:
        raise ValueError(sf.error)
    return dataclasses.replace(sf.fit, model=spec.name)


def _car(f: Fit, window: tuple[int, int], sf: SeriesFit | None) -> CarResult:
    """The CAR of a window; with the engine's CAR and variance when it computed them."""
    if sf is None:
        return car(f, window)
    sums = sf.cars[window]
    c = car(f, window, sums=sums)
    if (c.status == "ok") != (sums is not None):  # never silently mix two answers
        raise RuntimeError(f"the engine and the reference disagree on whether the CAR "
                           f"{window} is complete ({c.status}: {c.reason})")
    return c


def _nn(x: float) -> float | None:
    """NaN -> None (NULL in the database)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _fit_row(key: dict[str, Any], benchmark: str | None, f: Fit) -> dict[str, Any]:
    return {**key, "benchmark": benchmark, "alpha": _nn(f.alpha), "beta": _nn(f.beta),
            "params": json.dumps(dict(zip(f.param_names, f.params, strict=True))),
            "sigma": f.sigma, "r2": _nn(f.r2), "nobs": f.nobs, "k": f.k, "df": f.df,
            "est_start": f.est_start, "est_end": f.est_end}


def _ar_rows(key: dict[str, Any], f: Fit) -> list[dict[str, Any]]:
    rows = []
    se = f.ar_se
    for i, d in enumerate(f.ev_dates):
        ar = f.ev_ar[i]
        ok = bool(np.isfinite(ar))
        sar = ar / se[i] if ok else math.nan
        sq = sq_pvalue(ar, f.est_resid, 1)[0] if ok else math.nan
        rows.append({
            **key, "date": d, "rel_day": int(f.ev_rel_day[i]), "ret": _nn(f.ev_ret[i]),
            "benchmark_ret": _nn(f.ev_mkt[i]), "expected_ret": _nn(f.ev_expected[i]),
            "ar": _nn(ar), "se": _nn(se[i]), "t": _nn(sar),
            "p": _nn(t_pvalue(sar, f.df)) if ok else None, "sq_p": _nn(sq),
        })
    # cumulative AR from the first event-window day, with its FEC standard error
    ar = f.ev_ar
    for i, row in enumerate(rows):
        if np.all(np.isfinite(ar[: i + 1])):
            row["car"] = float(ar[: i + 1].sum())
            row["car_se"] = float(np.sqrt(f.ev_cov[: i + 1, : i + 1].sum()))
        else:
            row["car"] = row["car_se"] = None
    return rows


def _drop_unfinished_sessions(prices: pl.DataFrame, sess_of: dict[str, Sessions]
                              ) -> tuple[pl.DataFrame, list[str]]:
    """Drop rows of sessions that have not closed yet (a live bar is not a close)."""
    now = np.datetime64(datetime.now(UTC).replace(tzinfo=None), "ns")
    keep, notes = [], []
    for (tk,), g in prices.partition_by("ticker", as_dict=True, maintain_order=True).items():
        sess = sess_of[str(tk)]
        open_days = {d for d, c in zip(sess.dates, sess.closes, strict=True) if c > now}
        live = g.filter(pl.col("date").is_in(list(open_days)))
        if live.height:
            notes.append(f"{tk}: {live.height} row(s) for sessions that have not closed yet "
                         f"({', '.join(str(d) for d in live['date'])}) were left out")
        keep.append(g.filter(~pl.col("date").is_in(list(open_days))))
    return (pl.concat(keep) if keep else prices), notes


def _dividend_notes(dividends: pl.DataFrame, sess_of: dict[str, Sessions], study: Study
                    ) -> list[str]:
    """Warn about dividends that cannot be applied as given."""
    notes = []
    for row in dividends.iter_rows(named=True):
        tk = row["ticker"]
        if tk not in sess_of:
            continue
        if sess_of[tk].index_of(row["ex_date"]) is None:
            notes.append(f"{tk}: the dividend with ex-date {row['ex_date']} is not on a "
                         f"{sess_of[tk].exchange} session and was not applied")
        cur = study.instrument(tk).currency
        if row["currency"] and row["currency"] != cur:
            notes.append(f"{tk}: the dividend of {row['ex_date']} is in {row['currency']}, "
                         f"the prices in {cur}: check the amount")
    return notes


def _cross_section(study: Study, car_rows: list[dict[str, Any]]
                   ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The second-stage regression of the study file, and the attributes it read."""
    cs = study.cross_section
    if cs is None:
        return pl.DataFrame(), pl.DataFrame()
    import pandas as pd

    from impact.regression import cross_sectional_regression, read_security_attributes

    attrs = read_security_attributes(cs.attributes)
    event_id = cs.event or study.primary_event
    cars = pd.DataFrame([
        {"ticker": r["ticker"], "car": r["car"]} for r in car_rows
        if r["event_id"] == event_id and r["model"] == cs.model
        and (r["window_start"], r["window_end"]) == cs.window and r["car"] is not None
    ])
    if cars.empty:
        raise DataError(f"[study.cross_section]: no complete CAR{list(cs.window)} for event "
                        f"'{event_id}' and model '{cs.model}' to explain")
    info = pd.DataFrame([{"ticker": s.ticker, "exchange": s.exchange, "currency": s.currency}
                         for s in study.securities])
    frame = cars.merge(info, on="ticker").merge(attrs, on="ticker", how="left",
                                                suffixes=("", "_attr"))
    try:
        res = cross_sectional_regression(frame, cs.formula)
    except ValueError as exc:
        raise DataError(f"[study.cross_section] in {study.path}: {exc}") from None
    rows = [{"event_id": event_id, "model": cs.model, "window_start": cs.window[0],
             "window_end": cs.window[1], "formula": cs.formula, "term": str(term),
             "coef": float(res.params[term]), "se": _nn(float(res.std_errors[term])),
             "t": _nn(float(res.tstats[term])), "p": _nn(float(res.pvalues[term])),
             "nobs": res.nobs, "df_resid": res.df_resid, "r2": _nn(res.rsquared),
             "cov_type": res.cov_type, "descriptive": res.descriptive_only,
             "notice": (res.notice[:1].upper() + res.notice[1:]) if res.notice else None}
            for term in res.params.index]
    attr_rows = [{"ticker": str(row["ticker"]), "attribute": str(col),
                  "value": float(v) if isinstance(v, int | float) and not isinstance(v, bool)
                  else None, "value_text": None if isinstance(v, int | float) else str(v),
                  "source": str(cs.attributes)}
                 for row in attrs.to_dict("records") for col, v in row.items()
                 if col != "ticker"]
    return (pl.DataFrame(attr_rows, infer_schema_length=None),
            pl.DataFrame(rows, infer_schema_length=None))


def _sensitivity(event_id: str, ticker: str, benchmarks: list[str], series: EventSeries,
                 dates: tuple[date, ...], ret_lookup: dict[str, dict[date, float]],
                 estimation: tuple[int, int], event: tuple[int, int],
                 windows: tuple[tuple[int, int], ...], reference: bool = False
                 ) -> list[dict[str, Any]]:
    """The market model of one security against several benchmarks (same windows)."""
    alts = [EventSeries(rel_day=series.rel_day, dates=series.dates, ret=series.ret,
                        mkt=np.array([ret_lookup[b].get(d, math.nan) for d in dates]),
                        excluded=series.excluded) for b in benchmarks]
    engine: list[SeriesFit | None] = (
        [None] * len(alts) if reference
        else list(fit_series(alts, estimation=estimation, event=event, car_windows=windows)))
    rows = []
    for b, alt, sf in zip(benchmarks, alts, engine, strict=True):
        try:
            f = _fit(alt, builtin("market"), estimation, event, sf)
        except ValueError as exc:
            raise DataError(f"cannot fit '{ticker}' against sensitivity benchmark '{b}': "
                            f"{exc}") from None
        for win in windows:
            c = _car(f, win, sf)
            rows.append({"event_id": event_id, "ticker": ticker, "benchmark": b,
                         "beta": _nn(f.beta), "r2": _nn(f.r2), "nobs": f.nobs,
                         "window_start": win[0], "window_end": win[1], "car": _nn(c.car),
                         "se": _nn(c.se), "t": _nn(c.t), "p": _nn(c.p), "status": c.status,
                         "reason": c.reason or None})
    return rows


def _versions() -> dict[str, str]:
    """Versions of Python and of the packages a run depends on."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version(), "impact": __version__}
    for pkg in ("numpy", "scipy", "polars", "duckdb", "statsmodels", "pandas",
                "exchange_calendars", "yfinance", "matplotlib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _provenance(study: Study, returns: pl.DataFrame, dividends: pl.DataFrame | None,
                gaps: dict[str, list[str]], ar_rows: list[dict[str, Any]]
                ) -> dict[str, Any]:
    """Per ticker, over the sessions the run used: return basis, gaps, dividends applied."""
    used = [r["date"] for r in ar_rows]
    if not used:
        return {}
    out: dict[str, Any] = {}
    for t in study.all_tickers:
        g = returns.filter(pl.col("ticker") == t)
        if g.height == 0:
            continue
        counts = g.group_by("basis").len().sort("basis")
        divs: list[dict[str, Any]] = []
        if dividends is not None:
            d = dividends.filter(pl.col("ticker") == t).sort("ex_date")
            bases = dict(zip(g["date"], g["basis"], strict=True))
            divs = [{"ex_date": str(x["ex_date"]), "amount": x["amount"],
                     "currency": x["currency"],
                     "how": ("in the adjusted close" if bases.get(x["ex_date"]) == "adj_close"
                             else "added to the close-to-close return"
                             if bases.get(x["ex_date"]) == "close+dividends"
                             else "not used (no return that day)")}
                    for x in d.iter_rows(named=True)]
        out[t] = {"basis": dict(zip(counts["basis"], counts["len"], strict=True)),
                  "first": str(g["date"].min()), "last": str(g["date"].max()),
                  "gaps": gaps.get(t, []), "dividends": divs}
    return out
