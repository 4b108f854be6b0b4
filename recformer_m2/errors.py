"""Errors that name the offending file, row and field.

The command line prints any ``ValueError`` or ``OSError`` as one line (a traceback only with ``--verbose``),
so raise a subclass of one of them, with a message that says where and why, for anything a user can fix.
"""

from __future__ import annotations


class DataFormatError(ValueError):
    """A data file that cannot be read as Amazon-M2 data; says where and why."""

    def __init__(self, path: str, message: str, row: int | None = None, field: str | None = None):
        where = str(path)
        if row is not None:
            where += f", data row {row}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.row = row
        self.field = field


class MissingTextError(DataFormatError):
    """A method that reads product text was given a data folder without any (an ID-only folder).

    Callers that run many methods (the main job) catch it to skip text methods with a note."""

    def __init__(self, source: str, reason: str, method: str):
        super().__init__(source, f"{reason}; method {method!r} needs it")
        self.method = method


class EmptyPredictionError(ValueError):
    """A method left test rows without a single prediction: a submission would be silently wrong."""
