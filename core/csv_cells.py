"""CSV files the platform writes, safe to open in a spreadsheet.

A cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula
by Excel and LibreOffice (OWASP "CSV injection"): patient names, descriptions and
audit details come from outside, so such text cells get a leading `'`. Numbers are
written as they are (a negative number is not text a spreadsheet would run).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: Any) -> Any:
    """`value` with a leading `'` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return value


class SafeCsvWriter:
    """`csv.writer` whose every text cell goes through `neutralise_formula`."""

    def __init__(self, out: TextIO, **options: Any) -> None:
        self.writer = csv.writer(out, **options)

    def writerow(self, row: Sequence[Any]) -> None:
        self.writer.writerow([neutralise_formula(value) for value in row])

    def writerows(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            self.writerow(row)

    def write_dicts(self, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
        """A header of `columns`, then each row's values in that order."""
        self.writerow(columns)
        for row in rows:
            self.writerow([row.get(column, "") for column in columns])
