"""Multi-security inference for a study: groups, test battery, aggregates, regressions.

Pure orchestration over fitted models (no I/O). For each studied event and
model, securities are grouped as

* ``<ticker>``: one security (single-security t and sample-quantile tests);
* ``<exchange>``: the securities of one exchange, which share day 0 (the Korean
  pair of the DeepSeek case): every cross-sectional test, the portfolio and SUR
  event-dummy regressions;
* ``all``: every security of the event, whatever its exchange.

Tests that assume independent securities are kept, and flagged by
``clustering_robust = false``: when securities share an event date their
abnormal returns are cross-correlated and those tests overstate significance.
CAAR across events (group ``all``, event ``*``) is an aggregate only: the same
security would count several times in a test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from impact.estimation import EventSeries, Fit
from impact.inference import aggregate, run_tests
from impact.regression import (
    EventDummyResults,
    dummy_regression,
    portfolio_dummy_regression,
    sur_dummy_regression,
)

#: Tests run on one security.
SINGLE_TESTS = ("t_single", "sq_single")


@dataclass(frozen=True)
class FitKey:
    """Which fit: event, security, its exchange, model."""

    event_id: str
    ticker: str
    exchange: str
    model: str


@dataclass
class Inference:
    """Frames for the ``tests``, ``aggregates`` and ``aar`` tables."""

    tests: pl.DataFrame
    aggregates: pl.DataFrame
    aar: pl.DataFrame
    notes: list[str]


def _nn(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _groups(keys: Sequence[FitKey]) -> list[tuple[str, list[int]]]:
    """Groups of positions: each security, each exchange with 2+, and all (2+)."""
    out: list[tuple[str, list[int]]] = [(k.ticker, [i]) for i, k in enumerate(keys)]
    by_ex: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_ex.setdefault(k.exchange, []).append(i)
    out += [(ex, idx) for ex, idx in sorted(by_ex.items()) if len(idx) >= 2]
    if len(keys) >= 2 and len(by_ex) >= 2:  # with one exchange, its group is "all"
        out.append(("all", list(range(len(keys)))))
    return out


def infer(
    fits: Mapping[FitKey, Fit],
    series: Mapping[tuple[str, str], EventSeries],
    windows: Sequence[tuple[int, int]],
    estimation: tuple[int, int],
    event: tuple[int, int],
    *,
    n_boot: int = 2000,
    seed: int = 20250127,
    cov_type: str = "nonrobust",
) -> Inference:
    """Run the test battery, aggregates and event-dummy regressions.

    Parameters
    ----------
    fits
        Every fit of the run.
    series
        The aligned inputs by (event_id, ticker), for the regressions.
    windows
        CAR windows.
    estimation, event
        The study's windows.
    n_boot
        Bootstrap samples for the CAAR bootstrap test.
    seed
        Bootstrap seed (runs are reproducible).
    cov_type
        Covariance of the event-dummy regressions: ``nonrobust`` or ``HAC``.

    Returns
    -------
    Inference
    """
    test_rows: list[dict[str, Any]] = []
    agg_rows: list[dict[str, Any]] = []
    aar_rows: list[dict[str, Any]] = []
    notes: list[str] = []
    events = sorted({k.event_id for k in fits})
    models = list(dict.fromkeys(k.model for k in fits))
    for model in models:
        for event_id in events:
            keys = [k for k in fits if k.event_id == event_id and k.model == model]
            group_list = _groups(keys)
            for group, idx in group_list:
                gfits = [fits[keys[i]] for i in idx]
                tickers = ", ".join(keys[i].ticker for i in idx)
                for win in windows:
                    names = SINGLE_TESTS if len(idx) == 1 else None
                    for r in run_tests(gfits, win, tests=names, n_boot=n_boot,
                                       rng_seed=seed):
                        if len(idx) > 1 and r.name in SINGLE_TESTS:
                            continue
                        test_rows.append({
                            "event_id": event_id, "group_name": group, "tickers": tickers,
                            "model": model, "window_start": win[0], "window_end": win[1],
                            "test": r.name, "label": r.label, "statistic": _nn(r.statistic),
                            "distribution": r.distribution, "df": _nn(r.df), "p": _nn(r.p),
                            "n": r.n, "status": r.status, "reason": r.reason or None,
                            "clustering_robust": r.clustering_robust})
                    if len(idx) > 1:
                        agg_rows.append(_agg_row(event_id, group, tickers, model, gfits, win))
                if len(idx) > 1:
                    aar_rows += _aar_rows(event_id, group, model, gfits, event)
            if model == "market":
                test_rows += _regression_rows(event_id, keys, group_list, series, windows,
                                              estimation, event, notes, cov_type)
        # CAAR across events: aggregates only
        all_keys = [k for k in fits if k.model == model]
        if len(events) > 1 and len(all_keys) > 1:
            tickers = ", ".join(sorted({k.ticker for k in all_keys}))
            for win in windows:
                agg_rows.append(_agg_row("*", "all", tickers, model,
                                         [fits[k] for k in all_keys], win))
    return Inference(
        tests=pl.DataFrame(test_rows, infer_schema_length=None),
        aggregates=pl.DataFrame(agg_rows, infer_schema_length=None),
        aar=pl.DataFrame(aar_rows, infer_schema_length=None),
        notes=notes,
    )


def _agg_row(event_id: str, group: str, tickers: str, model: str, gfits: Sequence[Fit],
             win: tuple[int, int]) -> dict[str, Any]:
    a = aggregate(gfits, win)
    return {"event_id": event_id, "group_name": group, "tickers": tickers, "model": model,
            "window_start": win[0], "window_end": win[1], "n": a.n, "caar": _nn(a.caar),
            "se_cross_section": _nn(a.caar_se_cs), "se_portfolio": _nn(a.caar_se_bw),
            "se_model": _nn(a.caar_se_model),
            "dropped": "; ".join(r for _, r in a.dropped) or None}


def _aar_rows(event_id: str, group: str, model: str, gfits: Sequence[Fit],
              event: tuple[int, int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for d in range(event[0], event[1] + 1):
        a = aggregate(gfits, (d, d))
        aar = None if a.aar is None else _nn(float(a.aar[0]))
        se = None if a.aar_se is None else _nn(float(a.aar_se[0]))
        rows.append({"event_id": event_id, "group_name": group, "model": model, "rel_day": d,
                     "n": a.n, "aar": aar, "se": se, "caar": None})
    total: float | None = 0.0
    for row in rows:
        aar_d: float | None = row["aar"]
        total = None if total is None or aar_d is None else total + aar_d
        row["caar"] = total
    return rows


def _regression_rows(event_id: str, keys: Sequence[FitKey],
                     groups: Sequence[tuple[str, list[int]]],
                     series: Mapping[tuple[str, str], EventSeries],
                     windows: Sequence[tuple[int, int]], estimation: tuple[int, int],
                     event: tuple[int, int], notes: list[str], cov_type: str
                     ) -> list[dict[str, Any]]:
    """Event-dummy regressions: per security, and portfolio and SUR per exchange group."""
    rows: list[dict[str, Any]] = []

    suffix = " (HAC)" if cov_type == "HAC" else ""

    def emit(res: EventDummyResults, group: str, tickers: str, test: str, label: str,
             robust: bool) -> None:
        label += suffix
        for c in res.cars:
            w = c.joint if test == "sur_joint" else c.wald
            ok = c.status == "ok" and w is not None and math.isfinite(w.stat)
            rows.append({
                "event_id": event_id, "group_name": group, "tickers": tickers,
                "model": "market", "window_start": c.window[0], "window_end": c.window[1],
                "test": test, "label": label,
                "statistic": _nn(w.stat) if ok and w else None,
                "distribution": w.dist_name if w else "F",
                "df": float(w.df_denom) if w and w.df_denom is not None else None,
                "p": _nn(w.pval) if ok and w else None, "n": len(tickers.split(", ")),
                "status": "ok" if ok else "not computed",
                "reason": None if ok else (c.reason or "not computed"),
                "clustering_robust": robust})

    for group, idx in groups:
        members = {keys[i].ticker: series[(event_id, keys[i].ticker)] for i in idx}
        tickers = ", ".join(members)
        try:
            if len(idx) == 1:
                (tk, s), = members.items()
                res = dummy_regression(s, estimation, event, car_windows=windows, ticker=tk,
                                       cov_type=cov_type)
                emit(res, group, tickers, "dummy_wald",
                     "Event-dummy regression, Wald test of the summed dummies", False)
            elif group != "all":
                res = portfolio_dummy_regression(members, estimation, event,
                                                 car_windows=windows, cov_type=cov_type)
                emit(res, group, tickers, "portfolio_wald",
                     "Portfolio event-dummy regression, Wald test", True)
                res = sur_dummy_regression(members, estimation, event, car_windows=windows,
                                           cov_type=cov_type)
                emit(res, group, tickers, "sur_wald",
                     "SUR event-dummy regression, Wald test of the summed CARs", True)
                emit(res, group, tickers, "sur_joint",
                     "SUR event-dummy regression, joint Wald test (every CAR = 0)", True)
        except ValueError as exc:
            notes.append(f"event '{event_id}', group {group}: event-dummy regression not "
                         f"computed: {exc}")
    return rows


def empty_frames() -> Inference:
    """No inference (e.g. no fits)."""
    return Inference(pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), [])
