"""Config versions: list, create, validate and diff them; publish one, enable or disable a flag."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import int_param, validated_body
from controlplane.serializers import StrictSerializer
from flags import services
from flags.api import examples
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


@extend_schema_serializer(examples=[response_example("v8", examples.VERSION)])
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


@extend_schema_serializer(
    examples=[
        request_example(
            "model swap and prompt edit",
            {
                "content": examples.CANDIDATE_CONTENT,
                "message": "Opus 5.5, refunds up to $500 without a human",
                "parent": 7,
            },
        )
    ]
)
class VersionCreateSerializer(StrictSerializer):
    content = serializers.JSONField()
    message = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)  # type: ignore[assignment]


@extend_schema_serializer(
    examples=[
        request_example("valid", {"content": examples.CONFIG_CONTENT}),
        request_example(
            "sampling on API 2026-10-21",
            {"content": {**examples.CONFIG_CONTENT, "max_tokens": 200000, "temperature": 0.2}},
        ),
    ]
)
class ContentSerializer(StrictSerializer):
    content = serializers.JSONField()


@extend_schema_serializer(
    examples=[
        response_example("valid", {"ok": True, "errors": [], "warnings": []}),
        response_example("refused", examples.VALIDATION_FAILED),
    ]
)
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


class FieldChangeSerializer(serializers.Serializer[Any]):
    path = serializers.CharField(help_text="Dotted path of the value, e.g. output_config.effort")
    old = serializers.JSONField(allow_null=True, help_text="null: absent")
    new = serializers.JSONField(allow_null=True, help_text="null: absent")


class DiffLineSerializer(serializers.Serializer[Any]):
    op = serializers.ChoiceField(choices=["equal", "insert", "delete"])
    old_no = serializers.IntegerField(allow_null=True)
    new_no = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()


class ItemChangeSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    changes = FieldChangeSerializer(many=True)


class CollectionDiffSerializer(serializers.Serializer[Any]):
    added = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())
    changed = ItemChangeSerializer(many=True)
    reordered = serializers.BooleanField()


# `from` is a Python keyword, hence a serializer built from a mapping.
DIFF = inline_serializer(
    "ConfigDiff",
    {
        "flag": serializers.CharField(),
        "from": serializers.IntegerField(),
        "to": serializers.IntegerField(),
        "changes": FieldChangeSerializer(many=True, help_text="Changed parameters (model, max_tokens...)"),
        "system": DiffLineSerializer(many=True, help_text="The system prompt, line by line"),
        "tools": CollectionDiffSerializer(),
        "mcp_servers": CollectionDiffSerializer(),
        "subagents": CollectionDiffSerializer(),
        "kinds": serializers.ListField(
            child=serializers.CharField(), help_text="model_swap, prompt_edit, cache_prefix_changed..."
        ),
        "summary": serializers.CharField(),
    },
)


class DiffView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True, description="Version number to compare from"),
            OpenApiParameter("to", int, required=True, description="Version number to compare to"),
        ],
        responses={200: DIFF},
        examples=[response_example("model swap and prompt edit", examples.DIFF)],
    )
    def get(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        old = get_version(flag, int_param(request, "from"))
        new = get_version(flag, int_param(request, "to"))
        diff = diff_configs(old.content, new.content)
        return Response({"flag": flag.key, "from": old.number, "to": new.number, **diff.as_dict()})
