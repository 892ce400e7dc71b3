"""REST API of the core app: the audit log (read, export, verify) and users with their roles."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import request_example, response_example
from controlplane.audit import EXPORT_COLUMNS, export_rows, record_checkpoint, verify_chain
from controlplane.auth import actor_for_request
from controlplane.errors import InvalidInput
from controlplane.forms import AuditFilterForm
from controlplane.inputs import validated_body
from controlplane.models import ApiToken, AuditEntry, Role, Scope
from controlplane.negotiation import FirstRenderer
from controlplane.serializers import ReasonSerializer
from controlplane.services import NewUser, create_user, role_of, update_user

AUDIT_FILTER_PARAMETERS = [
    OpenApiParameter("since", str, description="Entries at or after this ISO 8601 time"),
    OpenApiParameter("until", str, description="Entries before this ISO 8601 time"),
    OpenApiParameter("actor", str, description="Actor name contains"),
    OpenApiParameter("flag", str, description="Flag key"),
    OpenApiParameter("environment", str, description="Environment key"),
    OpenApiParameter(
        "action",
        str,
        description="Action, or a prefix ending in '.' (e.g. 'version.'); several separated by commas",
    ),
    OpenApiParameter(
        "flag_wide",
        bool,
        description="With environment: also the flag's entries that name no environment (versions, gate)",
    ),
]


def filtered_entries(request: Request) -> Any:
    form = AuditFilterForm(request.query_params)
    if not form.is_valid():
        raise InvalidInput("The audit filters are not valid.", errors=form.error_list())
    return form.apply(AuditEntry.objects.all())


AUDIT_ENTRY = {
    "id": 48213,
    "created_at": "2026-12-04T16:20:11.402Z",
    "actor_kind": "user",
    "actor_name": "maria@acme.example",
    "source": "ui",
    "action": "version.published",
    "target_type": "flags.flagstate",
    "target_id": "31",
    "target_label": "support-chat @ production",
    "flag_key": "support-chat",
    "environment_key": "production",
    "changes": {"serving_version": {"old": 7, "new": 8}},
    "reason": "v8 passed the gate; CHG-4471",
    "prev_hash": "5fea48a7fb2d39369a9c02078459d914bb98590f2f7a8de8d1846c74688da96e",
    "entry_hash": "843a2a3fc5d2ff204e90da5af4f7516b71faf99a931fc4cbbf939ed01391cabf",
}


@extend_schema_serializer(examples=[response_example("a publish", AUDIT_ENTRY)])
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


def _csv_example() -> str:
    return "".join(_csv(iter([{column: AUDIT_ENTRY.get(column, "") for column in EXPORT_COLUMNS}])))


def _jsonl_example() -> str:
    return "".join(_jsonl(iter([{column: AUDIT_ENTRY.get(column, "") for column in EXPORT_COLUMNS}])))


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
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="One row per entry; the header Flagstaff-Audit-Checkpoint anchors the chain",
                examples=[response_example("CSV", _csv_example())],
            ),
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.STR,
                description="One JSON object per line, values as stored (to re-check the hashes)",
                examples=[response_example("JSON Lines", _jsonl_example())],
            ),
        },
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


@extend_schema_serializer(
    examples=[
        response_example("intact", {"ok": True, "checked": 48213, "first_broken_id": None, "problem": ""}),
        response_example(
            "altered",
            {
                "ok": False,
                "checked": 31877,
                "first_broken_id": 31877,
                "problem": "entry 31877's content does not match its hash",
            },
        ),
    ]
)
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


class UserTokenSerializer(serializers.ModelSerializer[ApiToken]):
    environment = serializers.CharField(source="environment.key", allow_null=True, default=None)
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scopes", "environment", "active", "created_at", "last_used_at"]


USER_EXAMPLE = {
    "id": 7,
    "email": "dana@acme.example",
    "role": "auditor",
    "active": True,
    "last_login": "2026-12-05T08:41:09Z",
    "date_joined": "2026-11-30T09:12:00Z",
    "tokens": [
        {
            "id": 12,
            "name": "audit-export",
            "prefix": "fs_f3M6",
            "scopes": ["audit"],
            "environment": None,
            "active": True,
            "created_at": "2026-12-01T10:00:00Z",
            "last_used_at": "2026-12-05T06:00:04Z",
        }
    ],
}


@extend_schema_serializer(examples=[response_example("an auditor", USER_EXAMPLE)])
class UserSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    email = serializers.CharField(source="username")
    role = serializers.ChoiceField(choices=Role.choices, source="flagstaff_role_name")
    active = serializers.BooleanField(source="is_active")
    last_login = serializers.DateTimeField(allow_null=True)
    date_joined = serializers.DateTimeField()
    tokens = UserTokenSerializer(many=True, help_text="API tokens this user created")


@extend_schema_serializer(
    examples=[
        response_example(
            "created", {**USER_EXAMPLE, "last_login": None, "tokens": [], "password": "tY7v-q2Lm-9xWe-Rb4k"}
        )
    ]
)
class UserCreatedSerializer(UserSerializer):
    password = serializers.CharField(
        source="generated_password",
        allow_null=True,
        help_text="The generated first password, shown this once; null when the request set one",
    )


def _user_document(user: AbstractUser, *, created: NewUser | None = None) -> dict[str, Any]:
    """The user as the API shows it. The password hash is never a field: only a generated first
    password is, in the answer to the creation that generated it."""
    user.flagstaff_role_name = role_of(user)  # type: ignore[attr-defined]
    tokens = ApiToken.objects.filter(created_by_id=user.pk).select_related("environment")
    user.tokens = tokens  # type: ignore[attr-defined]
    if created is None:
        return dict(UserSerializer(user).data)
    user.generated_password = created.password  # type: ignore[attr-defined]
    return dict(UserCreatedSerializer(user).data)


@extend_schema_serializer(
    examples=[
        request_example(
            "create an auditor", {"email": "dana@acme.example", "role": "auditor", "reason": "Q4 audit"}
        )
    ]
)
class UserCreateSerializer(ReasonSerializer):
    email = serializers.EmailField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)
    password = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Omit to have one generated"
    )


@extend_schema_serializer(
    examples=[
        request_example("make an auditor", {"role": "auditor", "reason": "joins the audit team"}),
        request_example("deactivate", {"active": False, "reason": "left the company"}),
    ]
)
class UserUpdateSerializer(ReasonSerializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    active = serializers.BooleanField(required=False)


class UsersView(ListAPIView[AbstractUser]):
    """Every user with their role, a page at a time; an Admin creates users here."""

    required_scopes = {"GET": Scope.ADMIN, "POST": Scope.ADMIN}
    serializer_class = UserSerializer

    def get_queryset(self) -> Any:
        return get_user_model().objects.order_by("username", "pk")

    @extend_schema(responses=UserSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([_user_document(user) for user in page or []])

    @extend_schema(request=UserCreateSerializer, responses={201: UserCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = validated_body(UserCreateSerializer, request)
        created = create_user(
            email=data["email"],
            role=data["role"],
            password=data["password"] or None,
            reason=data["reason"],
            actor=actor_for_request(request),
        )
        return Response(_user_document(created.user, created=created), status=status.HTTP_201_CREATED)


class UserView(APIView):
    """One user: read, change the role, deactivate or reactivate (the last Admin is kept)."""

    required_scopes = {"GET": Scope.ADMIN, "PATCH": Scope.ADMIN}

    @extend_schema(responses=UserSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_user_document(get_object_or_404(get_user_model(), pk=pk)))

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        data = validated_body(UserUpdateSerializer, request)
        updated = update_user(
            user=get_object_or_404(get_user_model(), pk=pk),
            role=data.get("role"),
            active=data.get("active"),
            reason=data["reason"],
            actor=actor_for_request(request),
        )
        return Response(_user_document(updated))
