"""REST API of scheduled changes: schedule one, list and read them, cancel one that is pending.

Scheduling and cancelling need `write` (an Editor); the change itself is applied by the beat
sweep in the name of whoever scheduled it (rollouts/services/scheduling.py).
"""

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
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags.lookups import get_environment, get_flag
from rollouts.models import ScheduledChange, ScheduledChangeKind, ScheduledChangeState
from rollouts.services import scheduling

SCHEDULED = {
    "id": 31,
    "flag": "support-chat",
    "environment": "production",
    "kind": "publish",
    "version": 8,
    "weight": None,
    "rollout": None,
    "run_at": "2026-12-24T06:00:00Z",
    "description": "publish v8 of 'support-chat' in 'production'",
    "reason": "CHG-4502: the holiday prompt, live before the morning peak",
    "state": "pending",
    "outcome_code": "",
    "outcome": "",
    "created_by": "maria@acme.example",
    "created_at": "2026-12-05T16:20:11Z",
    "ended_at": None,
    "ended_by": "",
}
SKIPPED = {
    **SCHEDULED,
    "state": "skipped",
    "outcome_code": "rollout_active",
    "outcome": "Flag 'support-chat' already has an active rollout in 'production' (rollout 12, running).",
    "ended_at": "2026-12-24T06:00:04Z",
    "ended_by": "celery:apply_scheduled_changes",
}


@extend_schema_serializer(
    examples=[response_example("pending", SCHEDULED), response_example("skipped with its reason", SKIPPED)]
)
class ScheduledChangeSerializer(serializers.ModelSerializer[ScheduledChange]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")
    version = serializers.IntegerField(source="version_number", allow_null=True)
    rollout = serializers.IntegerField(source="rollout_id", allow_null=True)
    description = serializers.CharField(source="describe", help_text="What the change does, in words")
    created_by = serializers.CharField(source="created_by_name")
    ended_by = serializers.CharField(source="ended_by_name", help_text="Who applied or cancelled it")

    class Meta:
        model = ScheduledChange
        fields = [
            "id",
            "flag",
            "environment",
            "kind",
            "version",
            "weight",
            "rollout",
            "run_at",
            "description",
            "reason",
            "state",
            "outcome_code",
            "outcome",
            "created_by",
            "created_at",
            "ended_at",
            "ended_by",
        ]


@extend_schema_serializer(
    examples=[
        request_example(
            "publish at a time",
            {
                "flag": "support-chat",
                "environment": "production",
                "kind": "publish",
                "version": 8,
                "run_at": "2026-12-24T06:00:00Z",
                "reason": "CHG-4502: the holiday prompt, live before the morning peak",
            },
        ),
        request_example(
            "a 5 % split overnight",
            {
                "flag": "support-chat",
                "environment": "staging",
                "kind": "split",
                "version": 9,
                "weight": 500,
                "run_at": "2026-12-06T02:00:00Z",
            },
        ),
        request_example(
            "start a rollout",
            {
                "flag": "support-chat",
                "environment": "production",
                "kind": "start_rollout",
                "rollout": 12,
                "run_at": "2026-12-07T08:00:00Z",
                "reason": "CHG-4471: start when the team is in",
            },
        ),
    ]
)
class ScheduleSerializer(StrictSerializer):
    flag = serializers.CharField(max_length=100)
    environment = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ScheduledChangeKind.choices)
    run_at = serializers.DateTimeField(help_text="When to apply it: ISO 8601 with a time zone, in the future")
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="publish: the version; split: the candidate"
    )
    weight = serializers.IntegerField(required=False, help_text="split: basis points of units (100 = 1 %)")
    rollout = serializers.IntegerField(required=False, help_text="start_rollout: a draft or ready rollout")
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="Why; required in a protected environment, and given to the change when applied",
    )


def _document(change: ScheduledChange) -> dict[str, Any]:
    return dict(ScheduledChangeSerializer(change).data)


def get_scheduled_change(pk: int) -> ScheduledChange:
    change = ScheduledChange.objects.select_related("flag", "environment").filter(pk=pk).first()
    if change is None:
        raise NotFound(f"No scheduled change {pk}.")
    return change


class ScheduledChangesView(ListAPIView[ScheduledChange]):
    """Scheduled changes, soonest first; schedule one with POST."""

    required_scopes = {"GET": Scope.READ, "POST": Scope.WRITE}
    serializer_class = ScheduledChangeSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
            OpenApiParameter("state", str, enum=ScheduledChangeState.values),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[ScheduledChange]:
        params = self.request.query_params
        filters = {
            "flag__key": params.get("flag"),
            "environment__key": params.get("environment"),
            "state": params.get("state"),
        }
        changes = ScheduledChange.objects.select_related("flag", "environment")
        return changes.filter(**{name: value for name, value in filters.items() if value})

    @extend_schema(
        request=ScheduleSerializer,
        responses={
            201: ScheduledChangeSerializer,
            **refusals(
                Refusal(
                    400,
                    "run_at_in_past",
                    "2026-12-01T06:00:00+00:00 is in the past; "
                    "a change is scheduled for a time still to come.",
                    errors=(("run_at", "must be in the future"),),
                ),
                Refusal(
                    409, "flag_archived", "Flag 'support-chat' is archived; nothing can be scheduled on it."
                ),
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated_body(ScheduleSerializer, request)
        change = scheduling.schedule_change(
            flag=get_flag(data["flag"]),
            environment=get_environment(data["environment"]),
            kind=data["kind"],
            run_at=data["run_at"],
            version=data.get("version"),
            weight=data.get("weight"),
            rollout=data.get("rollout"),
            reason=data["reason"],
            actor=actor_for_request(request),
        )
        return Response(_document(change), status=status.HTTP_201_CREATED)


class ScheduledChangeView(APIView):
    required_scopes = {"GET": Scope.READ}

    @extend_schema(responses=ScheduledChangeSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_document(get_scheduled_change(pk)))


class CancelView(APIView):
    """Withdraw a change that is still pending."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(
        request=ReasonSerializer,
        responses={
            200: ScheduledChangeSerializer,
            **refusals(
                Refusal(
                    409,
                    "not_pending",
                    "Scheduled change 31 is already applied; only a pending change can be cancelled.",
                    extra={"state": "applied"},
                )
            ),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        change = get_scheduled_change(pk)
        data = validated_body(ReasonSerializer, request)
        cancelled = scheduling.cancel_scheduled_change(
            change=change, actor=actor_for_request(request), reason=data["reason"]
        )
        return Response(_document(cancelled))
