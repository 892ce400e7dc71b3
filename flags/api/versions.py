"""Config versions: list, create, validate and diff them; publish one, enable or disable a flag."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.auth import actor_for_request
from controlplane.inputs import int_param, validated_body
from controlplane.serializers import StrictSerializer
from flags import services
from flags.diff import diff_configs
from flags.lookups import get_flag, get_version
from flags.models import ConfigVersion
from flags.services import preconditions


class IssueSerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField()


class CheckSerializer(serializers.Serializer[Any]):
    """Where the version stands with a registered precondition (the eval gate, an override)."""

    name = serializers.CharField()
    met = serializers.BooleanField()
    summary = serializers.CharField()
    detail = serializers.CharField()


class VersionSerializer(serializers.ModelSerializer[ConfigVersion]):
    flag = serializers.CharField(source="flag.key")
    checks = serializers.SerializerMethodField()
    # Declared fields shadow Serializer/Field attributes only in the type stubs; DRF's metaclass
    # moves them into _declared_fields.
    parent = serializers.IntegerField(source="parent.number", allow_null=True, default=None)  # type: ignore[assignment]
    author = serializers.CharField(source="author_name")
    warnings = IssueSerializer(many=True)

    class Meta:
        model = ConfigVersion
        fields = [
            "flag",
            "number",
            "variant",
            "content_hash",
            "parent",
            "author",
            "message",
            "warnings",
            "checks",
            "created_at",
            "content",
        ]

    @extend_schema_field(CheckSerializer(many=True))
    def get_checks(self, version: ConfigVersion) -> list[dict[str, Any]]:
        outcomes = preconditions.describe(flag=version.flag, version=version)
        return [{**outcome.as_dict(), "summary": outcome.summary} for outcome in outcomes]


class VersionCreateSerializer(StrictSerializer):
    content = serializers.JSONField()
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)  # type: ignore[assignment]


class ContentSerializer(StrictSerializer):
    content = serializers.JSONField()


class ValidationResultSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    errors = IssueSerializer(many=True)  # type: ignore[assignment]
    warnings = IssueSerializer(many=True)


class VersionsView(ListAPIView[ConfigVersion]):
    serializer_class = VersionSerializer

    def get_queryset(self) -> QuerySet[ConfigVersion]:
        flag = get_flag(self.kwargs["key"])
        return ConfigVersion.objects.for_flag(flag).select_related("flag", "parent")

    @extend_schema(request=VersionCreateSerializer, responses={201: VersionSerializer})
    def post(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = validated_body(VersionCreateSerializer, request)
        created = services.create_version(
            flag=flag,
            content=data["content"],
            message=data["message"],
            parent_number=data["parent"],
            actor=actor_for_request(request),
        )
        return Response(VersionSerializer(created.version).data, status=status.HTTP_201_CREATED)


class VersionDetailView(APIView):
    @extend_schema(responses=VersionSerializer)
    def get(self, request: Request, key: str, number: int) -> Response:
        return Response(VersionSerializer(get_version(get_flag(key), number)).data)


class ValidateView(APIView):
    """Dry run: validate content for this flag without saving anything."""

    required_scopes = {"POST": "read"}

    @extend_schema(request=ContentSerializer, responses=ValidationResultSerializer)
    def post(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = validated_body(ContentSerializer, request)
        result = services.validate_content(flag=flag, content=data["content"])
        return Response(
            {
                "ok": result.ok,
                "errors": [issue.as_dict() for issue in result.errors],
                "warnings": [issue.as_dict() for issue in result.warnings],
            }
        )


class DiffView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True, description="Version number to compare from"),
            OpenApiParameter("to", int, required=True, description="Version number to compare to"),
        ],
        responses={200: dict},
    )
    def get(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        old = get_version(flag, int_param(request, "from"))
        new = get_version(flag, int_param(request, "to"))
        diff = diff_configs(old.content, new.content)
        return Response({"flag": flag.key, "from": old.number, "to": new.number, **diff.as_dict()})
