"""Config versions: list, create, validate and diff them; publish one, enable or disable a flag."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.auth import actor_for_request
from controlplane.inputs import int_param, validated_body
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags import services
from flags.api.flags import FlagStateSerializer
from flags.api.scoping import EnvironmentFlagView
from flags.diff import diff_configs
from flags.lookups import get_environment, get_flag, get_version
from flags.models import ConfigVersion, FlagState


class IssueSerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField()


class VersionSerializer(serializers.ModelSerializer[ConfigVersion]):
    flag = serializers.CharField(source="flag.key")
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
            "created_at",
            "content",
        ]


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


class PublishSerializer(ReasonSerializer):
    version = serializers.IntegerField(min_value=1)


class PublishView(EnvironmentFlagView):
    @extend_schema(request=PublishSerializer, responses=FlagStateSerializer)
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = validated_body(PublishSerializer, request)
        state = services.publish_version(
            flag=flag,
            environment=environment,
            number=data["version"],
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(FlagStateSerializer(_fresh_state(state)).data)


def _fresh_state(state: FlagState) -> FlagState:
    return FlagState.objects.select_related("environment", "serving_version").get(pk=state.pk)


class EnableView(EnvironmentFlagView):
    enabled = True

    @extend_schema(request=ReasonSerializer, responses=FlagStateSerializer)
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = validated_body(ReasonSerializer, request)
        state = services.set_flag_enabled(
            flag=flag,
            environment=environment,
            enabled=self.enabled,
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(FlagStateSerializer(_fresh_state(state)).data)


class DisableView(EnableView):
    enabled = False
