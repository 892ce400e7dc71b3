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
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

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


class UserTokenSerializer(serializers.ModelSerializer[ApiToken]):
    environment = serializers.CharField(source="environment.key", allow_null=True, default=None)
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scopes", "environment", "active", "created_at", "last_used_at"]


class UserSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    email = serializers.CharField(source="username")
    role = serializers.ChoiceField(choices=Role.choices, source="flagstaff_role_name")
    active = serializers.BooleanField(source="is_active")
    last_login = serializers.DateTimeField(allow_null=True)
    date_joined = serializers.DateTimeField()
    tokens = UserTokenSerializer(many=True, help_text="API tokens this user created")


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


class UserCreateSerializer(ReasonSerializer):
    email = serializers.EmailField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)
    password = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Omit to have one generated"
    )


class UserUpdateSerializer(ReasonSerializer):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    active = serializers.BooleanField(required=False)


USER_EXAMPLE = {
    "id": 7,
    "email": "dana@example.com",
    "role": "auditor",
    "active": True,
    "last_login": None,
    "date_joined": "2026-11-30T09:12:00Z",
    "tokens": [],
}


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

    @extend_schema(
        request=UserCreateSerializer,
        responses={201: UserCreatedSerializer},
        examples=[
            OpenApiExample(
                "create an auditor",
                {"email": "dana@example.com", "role": "auditor", "reason": "Q4 audit"},
                request_only=True,
            ),
            OpenApiExample("created", {**USER_EXAMPLE, "password": "generated-once"}, response_only=True),
        ],
    )
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

    @extend_schema(responses=UserSerializer, examples=[OpenApiExample("user", USER_EXAMPLE)])
    def get(self, request: Request, pk: int) -> Response:
        return Response(_user_document(get_object_or_404(get_user_model(), pk=pk)))

    @extend_schema(
        request=UserUpdateSerializer,
        responses=UserSerializer,
        examples=[
            OpenApiExample(
                "make an auditor", {"role": "auditor", "reason": "joins the audit team"}, request_only=True
            ),
            OpenApiExample("deactivate", {"active": False, "reason": "left the company"}, request_only=True),
            OpenApiExample("updated", USER_EXAMPLE, response_only=True),
        ],
    )
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
