"""Importing the Claude Console's Usage export: all of it or, with any bad row, none of it."""

from __future__ import annotations

import hashlib

from django.db import transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import InvalidInput, TooLarge
from flags.catalog import current_catalog
from telemetry import console_usage
from telemetry.models.console_usage import ConsoleUsage, ConsoleUsageImport

# Where each token column of the export is stored.
TOKEN_FIELDS = {
    "usage_input_tokens_no_cache": "input_tokens",
    "usage_input_tokens_cache_write_5m": "cache_write_5m_tokens",
    "usage_input_tokens_cache_write_1h": "cache_write_1h_tokens",
    "usage_input_tokens_cache_read": "cache_read_tokens",
    "usage_output_tokens": "output_tokens",
}


@transaction.atomic
def import_console_usage(*, filename: str, data: bytes, actor: Actor) -> ConsoleUsageImport:
    """Store an export's usage per API key, workspace and model; refused whole on any error."""
    try:
        parsed = console_usage.parse_export(data, known_models=current_catalog())
    except console_usage.ExportRefused as refusal:
        error = TooLarge if refusal.code == "file_too_large" else InvalidInput
        raise error(refusal.detail, code=refusal.code) from None
    if parsed.errors:
        shown = parsed.errors[: console_usage.ERRORS_SHOWN]
        more = len(parsed.errors) - len(shown)
        raise InvalidInput(
            f"{len(parsed.errors)} problem(s) in the file; nothing was imported."
            + (f" The first {len(shown)} are listed." if more else ""),
            code="invalid_rows",
            errors=[error.as_dict() for error in shown],
        )
    start, end = parsed.period
    assert start is not None
    assert end is not None
    usage_import = ConsoleUsageImport.objects.create(
        filename=filename[:255],
        sha256=hashlib.sha256(data).hexdigest(),
        rows=parsed.rows,
        period_start=start,
        period_end=end,
        imported_by=actor.name,
    )
    ConsoleUsage.objects.bulk_create(
        ConsoleUsage(
            usage_import=usage_import,
            api_key=entry.api_key,
            workspace=entry.workspace,
            model=entry.model,
            first_date=entry.first_date,
            last_date=entry.last_date,
            rows=entry.rows,
            **{TOKEN_FIELDS[column]: count for column, count in entry.tokens.items()},
        )
        for entry in parsed.usage
    )
    audit.record(
        actor=actor,
        action="console_usage.imported",
        target=usage_import,
        changes={
            "filename": usage_import.filename,
            "sha256": usage_import.sha256,
            "rows": parsed.rows,
            "keys_and_models": len(parsed.usage),
            "period": [start.isoformat(), end.isoformat()],
        },
    )
    return usage_import
