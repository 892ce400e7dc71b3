"""Reading the Claude Console's Usage export (CSV: usage by day, API key, workspace and model).

Pure Python, no Django. The columns accepted are the ones below (docs/console-usage.md): a file
with any other column, or without a required one, is refused as a whole with the columns we
expect, rather than read by guesswork. Every malformed row is reported with its line number
(the header is line 1), and a file with any error is imported not at all.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import date

MAX_BYTES = 20 * 1024 * 1024
REQUIRED_COLUMNS = (
    "usage_date_utc",
    "model_version",
    "api_key",
    "workspace",
    "usage_input_tokens_no_cache",
    "usage_output_tokens",
)
TOKEN_COLUMNS = (
    "usage_input_tokens_no_cache",
    "usage_input_tokens_cache_write_5m",
    "usage_input_tokens_cache_write_1h",
    "usage_input_tokens_cache_read",
    "usage_output_tokens",
)
OPTIONAL_COLUMNS = (
    "usage_type",
    "context_window",
    "usage_input_tokens_cache_write_5m",
    "usage_input_tokens_cache_write_1h",
    "usage_input_tokens_cache_read",
    "web_search_count",
    "inference_geo",
    "speed",
)
KNOWN_COLUMNS = frozenset(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
ERRORS_SHOWN = 50
# Token counts are stored as 64-bit integers: 18 digits always fit.
MAX_DIGITS = 18


@dataclass(slots=True)
class KeyUsage:
    """The tokens one API key in one workspace spent on one model, over the export's days."""

    api_key: str
    workspace: str
    model: str
    first_date: date
    last_date: date
    rows: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_COLUMNS, 0))


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    column: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "path": f"line {self.line}" + (f", {self.column}" if self.column else ""),
            "message": self.message,
        }


class ExportRefused(Exception):
    """The file as a whole cannot be read: empty, too large, not UTF-8, or other columns."""

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail)
        self.detail, self.code = detail, code


@dataclass(slots=True)
class ParsedExport:
    usage: list[KeyUsage]
    errors: list[LineError]
    rows: int

    @property
    def period(self) -> tuple[date | None, date | None]:
        if not self.usage:
            return None, None
        return min(u.first_date for u in self.usage), max(u.last_date for u in self.usage)


def _text(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ExportRefused(
            f"The file is {len(data) / 1024 / 1024:.1f} MiB; the limit is {MAX_BYTES // 1024 // 1024} MiB. "
            "Export a shorter period from the Console.",
            code="file_too_large",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExportRefused(
            "The file is not UTF-8 text; upload the CSV the Console's Usage page exports.", code="not_csv"
        ) from None
    if not text.strip():
        raise ExportRefused("The file is empty; it has no header and no usage rows.", code="empty_file")
    return text


def _header(header: list[str]) -> list[str]:
    columns = [name.strip().lower() for name in header]
    other = [name for name in columns if name not in KNOWN_COLUMNS]
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if other or missing:
        parts = []
        if other:
            parts.append(f"columns we do not read: {', '.join(other)}")
        if missing:
            parts.append(f"required columns missing: {', '.join(missing)}")
        raise ExportRefused(
            "This is not the Console's usage export (" + "; ".join(parts) + "). "
            f"Expected the columns {', '.join(REQUIRED_COLUMNS)}, "
            f"and optionally {', '.join(OPTIONAL_COLUMNS)}.",
            code="unexpected_columns",
        )
    if len(set(columns)) != len(columns):
        raise ExportRefused("A column appears twice in the header.", code="unexpected_columns")
    return columns


def _day(value: str) -> date:
    # The Console writes dates; a timestamp's date part is taken.
    return date.fromisoformat(value.strip()[:10])


def parse_export(data: bytes, *, known_models: Container[str]) -> ParsedExport:
    """Read an export; rows are summed per (API key, workspace, model). Errors are per line."""
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    try:
        columns = _header(next(reader))
    except csv.Error as error:
        raise ExportRefused(f"Line 1 is not CSV: {error}.", code="not_csv") from None
    usage: dict[tuple[str, str, str], KeyUsage] = {}
    errors: list[LineError] = []
    rows = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            errors.append(LineError(reader.line_num, "", f"not CSV: {error}"))
            continue
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue
        rows += 1
        if len(values) != len(columns):
            errors.append(LineError(line, "", f"{len(values)} fields where the header has {len(columns)}"))
            continue
        record = dict(zip(columns, (value.strip() for value in values), strict=True))
        problems = _row_errors(record, line, known_models)
        if problems:
            errors += problems
            continue
        day = _day(record["usage_date_utc"])
        key = (record["api_key"], record["workspace"], record["model_version"])
        entry = usage.get(key) or usage.setdefault(key, KeyUsage(*key, first_date=day, last_date=day))
        entry.first_date, entry.last_date = min(entry.first_date, day), max(entry.last_date, day)
        entry.rows += 1
        for column in TOKEN_COLUMNS:
            entry.tokens[column] += int(record.get(column) or 0)
    if not rows and not errors:
        raise ExportRefused("The file has a header but no usage rows.", code="empty_file")
    return ParsedExport(usage=list(usage.values()), errors=errors, rows=rows)


def _row_errors(record: dict[str, str], line: int, known_models: Container[str]) -> list[LineError]:
    problems = []
    try:
        _day(record["usage_date_utc"])
    except ValueError:
        problems.append(
            LineError(line, "usage_date_utc", f"'{record['usage_date_utc']}' is not a date (YYYY-MM-DD)")
        )
    model = record["model_version"]
    if not model:
        problems.append(LineError(line, "model_version", "no model"))
    elif model not in known_models:
        problems.append(
            LineError(
                line, "model_version", f"'{model}' is not a model in the catalog; sync the catalog first"
            )
        )
    for column in TOKEN_COLUMNS:
        value = record.get(column, "")
        if column in REQUIRED_COLUMNS and value == "":
            problems.append(LineError(line, column, "empty; a token count is required"))
        elif value and not (value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS):
            problems.append(LineError(line, column, f"'{value}' is not a whole, non-negative token count"))
    return problems
