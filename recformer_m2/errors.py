"""Errors that name the offending file, row and field."""

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
