"""REST API of the core app: the audit log (read, export, verify)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.audit import EXPORT_COLUMNS, export_rows, record_checkpoint, verify_chain
from controlplane.errors import InvalidInput
from controlplane.forms import AuditFilterForm
from controlplane.models import AuditEntry, Scope
from controlplane.negotiation import FirstRenderer

AUDIT_FILTER_PARAMETERS = [
    OpenApiParameter("since", str, description="Entries at or after this ISO 8601 time"),
    OpenApiParameter("until", str, description="Entries before this ISO 8601 time"),
    OpenApiParameter("actor", str, description="Actor name contains"),
    OpenApiParameter("flag", str, description="Flag key"),
    OpenApiParameter("environment", str, description="Environment key"),
    OpenApiParameter("action", str, description="Action, or a prefix ending in '.' (e.g. 'version.')"),
]


def filtered_entries(request: Request) -> Any:
    form = AuditFilterForm(request.query_params)
    if not form.is_valid():
        raise InvalidInput("The audit filters are not valid.", errors=form.error_list())
    return form.apply(AuditEntry.objects.all())


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "created_at",
            "actor_kind",
            "actor_name",
            "source",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "flag_key",
            "environment_key",
            "changes",
            "reason",
            "prev_hash",
            "entry_hash",
        ]


class AuditListView(ListAPIView[AuditEntry]):
    required_scopes = {"GET": Scope.AUDIT}
    serializer_class = AuditEntrySerializer

    @extend_schema(parameters=AUDIT_FILTER_PARAMETERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        return filtered_entries(self.request)


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n"


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Prefix a single quote to a text that a spreadsheet would read as a formula (OWASP's advice).

    The CSV export is for reading in a spreadsheet; the JSON Lines export keeps every value as
    stored, for re-checking the chain's hashes.
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return f"'{value}"
    return value


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    # Every cell quoted, as OWASP advises beside the prefix, so no separator inside a value splits it.
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, quoting=csv.QUOTE_ALL)
    writer.writeheader()
    for row in rows:
        cells = {**row, "changes": json.dumps(row["changes"], sort_keys=True)}
        writer.writerow({column: spreadsheet_safe(value) for column, value in cells.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


CHECKPOINT_HEADER = "Flagstaff-Audit-Checkpoint"

EXPORT_FORMATS = {
    "csv": ("text/csv; charset=utf-8", _csv),
    "jsonl": ("application/x-ndjson; charset=utf-8", _jsonl),
}


class AuditExportView(APIView):
    required_scopes = {"GET": Scope.AUDIT}
    content_negotiation_class = FirstRenderer

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(EXPORT_FORMATS), required=True),
            *AUDIT_FILTER_PARAMETERS,
        ],
        responses={200: str},
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        export_format = request.query_params.get("format", "")
        if export_format not in EXPORT_FORMATS:
            raise InvalidInput(
                "Choose an export format.",
                errors=[{"path": "format", "message": "Must be 'csv' or 'jsonl'."}],
            )
        content_type, render = EXPORT_FORMATS[export_format]
        entries = filtered_entries(request).order_by("id")
        # Each export anchors the chain as it stands, and hands the anchor to the auditor too.
        checkpoint = record_checkpoint()
        response = StreamingHttpResponse(render(export_rows(entries)), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="flagstaff-audit.{export_format}"'
        response[CHECKPOINT_HEADER] = (
            f"entries={checkpoint.entry_count}; head={checkpoint.head_hash}; "
            f"at={checkpoint.created_at.isoformat()}; signature={checkpoint.signature}"
        )
        return response


class ChainStatusSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField()
    first_broken_id = serializers.IntegerField(allow_null=True)
    problem = serializers.CharField()


class AuditVerifyView(APIView):
    required_scopes = {"GET": Scope.AUDIT}

    @extend_schema(responses=ChainStatusSerializer)
    def get(self, request: Request) -> Response:
        return Response(verify_chain().as_dict())
