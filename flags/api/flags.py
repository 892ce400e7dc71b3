"""Environments and flags: list, create, read, update (an environment's protection) and archive."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request, request_scopes
from controlplane.errors import Forbidden
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags import services
from flags.api import examples
from flags.api.scoping import EnvironmentFlagView
from flags.lookups import get_environment, get_flag
from flags.models import Environment, Flag, FlagState, Surface


@extend_schema_serializer(examples=[response_example("production", examples.ENVIRONMENT)])
class EnvironmentSerializer(serializers.ModelSerializer[Environment]):
    class Meta:
        model = Environment
        fields = ["key", "name", "revision", "protected", "requires_approval", "created_at"]


@extend_schema_serializer(
    examples=[request_example("production", {"key": "production", "name": "Production", "protected": True})]
)
class EnvironmentCreateSerializer(StrictSerializer):
    key = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    protected = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Changes need a reason; default: on for 'production', off for other keys",
    )


@extend_schema_serializer(
    examples=[
        request_example(
            "protect", {"protected": True, "reason": "Customer traffic moves here on Monday (OPS-311)"}
        ),
        request_example(
            "require four eyes", {"requires_approval": True, "reason": "SOC 2 change control (SEC-88)"}
        ),
    ]
)
class EnvironmentUpdateSerializer(ReasonSerializer):
    protected = serializers.BooleanField(required=False)
    requires_approval = serializers.BooleanField(
        required=False,
        help_text="Four eyes: a publish, a rollout start and a manual promote need an Approver "
        "other than the author; only an Admin changes it",
    )


class EnvironmentsView(ListAPIView[Environment]):
    serializer_class = EnvironmentSerializer
    queryset = Environment.objects.by_key()

    @extend_schema(request=EnvironmentCreateSerializer, responses={201: EnvironmentSerializer})
    def post(self, request: Request) -> Response:
        data = validated_body(EnvironmentCreateSerializer, request)
        environment = services.create_environment(actor=actor_for_request(request), **data)
        return Response(EnvironmentSerializer(environment).data, status=status.HTTP_201_CREATED)


class EnvironmentDetailView(EnvironmentFlagView):
    @extend_schema(responses=EnvironmentSerializer)
    def get(self, request: Request, env: str) -> Response:
        return Response(EnvironmentSerializer(get_environment(env)).data)

    @extend_schema(request=EnvironmentUpdateSerializer, responses=EnvironmentSerializer)
    def patch(self, request: Request, env: str) -> Response:
        data = validated_body(EnvironmentUpdateSerializer, request)
        environment, actor = get_environment(env), actor_for_request(request)
        if "requires_approval" in data and Scope.ADMIN not in request_scopes(request):
            raise Forbidden(
                "Only an Admin turns four eyes on or off in an environment.", code="admin_required"
            )
        with transaction.atomic():
            if "protected" in data:
                environment = services.set_environment_protected(
                    environment=environment, protected=data["protected"], actor=actor, reason=data["reason"]
                )
            if "requires_approval" in data:
                environment = services.set_environment_requires_approval(
                    environment=environment,
                    required=data["requires_approval"],
                    actor=actor,
                    reason=data["reason"],
                )
        return Response(EnvironmentSerializer(environment).data)


@extend_schema_serializer(examples=[response_example("production serves v7", examples.FLAG_STATE)])
class FlagStateSerializer(serializers.ModelSerializer[FlagState]):
    environment = serializers.CharField(source="environment.key")
    revision = serializers.IntegerField(source="environment.revision")
    serving_version = serializers.IntegerField(source="serving_version.number", allow_null=True, default=None)

    class Meta:
        model = FlagState
        fields = ["environment", "enabled", "serving_version", "revision", "updated_at"]


@extend_schema_serializer(examples=[response_example("support-chat", examples.FLAG)])
class FlagSerializer(serializers.ModelSerializer[Flag]):
    archived = serializers.BooleanField(source="is_archived")
    environments = FlagStateSerializer(source="states", many=True)
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Flag
        fields = [
            "key",
            "name",
            "description",
            "surface",
            "owner",
            "stickiness",
            "archived",
            "created_at",
            "archived_at",
            "latest_version",
            "environments",
        ]

    def get_latest_version(self, flag: Flag) -> int | None:
        latest: int | None = getattr(flag, "latest_version_number", None)
        return latest


@extend_schema_serializer(
    examples=[
        request_example(
            "a chat flag",
            {
                "key": "support-chat",
                "surface": "chat",
                "name": "Support chat",
                "owner": "support-platform@acme.example",
                "description": "The assistant in the help centre's chat window.",
            },
        )
    ]
)
class FlagCreateSerializer(StrictSerializer):
    key = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    surface = serializers.ChoiceField(choices=Surface.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owner = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    stickiness = serializers.CharField(max_length=100, required=False, default="targetingKey")


@extend_schema_serializer(
    examples=[
        request_example(
            "new owner",
            {"owner": "cx-ai@acme.example", "reason": "The CX AI team owns the assistant from December"},
        )
    ]
)
class FlagUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    surface = serializers.ChoiceField(choices=Surface.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.CharField(max_length=200, required=False, allow_blank=True)
    stickiness = serializers.CharField(max_length=100, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class FlagsView(ListAPIView[Flag]):
    serializer_class = FlagSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Match key, name or owner"),
            OpenApiParameter("archived", bool, description="Include archived flags"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Flag]:
        flags = Flag.objects.with_states().search(self.request.query_params.get("search", "").strip())
        if self.request.query_params.get("archived", "").lower() not in {"1", "true", "yes"}:
            flags = flags.active()
        return flags

    @extend_schema(
        request=FlagCreateSerializer,
        responses={
            201: FlagSerializer,
            **refusals(Refusal(409, "duplicate_key", "A flag with key 'support-chat' already exists.")),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated_body(FlagCreateSerializer, request)
        flag = services.create_flag(actor=actor_for_request(request), **data)
        return Response(
            FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data, status=status.HTTP_201_CREATED
        )


class FlagDetailView(APIView):
    @extend_schema(responses=FlagSerializer)
    def get(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        return Response(FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data)

    @extend_schema(request=FlagUpdateSerializer, responses=FlagSerializer)
    def patch(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = validated_body(FlagUpdateSerializer, request)
        reason = data.pop("reason")
        services.update_flag(flag=flag, changes=data, actor=actor_for_request(request), reason=reason)
        return Response(FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data)


class FlagArchiveView(APIView):
    @extend_schema(request=ReasonSerializer, responses=FlagSerializer)
    def post(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = validated_body(ReasonSerializer, request)
        services.archive_flag(flag=flag, actor=actor_for_request(request), reason=data["reason"])
        return Response(FlagSerializer(Flag.objects.with_states().get(pk=flag.pk)).data)
