"""Reading an uploaded CSV file: is it text, which encoding, which separator, its rows.

Spreadsheets write CSV in many ways. French Excel writes Windows-1252 with ";" (its
list separator, since "," is the decimal mark); Excel's "CSV UTF-8" adds a byte order
mark; its "Unicode text" is UTF-16 with tabs; LibreOffice and Google Sheets write plain
UTF-8 with ",". Values may hold quoted line breaks, lines may be blank, cells padded.

The file is read as a stream (csv.reader over a decoding wrapper), so the worker never
holds more than the raw bytes and one row at a time.
"""

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from flask_babel import gettext as _

SEPARATORS = (";", ",", "\t")
# Enough text for the separator to show in the header and a few rows.
SAMPLE_CHARS = 64 * 1024

_BINARY_SIGNATURES = (
    (b"PK\x03\x04", "xlsx"),  # a zip: .xlsx, .ods, .numbers
    (b"\xd0\xcf\x11\xe0", "xls"),  # the old Office compound file
    (b"%PDF", "pdf"),
)


class ImportFileError(ValueError):
    """A file we cannot import; the message (translated) says why and what to do."""


@dataclass(frozen=True)
class FileFormat:
    encoding: str
    delimiter: str


def check_bytes(content: bytes, max_bytes: int) -> None:
    """Refuse what is too large, empty, or not a text file, with a message that helps."""
    if len(content) > max_bytes:
        raise ImportFileError(
            _(
                "The file is too large (%(size)s); the limit is %(limit)s. "
                "Split it into several files.",
                size=_size(len(content)),
                limit=_size(max_bytes),
            )
        )
    if not content.strip():
        raise ImportFileError(_("The file is empty."))
    for signature, kind in _BINARY_SIGNATURES:
        if content.startswith(signature):
            if kind in ("xlsx", "xls"):
                raise ImportFileError(
                    _(
                        "This is an Excel workbook, not a CSV file. In Excel, use “Save as” "
                        "and choose “CSV (separator: semicolon)” or “CSV UTF-8”."
                    )
                )
            raise ImportFileError(_("This is not a CSV file: choose a text file (.csv)."))
    if not _utf16_bom(content) and b"\x00" in content[:8192]:
        raise ImportFileError(_("This is not a CSV file: choose a text file (.csv)."))


def _size(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB" if count >= 1_000_000 else f"{count / 1000:.0f} KB"


def _utf16_bom(content: bytes) -> bool:
    return content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def detect_encoding(content: bytes) -> str:
    """Strict UTF-8 first (a Windows-1252 file with accents is almost never valid UTF-8),
    then Windows-1252, which Excel writes in France; Latin-1 reads any byte at all."""
    if _utf16_bom(content):
        return "utf-16"
    if content.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        content.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        content.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _sample(content: bytes, encoding: str) -> str:
    text = content[: SAMPLE_CHARS * 4].decode(encoding, errors="ignore")[:SAMPLE_CHARS]
    # Whole lines only: a cut line could tip the count.
    if len(text) == SAMPLE_CHARS and "\n" in text:
        text = text[: text.rindex("\n")]
    return text.lstrip("\ufeff")


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == char and not quoted:
            count += 1
    return count


def detect_delimiter(sample: str) -> str:
    """csv.Sniffer, checked against the header line; else the separator the header holds most."""
    lines = [line for line in sample.splitlines() if line.strip()]
    header = lines[0] if lines else ""
    counts = {sep: _count_outside_quotes(header, sep) for sep in SEPARATORS}
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        sniffed = None
    # The Sniffer can pick a separator that only appears inside values ("1,5" in a
    # ";" file): trust it only when the header splits on it at least as well.
    if sniffed in counts and counts[sniffed] >= max(counts.values()):
        return sniffed
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def detect_format(content: bytes) -> FileFormat:
    encoding = detect_encoding(content)
    return FileFormat(encoding, detect_delimiter(_sample(content, encoding)))


def clean(value: str) -> str:
    """A cell as people meant it: no padding, no non-breaking spaces at the ends."""
    return value.replace("\u00a0", " ").strip()


def records(content: bytes, file_format: FileFormat) -> Iterator[tuple[int, list[str]]]:
    """(record number, cells) of every record, the header being record 1, as a spreadsheet
    numbers its rows; blank records are skipped but keep their number."""
    text = io.TextIOWrapper(io.BytesIO(content), encoding=file_format.encoding, newline="")
    reader = csv.reader(text, delimiter=file_format.delimiter, strict=False)
    number = 0
    try:
        for cells in reader:
            number += 1
            cleaned = [clean(cell) for cell in cells]
            if any(cleaned):
                yield number, cleaned
    except (csv.Error, UnicodeDecodeError) as error:
        # csv's own limit (128 KB a cell) is what a quote never closed runs into.
        raise ImportFileError(
            _(
                "Row %(row)d cannot be read (%(error)s): a quote may be missing its closing quote.",
                row=number + 1,
                error=error,
            )
        ) from None


def headers_of(first: list[str]) -> list[str]:
    """The header row, with a name for each unnamed column."""
    return [
        (cell.lstrip("\ufeff").strip() or _("Column %(number)d", number=index + 1))
        for index, cell in enumerate(first)
    ]


@dataclass
class FileSummary:
    format: FileFormat
    headers: list[str]
    preview: list[list[str]]
    total_rows: int


def summarize(content: bytes, preview_rows: int = 5) -> FileSummary:
    """Read the whole file once: its format, header, first rows and row count. Every
    error a reader can meet shows up here, at upload, rather than in the worker."""
    file_format = detect_format(content)
    headers: list[str] | None = None
    preview: list[list[str]] = []
    total = 0
    for _number, cells in records(content, file_format):
        if headers is None:
            headers = headers_of(cells)
            continue
        total += 1
        if len(preview) < preview_rows:
            preview.append(cells)
    if headers is None:
        raise ImportFileError(_("The file is empty."))
    if total == 0:
        raise ImportFileError(_("The file has a header row but no data rows."))
    return FileSummary(file_format, headers, preview, total)


def data_rows(content: bytes, file_format: FileFormat) -> Iterator[tuple[int, list[str]]]:
    """The records after the header row."""
    seen_header = False
    for number, cells in records(content, file_format):
        if not seen_header:
            seen_header = True
            continue
        yield number, cells
