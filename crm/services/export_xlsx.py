"""Exports as XLSX workbooks (openpyxl), apart from crm/services/exports.py so that only the
processes that write a workbook load openpyxl."""

import tempfile
from datetime import date, datetime
from decimal import Decimal

from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from crm.services.exports import Column, Export, items, local_time, safe_cell


def _cell(export: Export, sheet, column: Column, value):
    if isinstance(value, bool):
        value = _("Yes") if value else _("No")
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, local_time(export, value))
        cell.number_format = "yyyy-mm-dd hh:mm"
        return cell
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "yyyy-mm-dd"
        return cell
    if isinstance(value, int | float | Decimal):
        cell = WriteOnlyCell(sheet, value)
        if column.number_format:
            cell.number_format = column.number_format
        return cell
    if value is None:
        return None
    # Text: neutralized as in CSV, so openpyxl keeps it a string (never a formula), and
    # without the control characters the XLSX format cannot hold.
    return WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", safe_cell(value)))


def write_workbook(export: Export, size: int | None = None):
    """The XLSX file in a temporary file (on disk past a few MB), rewound for sending.

    openpyxl's write-only mode streams the rows to disk as they come rather than keeping
    the whole sheet in memory.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=str(export.entity.label)[:31])
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for column in export.columns:
        cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("", safe_cell(column.label)))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for batch in items(export, size):
        for item in batch:
            sheet.append(
                [_cell(export, sheet, column, column.value(item)) for column in export.columns]
            )
    # Handed to send_file, which closes it once sent.
    out = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    workbook.save(out)
    out.seek(0)
    return out
