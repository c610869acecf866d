"""Price sources: one interface, two implementations.

* :class:`~impact.sources.snapshot.SnapshotSource` reads a directory of CSV files
  (one per ticker, ``^`` left out of file names) such as ``../shared/data/prices``.
* :class:`~impact.sources.yahoo.YahooSource` downloads from Yahoo Finance through
  yfinance (the only module of `impact` that imports yfinance).

:func:`choose_source` picks one from the study file, the command line and the
environment, so the same command runs offline from a snapshot where one exists
and online elsewhere, without editing anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Protocol

import polars as pl

from impact.errors import SourceError


@dataclass
class PriceData:
    """What a source delivers."""

    #: Prices in :data:`impact.frames.PRICES_SCHEMA`.
    prices: pl.DataFrame
    #: Dividends in :data:`impact.frames.DIVIDENDS_SCHEMA`, or None when the
    #: source has no dividend information at all.
    dividends: pl.DataFrame | None
    #: A label for the source, stored with every price row (e.g. ``snapshot:/path``).
    source: str
    #: Notes worth showing a user (rows dropped, files skipped, ...).
    notes: list[str] = field(default_factory=list)


class PriceSource(Protocol):
    """Anything that can deliver daily prices for tickers."""

    #: Short name: ``snapshot`` or ``yahoo``.
    name: str

    def fetch(self, tickers: list[str], start: date, end: date, *,
              timezones: Mapping[str, str] | None = None) -> PriceData:
        """Daily prices for ``tickers`` between ``start`` and ``end`` (both included).

        ``timezones`` maps a ticker to its exchange's IANA zone, so that a source
        that returns timestamps can turn them into exchange-local dates.
        """
        ...


#: Environment variable naming a snapshot directory (overrides the study file).
ENV_PRICES_DIR = "IMPACT_PRICES_DIR"


def choose_source(
    configured: str,
    snapshot: Path | None,
    *,
    override_source: str | None = None,
    override_dir: Path | None = None,
) -> PriceSource:
    """Pick the price source for a run.

    Parameters
    ----------
    configured
        The study's ``prices.source``: ``auto``, ``snapshot`` or ``yahoo``.
    snapshot
        The study's snapshot directory (already resolved), if any.
    override_source
        ``--source`` from the command line, if given.
    override_dir
        ``--prices-dir`` from the command line, if given.

    Returns
    -------
    PriceSource
        A snapshot source when one is asked for, or (``auto``) when the directory
        exists; a Yahoo source otherwise.

    Raises
    ------
    SourceError
        If a snapshot is required but its directory does not exist.
    """
    mode = override_source or configured
    env_dir = os.environ.get(ENV_PRICES_DIR)
    explicit = override_dir or (Path(env_dir) if env_dir else None)
    if explicit is not None and not explicit.is_dir():
        given = "--prices-dir" if override_dir else ENV_PRICES_DIR
        raise SourceError(
            f"the snapshot directory {explicit} given by {given} does not exist: fix the path, "
            f"or leave it out to use the study file's snapshot or Yahoo"
        )
    directory = explicit or snapshot
    if mode == "yahoo":
        from impact.sources.yahoo import YahooSource

        return YahooSource()
    if mode == "snapshot":
        if directory is None or not directory.is_dir():
            raise SourceError(
                f"the snapshot directory {directory} does not exist: give one with "
                f"--prices-dir DIR or {ENV_PRICES_DIR}, or use --source yahoo"
            )
        from impact.sources.snapshot import SnapshotSource

        return SnapshotSource(directory)
    if directory is not None and directory.is_dir():
        from impact.sources.snapshot import SnapshotSource

        return SnapshotSource(directory)
    from impact.sources.yahoo import YahooSource

    return YahooSource()
