"""REST API of model migrations: list them, draft one for a flag, re-run a draft's gate."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from autopilot import reads, services
from autopilot.api import examples
from autopilot.lookups import get_migration
from autopilot.models import Migration, MigrationState
from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import StrictSerializer
from flags.catalog import current_catalog
from flags.lookups import get_environment, get_flag


class MigrationChangeSerializer(serializers.Serializer[Any]):
    path = serializers.CharField(help_text="Where, as the version diff names it")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True, help_text="null: removed")
    reason = serializers.CharField()


class MigrationGateSerializer(serializers.Serializer[Any]):
    passed = serializers.BooleanField()
    explanation = serializers.CharField()


class MigrationRolloutSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    state = serializers.CharField()


@extend_schema_serializer(examples=[response_example("rollout proposed", examples.MIGRATION)])
class MigrationSerializer(serializers.ModelSerializer[Migration]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")
    runway_days = serializers.SerializerMethodField(help_text="Days to the old model's retirement, now")
    base_version = serializers.IntegerField(source="base_version.number")
    draft_version = serializers.IntegerField(source="draft_version.number")
    changes = MigrationChangeSerializer(many=True)
    gate = serializers.SerializerMethodField()
    rollout = serializers.SerializerMethodField()
    next_step = serializers.SerializerMethodField()

    class Meta:
        model = Migration
        fields = [
            "id",
            "flag",
            "environment",
            "from_model",
            "to_model",
            "retires_at",
            "runway_days",
            "base_version",
            "draft_version",
            "changes",
            "state",
            "mode",
            "run",
            "baseline_run",
            "gate",
            "failures",
            "detail",
            "rollout",
            "next_step",
            "created_by",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_runway_days(self, migration: Migration) -> int | None:
        catalog = self.context.get("catalog") or current_catalog()
        return reads.runway(migration.from_model, catalog, today=timezone.now().date())

    @extend_schema_field(MigrationGateSerializer(allow_null=True))
    def get_gate(self, migration: Migration) -> dict[str, Any] | None:
        verdict = migration.verdict
        if verdict is None:
            return None
        return {"passed": verdict.passed, "explanation": verdict.evidence.get("explanation", "")}

    @extend_schema_field(MigrationRolloutSerializer(allow_null=True))
    def get_rollout(self, migration: Migration) -> dict[str, Any] | None:
        rollout = migration.rollout
        return {"id": rollout.pk, "state": rollout.state} if rollout is not None else None

    def get_next_step(self, migration: Migration) -> str:
        return reads.next_step(migration)


@extend_schema_serializer(
    examples=[
        request_example(
            "migrate production", {"flag": "support-chat", "environment": "production", "reason": "CHG-4512"}
        )
    ]
)
class MigrationCreateSerializer(StrictSerializer):
    flag = serializers.CharField(max_length=100)
    environment = serializers.CharField(max_length=100)
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="Required in a protected environment",
    )


@extend_schema_serializer(examples=[request_example("after fixing a scorer", {"reason": "scorer v2 fixed"})])
class RerunSerializer(StrictSerializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _data(migration: Migration) -> dict[str, Any]:
    return dict(MigrationSerializer(get_migration(migration.pk)).data)


class MigrationsView(ListAPIView[Migration]):
    """Every migration, newest first; drafting one starts its eval gate."""

    serializer_class = MigrationSerializer
    required_scopes = {"GET": Scope.READ, "POST": Scope.WRITE}

    @extend_schema(
        parameters=[
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
            OpenApiParameter("state", str, enum=MigrationState.values),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Migration]:
        params = self.request.query_params
        filters = {
            "flag__key": params.get("flag"),
            "environment__key": params.get("environment"),
            "state": params.get("state"),
        }
        return Migration.objects.for_page().filter(
            **{name: value for name, value in filters.items() if value}
        )

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "catalog": current_catalog()}

    @extend_schema(
        request=MigrationCreateSerializer,
        responses={
            201: MigrationSerializer,
            **refusals(
                Refusal(
                    409,
                    "rollout_active",
                    "Flag 'support-chat' already has a rollout in 'production' (rollout 12, running); "
                    "finish or abort it before migrating the flag.",
                ),
                Refusal(
                    409,
                    "no_replacement",
                    "The catalog names no replacement for claude-3-haiku-20240307; choose one and draft "
                    "the version by hand.",
                ),
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated_body(MigrationCreateSerializer, request)
        migration = services.create_migration(
            flag=get_flag(data["flag"]),
            environment=get_environment(data["environment"]),
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(_data(migration), status=status.HTTP_201_CREATED)


class MigrationDetailView(APIView):
    required_scopes = {"GET": Scope.READ}

    @extend_schema(responses=MigrationSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_data(get_migration(pk)))


class RerunGateView(APIView):
    """Run the eval gate again on a migration whose gate failed or could not run."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(
        request=RerunSerializer,
        responses={
            200: MigrationSerializer,
            **refusals(Refusal(409, "gate_running", "Migration 4's gate is running already.")),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        migration = get_migration(pk)
        data = validated_body(RerunSerializer, request)
        services.rerun_gate(migration=migration, actor=actor_for_request(request), reason=data["reason"])
        return Response(_data(migration))
