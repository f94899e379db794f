"""Spreadsheets (.xlsx by openpyxl, .csv by the csv module) -> text: each sheet under its name,
each row one line that names its columns ("City: Paris; Population: 2102650"), so a chunk of
rows stands on its own and the chunker, which splits at line ends first, never cuts a row."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any

from rag.errors import DocumentError
from rag.formats.archive import BROKEN, broken, check_zip
from rag.formats.reading import Extracted, Reading
from rag.formats.text import decode

DELIMITERS = ",;\t|"


def read_xlsx(data: bytes, reading: Reading) -> Extracted:
    check_zip(data, ".xlsx")
    import openpyxl

    try:
        # read_only streams rows; data_only gives the values cached by the last save (formulas
        # are never evaluated, macros never run)
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets = [
                f"Sheet: {sheet.title}\n" + "\n".join(rows_text(sheet.iter_rows(values_only=True)))
                for sheet in book.worksheets
            ]
            title = book.properties.title or ""
        finally:
            book.close()
    except BROKEN as err:
        raise broken(".xlsx", err) from None
    return Extracted("\n\n".join(sheets), title)


def read_csv(data: bytes, reading: Reading) -> Extracted:
    decoded = decode(data)
    sample = decoded.text[:65536]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, DELIMITERS)
    except csv.Error:  # one column, or too little to tell: commas
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(decoded.text, newline=""), dialect))
    except csv.Error as err:
        raise DocumentError(f"unreadable CSV ({err})") from None
    return Extracted("\n".join(rows_text(rows)), encoding=decoded.encoding)


def rows_text(rows: Iterable[Sequence[Any]]) -> list[str]:
    """The first non-empty row names the columns; each later row becomes one line.

    >>> rows_text([["City", "Population"], ["Paris", 2102650.0], ["Lyon", None]])
    ['City | Population', 'City: Paris; Population: 2102650', 'City: Lyon']
    """
    lines: list[str] = []
    names: list[str] = []
    for row in rows:
        values = [_cell(value) for value in row]
        if not any(values):
            continue
        if not names:
            names = [value or f"column {n}" for n, value in enumerate(values, start=1)]
            lines.append(" | ".join(names))
            continue
        named = (
            f"{names[n] if n < len(names) else f'column {n + 1}'}: {value}"
            for n, value in enumerate(values)
            if value
        )
        lines.append("; ".join(named))
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())  # a cell's line breaks would split its row
