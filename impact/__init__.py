"""impact: event-driven market-impact studies across markets and time zones.

Layers: data in (:mod:`impact.sources`, :mod:`impact.catalog`) -> alignment
(:mod:`impact.calendars`) -> estimation and tests (:mod:`impact.estimation`,
pure) -> storage (:mod:`impact.storage`, DuckDB) -> presentation
(:mod:`impact.report`, :mod:`impact.cli`). :mod:`impact.api` is the Python API
the CLI calls.
"""

__version__ = "0.1.0"

__all__ = ["EventStudy", "StudyResults", "__version__"]


def __getattr__(name: str) -> object:
    """Lazy access to the API classes (keeps ``import impact`` light)."""
    if name in ("EventStudy", "StudyResults"):
        from impact import api

        return getattr(api, name)
    raise AttributeError(name)
