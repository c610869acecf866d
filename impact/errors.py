"""One exception root for everything `impact` reports to a user, and the exit codes.

Every error a user can cause (a bad study file, a price file with a missing
column, too little history, Yahoo out of reach) is an :class:`ImpactError`
subclass whose message names the file, the key and the fix. The CLI turns these
into one line on stderr and the exit code of the subclass; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the ``impact`` command (documented in the README)."""

    OK = 0
    #: An unexpected error (a bug): the traceback is printed.
    INTERNAL = 1
    #: Bad command-line usage (click's own code).
    USAGE = 2
    #: A study file, event catalog or price file is invalid.
    INPUT = 3
    #: The data are valid but do not support the study (too little history, ...).
    DATA = 4
    #: A price source could not be reached (Yahoo, or a missing snapshot directory).
    SOURCE = 5
    #: The database could not be opened or written (locked, not an impact database, ...).
    DATABASE = 6
    #: An output file or folder could not be written (e.g. the report folder).
    OUTPUT = 7
    #: Another ``impact update`` is running (its lock is held): try again later.
    LOCKED = 8


class ImpactError(Exception):
    """Root of all errors `impact` reports to the user."""

    exit_code: ExitCode = ExitCode.INTERNAL


class InputError(ImpactError):
    """An input file (study, catalog, price snapshot) is invalid."""

    exit_code = ExitCode.INPUT


class CatalogError(InputError):
    """An event catalog or study file is invalid.

    Parameters
    ----------
    path
        The file.
    message
        What is wrong and how to fix it.
    event_id
        The event concerned, if any.
    field
        The key concerned, if any (dotted for nested keys).
    line
        The line of the file where the problem is, if known.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        event_id: str | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.event_id = event_id
        self.field = field
        self.detail = message
        where = [f"{path}:{line}" if line else path]
        if event_id is not None:
            where.append(f"event '{event_id}'")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}")


class PriceFileError(InputError):
    """A price snapshot file is malformed."""


class QueryError(InputError):
    """A query given to ``impact sql`` was refused or failed (DuckDB's message is kept)."""


class DataError(ImpactError):
    """The data do not support the requested study (e.g. too little history)."""

    exit_code = ExitCode.DATA


class SourceError(ImpactError):
    """A price source could not deliver (network down, ticker unknown to the source)."""

    exit_code = ExitCode.SOURCE


class OutputError(ImpactError):
    """A report or output file could not be written."""

    exit_code = ExitCode.OUTPUT


class DatabaseError(ImpactError):
    """The DuckDB file could not be used."""

    exit_code = ExitCode.DATABASE
