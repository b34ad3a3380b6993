"""CSV files that a spreadsheet opens safely.

A cell that starts with = + - @ (or a tab or carriage return, which some spreadsheets
skip before reading a formula) is run as a formula by Excel and LibreOffice: "formula
injection" (OWASP CSV injection). Such cells get a leading apostrophe, which spreadsheets
show as text. Every CSV the application writes goes through write_csv().
"""

import csv
import io
from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(header: list[str], rows: Iterable[Iterable]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(cell) for cell in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
