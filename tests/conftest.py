"""Shared fixtures: paths to ../shared, and one DeepSeek run per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PRICES = SHARED / "data" / "prices"
STUDY = ROOT / "events" / "deepseek.toml"


def _need_shared() -> None:
    if not PRICES.is_dir():
        msg = f"{PRICES} is missing: these tests read the shared price snapshot"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(autouse=True)
def _pin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read a user's IMPACT_PRICES_DIR and run in UTC."""
    monkeypatch.delenv("IMPACT_PRICES_DIR", raising=False)
    monkeypatch.setenv("TZ", "UTC")


@pytest.fixture(scope="session")
def prices_dir() -> Path:
    _need_shared()
    return PRICES


@pytest.fixture(scope="session")
def deepseek_run(tmp_path_factory: pytest.TempPathFactory, prices_dir: Path):  # type: ignore[no-untyped-def]
    """The DeepSeek study run once into a fresh database, with its report."""
    from impact.api import run

    tmp = tmp_path_factory.mktemp("deepseek")
    outcome = run(STUDY, db=tmp / "impact.duckdb", prices_dir=prices_dir,
                  reports_dir=tmp / "reports")
    return outcome
