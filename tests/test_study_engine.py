"""The DeepSeek study runs its models through the set-based engine (one code path).

``compute_study`` fits every model of every pair with ``impact.engine.fit_series``:
the market, constant-mean and market-adjusted models through the dense core of
``impact engine``, the multi-factor model (``market+us``) by OLS on stacked windows;
``reference=True`` fits them pair by pair with ``impact.estimation.fit``. Every number
of the study must agree to 1e-9.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import impact.study as study_mod
from impact.catalog import load_study
from impact.estimation import ModelSpec
from impact.sources import choose_source
from impact.study import StudyRun, compute_study
from tests.conftest import STUDY

RTOL = 1e-9
#: Below this a number is compared absolutely (e.g. a t of 1e-15 in both runs).
TINY = 1e-13
FRAMES = ("fits", "abnormal_returns", "car", "sensitivity", "tests", "aggregates", "aar",
          "cross_section")


def _run(prices_dir: Path, reference: bool) -> StudyRun:
    study = load_study(STUDY)
    source = choose_source(study.prices.source, study.prices.snapshot,
                           override_dir=prices_dir)
    return compute_study(study, source, reference=reference)


@pytest.fixture(scope="module")
def both(prices_dir: Path, monkeypatch_module: Any) -> tuple[StudyRun, StudyRun]:
    real_fit = study_mod.fit
    calls: list[str] = []

    def counted_fit(series: Any, spec: ModelSpec | str, *args: Any, **kw: Any) -> Any:
        kind = spec if isinstance(spec, str) else spec.kind
        calls.append(kind)
        return real_fit(series, spec, *args, **kw)

    monkeypatch_module.setattr(study_mod, "fit", counted_fit)
    engine = _run(prices_dir, reference=False)
    assert calls == [], calls  # the engine fitted every model: no fit pair by pair
    reference = _run(prices_dir, reference=True)
    # the study's models, the DeepSeek study's multi-factor model (market+us) among them
    assert {"market", "constant-mean", "market-adjusted", "multi-factor"} <= set(calls)
    return engine, reference


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _worst(a: pl.DataFrame, b: pl.DataFrame, name: str) -> float:
    """Assert equal frames (floats to RTOL); the worst relative error of the floats."""
    assert a.columns == b.columns, name
    assert a.height == b.height, name
    worst = 0.0
    for col in a.columns:
        x, y = a[col], b[col]
        if x.dtype.is_float():
            assert (x.is_null() == y.is_null()).all(), (name, col)
            assert (x.is_nan() == y.is_nan()).fill_null(True).all(), (name, col)
            both_ok = (~x.is_null() & ~x.is_nan()).fill_null(False)
            xv, yv = x.filter(both_ok).to_numpy(), y.filter(both_ok).to_numpy()
            if len(xv):
                den = abs(yv).clip(TINY, None)
                err = float((abs(xv - yv) / den).max())
                assert err < RTOL, (name, col, err)
                worst = max(worst, err)
        elif col == "params":  # JSON {name: estimate}
            for sx, sy in zip(x.to_list(), y.to_list(), strict=True):
                px, py = json.loads(sx), json.loads(sy)
                assert px.keys() == py.keys(), (name, sx, sy)
                for k in px:
                    err = abs(px[k] - py[k]) / max(abs(py[k]), TINY)
                    assert err < RTOL, (name, col, k, err)
                    worst = max(worst, err)
        else:
            assert x.equals(y), (name, col)
    return worst


def test_engine_path_equals_the_per_pair_reference(both: tuple[StudyRun, StudyRun]) -> None:
    engine, reference = both
    worst = {name: _worst(getattr(engine, name), getattr(reference, name), name)
             for name in FRAMES}
    print({k: f"{v:.1e}" for k, v in worst.items()})
    assert engine.notes == reference.notes
    # every frame was compared on real rows
    for name in ("fits", "abnormal_returns", "car", "sensitivity", "tests"):
        assert getattr(engine, name).height > 0, name


def test_the_engine_leaves_out_other_events_windows(both: tuple[StudyRun, StudyRun]) -> None:
    """6 of the 9 market-model fits exclude sessions of another studied event's window."""
    engine, _ = both
    market = engine.fits.filter(pl.col("model") == "market")
    assert market.height == 9
    assert market.filter(pl.col("n_excluded") > 0).height == 6
    # nobs counts the used sessions: 240 minus the excluded ones minus the gaps
    assert (market["nobs"] <= 240 - market["n_excluded"]).all()


def test_published_facts_through_the_engine(both: tuple[StudyRun, StudyRun]) -> None:
    """Day 0 of the engine's rows is the published shock, and its AR is ret - expected.

    NVDA fell 16.97% on 2025-01-27, SK Hynix 9.86% on 2025-01-31 (KRX shut in between).
    """
    engine, _ = both
    ar = engine.abnormal_returns.filter((pl.col("model") == "market")
                                        & (pl.col("event_id") == "deepseek-app-store")
                                        & (pl.col("rel_day") == 0))
    rows = {r["ticker"]: r for r in ar.iter_rows(named=True)}
    assert round(rows["NVDA"]["ret"] * 100, 2) == -16.97
    assert str(rows["NVDA"]["date"]) == "2025-01-27"
    assert round(rows["000660.KS"]["ret"] * 100, 2) == -9.86
    assert str(rows["000660.KS"]["date"]) == "2025-01-31"
    for r in rows.values():  # the engine's AR (its own arithmetic) against the row's parts
        assert r["ar"] == pytest.approx(r["ret"] - r["expected_ret"], rel=1e-12, abs=1e-15)
    assert rows["NVDA"]["ar"] < -0.10  # a shock the market model does not explain


def test_nonsynchronous_betas_through_the_engine(prices_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The DeepSeek study with Scholes-Williams and Dimson models added for every security.

    The engine fits them on stacked windows (no per-pair fit), and every frame equals
    the per-pair reference's to 1e-9.
    """
    base = load_study(STUDY)
    extra = ("scholes-williams", "dimson")
    study = dataclasses.replace(
        base, models=(*base.models, *extra),
        securities=tuple(dataclasses.replace(s, models=(*s.models, *extra))
                         if s.models is not None else s for s in base.securities))
    source = choose_source(study.prices.source, study.prices.snapshot,
                           override_dir=prices_dir)
    real_fit = study_mod.fit
    calls: list[str] = []

    def counted_fit(series: Any, spec: ModelSpec | str, *args: Any, **kw: Any) -> Any:
        calls.append(spec if isinstance(spec, str) else spec.kind)
        return real_fit(series, spec, *args, **kw)

    monkeypatch.setattr(study_mod, "fit", counted_fit)
    engine = compute_study(study, source)
    assert calls == []
    reference = compute_study(study, source, reference=True)
    assert set(extra) <= set(calls)
    for name in FRAMES:
        _worst(getattr(engine, name), getattr(reference, name), name)
    fits = engine.fits.filter(pl.col("model").is_in(list(extra)))
    assert fits.height == 2 * 9  # both models, each event-security pair
    # not the market model's betas: the lagged and leading slopes count
    market = engine.fits.filter(pl.col("model") == "market").sort("event_id", "ticker")
    for m in extra:
        other = fits.filter(pl.col("model") == m).sort("event_id", "ticker")
        assert (other["beta"] - market["beta"]).abs().max() > 0.01, m
