"""REST API of rollback rehearsals: request one (run by a worker), read them, and schedule them
per flag × environment."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.errors import NotFound
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import StrictSerializer
from flags.lookups import get_environment, get_flag
from rollouts.api import examples
from rollouts.models import RehearsalSchedule, RehearsalState, RollbackRehearsal
from rollouts.services import rehearsals


@extend_schema_serializer(examples=[response_example("passed", examples.REHEARSAL)])
class RehearsalSerializer(serializers.ModelSerializer[RollbackRehearsal]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")
    candidate = serializers.IntegerField(source="candidate.number", allow_null=True, default=None)

    class Meta:
        model = RollbackRehearsal
        fields = [
            "id",
            "flag",
            "environment",
            "state",
            "trigger",
            "started_by",
            "rollout",
            "candidate",
            "threshold_seconds",
            "snapshot_seconds",
            "stream_seconds",
            "probe_seconds",
            "clients_connected",
            "clients_reached",
            "outcome",
            "failures",
            "steps",
            "incident",
            "requested_at",
            "started_at",
            "finished_at",
        ]


@extend_schema_serializer(
    examples=[
        request_example(
            "in staging", {"flag": "support-chat", "environment": "staging", "reason": "CHG-4471"}
        ),
        request_example("in the default environment", {"flag": "support-chat"}),
    ]
)
class RehearsalRequestSerializer(StrictSerializer):
    flag = serializers.CharField(max_length=100)
    environment = serializers.CharField(
        max_length=100, required=False, help_text="Default: FLAGSTAFF_REHEARSAL_ENVIRONMENT (staging)"
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


PRODUCTION_REFUSED = Refusal(
    400,
    "rehearsal_production_refused",
    "'production' is a production environment: rollback rehearsals run there only when "
    "FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION is set. Rehearse in a staging environment instead.",
    errors=(("environment", "production needs FLAGSTAFF_REHEARSAL_ALLOW_PRODUCTION"),),
)
REHEARSAL_ACTIVE = Refusal(
    409, "rehearsal_active", "A rollback rehearsal of 'support-chat' in 'staging' is already under way."
)


def _filtered(found: QuerySet[Any], params: Any) -> QuerySet[Any]:
    filters = {"flag__key": params.get("flag"), "environment__key": params.get("environment")}
    return found.filter(**{name: value for name, value in filters.items() if value})


class RehearsalsView(ListAPIView[RollbackRehearsal]):
    """Rollback rehearsals, newest first; POST requests one (a worker runs it: poll its state)."""

    serializer_class = RehearsalSerializer
    required_scopes = {"GET": Scope.READ, "POST": Scope.WRITE}

    @extend_schema(
        parameters=[
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
            OpenApiParameter("state", str, enum=RehearsalState.values),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[RollbackRehearsal]:
        found = _filtered(
            RollbackRehearsal.objects.select_related("flag", "environment", "candidate"),
            self.request.query_params,
        )
        state = self.request.query_params.get("state")
        return found.filter(state=state) if state else found

    @extend_schema(
        request=RehearsalRequestSerializer,
        responses={202: RehearsalSerializer, **refusals(PRODUCTION_REFUSED, REHEARSAL_ACTIVE)},
        examples=[
            response_example("requested", {**examples.REHEARSAL, "state": "pending"}, status_codes=["202"])
        ],
    )
    def post(self, request: Request) -> Response:
        data = validated_body(RehearsalRequestSerializer, request)
        environment = (
            get_environment(data["environment"])
            if data.get("environment")
            else rehearsals.default_environment()
        )
        rehearsal = rehearsals.request_rehearsal(
            flag=get_flag(data["flag"]),
            environment=environment,
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(RehearsalSerializer(rehearsal).data, status=status.HTTP_202_ACCEPTED)


class RehearsalDetailView(APIView):
    required_scopes = {"GET": Scope.READ}

    @extend_schema(responses=RehearsalSerializer)
    def get(self, request: Request, pk: int) -> Response:
        rehearsal = (
            RollbackRehearsal.objects.select_related("flag", "environment", "candidate").filter(pk=pk).first()
        )
        if rehearsal is None:
            raise NotFound(f"No rollback rehearsal {pk}.")
        return Response(RehearsalSerializer(rehearsal).data)


@extend_schema_serializer(
    examples=[
        response_example(
            "weekly in staging",
            {
                "id": 3,
                "flag": "support-chat",
                "environment": "staging",
                "interval_seconds": 604800,
                "next_run_at": "2026-12-12T03:00:00Z",
                "enabled": True,
                "created_by_name": "ana@example.com",
            },
        )
    ]
)
class ScheduleSerializer(serializers.ModelSerializer[RehearsalSchedule]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")

    class Meta:
        model = RehearsalSchedule
        fields = [
            "id",
            "flag",
            "environment",
            "interval_seconds",
            "next_run_at",
            "enabled",
            "created_by_name",
        ]


@extend_schema_serializer(
    examples=[
        request_example(
            "weekly",
            {
                "flag": "support-chat",
                "environment": "staging",
                "interval_seconds": 604800,
                "reason": "checklist",
            },
        )
    ]
)
class ScheduleInputSerializer(StrictSerializer):
    flag = serializers.CharField(max_length=100)
    environment = serializers.CharField(max_length=100)
    interval_seconds = serializers.IntegerField(help_text="At least 60; 604800 is weekly")
    enabled = serializers.BooleanField(required=False, default=True)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class SchedulesView(ListAPIView[RehearsalSchedule]):
    """Rehearsal schedules; POST sets the one of a flag × environment (the first run one interval
    from now)."""

    serializer_class = ScheduleSerializer
    required_scopes = {"GET": Scope.READ, "POST": Scope.WRITE}

    @extend_schema(
        parameters=[
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[RehearsalSchedule]:
        return _filtered(
            RehearsalSchedule.objects.select_related("flag", "environment"), self.request.query_params
        )

    @extend_schema(
        request=ScheduleInputSerializer, responses={200: ScheduleSerializer, **refusals(PRODUCTION_REFUSED)}
    )
    def post(self, request: Request) -> Response:
        data = validated_body(ScheduleInputSerializer, request)
        schedule = rehearsals.set_rehearsal_schedule(
            flag=get_flag(data["flag"]),
            environment=get_environment(data["environment"]),
            interval_seconds=data["interval_seconds"],
            enabled=data["enabled"],
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(ScheduleSerializer(schedule).data)


class ScheduleDetailView(APIView):
    required_scopes = {"GET": Scope.READ, "DELETE": Scope.WRITE}

    def _schedule(self, pk: int) -> RehearsalSchedule:
        schedule = RehearsalSchedule.objects.select_related("flag", "environment").filter(pk=pk).first()
        if schedule is None:
            raise NotFound(f"No rehearsal schedule {pk}.")
        return schedule

    @extend_schema(responses=ScheduleSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ScheduleSerializer(self._schedule(pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        rehearsals.delete_rehearsal_schedule(schedule=self._schedule(pk), actor=actor_for_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
