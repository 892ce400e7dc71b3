"""REST API of rollouts: create, read and list them, their verbs, and their decisions.

Every verb takes a reason and is idempotent: repeating it answers the rollout as it stands.
Promoting needs the `approve` scope (an Approver); every other verb, rollback included, needs
`write` (an Editor), and rollback acts at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import StrictSerializer
from flags.api.approvals import ApprovalSerializer, approval_data
from flags.lookups import get_environment, get_flag
from flags.models import Approval
from flags.services import approvals
from rollouts.api import examples
from rollouts.lookups import get_rollout
from rollouts.models import Decision, Guardrail, Rollout, RolloutState, Stage
from rollouts.services import lifecycle
from rollouts.services.rollback import roll_back


class StageSerializer(serializers.ModelSerializer[Stage]):
    class Meta:
        model = Stage
        fields = [
            "index",
            "weight",
            "min_duration_seconds",
            "max_duration_seconds",
            "min_units_per_arm",
            "min_judged_per_arm",
            "gate",
            "on_inconclusive",
            "state",
            "started_at",
            "ended_at",
        ]


class GuardrailSerializer(serializers.ModelSerializer[Guardrail]):
    class Meta:
        model = Guardrail
        fields = [
            "name",
            "label",
            "metric",
            "kind",
            "direction",
            "margin",
            "relative_margin",
            "critical",
            "source",
            "may_act",
            "scorer",
            "quantile",
            "cache_sensitive",
            "unit",
        ]


@extend_schema_serializer(examples=[response_example("hold: minimum duration not met", examples.DECISION)])
class DecisionSerializer(serializers.ModelSerializer[Decision]):
    stage = serializers.IntegerField(source="stage.index")

    class Meta:
        model = Decision
        fields = [
            "tick",
            "stage",
            "action",
            "reason",
            "explanation",
            "applied",
            "outcome",
            "srm_p_value",
            "alpha",
            "alpha_critical",
            "metrics",
            "inputs",
            "inputs_hash",
            "created_at",
        ]


@extend_schema_serializer(examples=[response_example("running at 1 %", examples.ROLLOUT)])
class RolloutSummarySerializer(serializers.ModelSerializer[Rollout]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")
    baseline = serializers.IntegerField(source="baseline.number")
    candidate = serializers.IntegerField(source="candidate.number")
    split = serializers.SerializerMethodField()

    class Meta:
        model = Rollout
        fields = [
            "id",
            "flag",
            "environment",
            "baseline",
            "candidate",
            "state",
            "pause_reason",
            "stage_index",
            "version",
            "split",
            "tick_interval_seconds",
            "next_tick_at",
            "ticks_done",
            "created_by_name",
            "created_at",
            "ended_at",
        ]

    def get_split(self, rollout: Rollout) -> str | None:
        return f"split-{rollout.split_id}" if rollout.split_id else None


@extend_schema_serializer(examples=[response_example("running at 1 %", examples.ROLLOUT_DETAIL)])
class RolloutSerializer(RolloutSummarySerializer):
    stages = StageSerializer(many=True)
    policy = GuardrailSerializer(many=True, source="guardrails")
    latest_decision = serializers.SerializerMethodField()

    class Meta(RolloutSummarySerializer.Meta):
        fields = [*RolloutSummarySerializer.Meta.fields, "stages", "policy", "latest_decision"]

    @extend_schema(responses=DecisionSerializer(allow_null=True))
    def get_latest_decision(self, rollout: Rollout) -> dict[str, Any] | None:
        decision = rollout.decisions.select_related("stage").order_by("-tick").first()
        return DecisionSerializer(decision).data if decision else None


class StageInputSerializer(StrictSerializer):
    weight = serializers.IntegerField(help_text="Basis points (100 = 1 %); strictly increasing")
    min_duration_seconds = serializers.IntegerField(required=False, min_value=0)
    max_duration_seconds = serializers.IntegerField(required=False, min_value=0)
    min_units_per_arm = serializers.IntegerField(required=False, min_value=0)
    min_judged_per_arm = serializers.IntegerField(required=False, min_value=0)
    gate = serializers.CharField(required=False)
    on_inconclusive = serializers.CharField(required=False)


class GuardrailInputSerializer(StrictSerializer):
    metric = serializers.CharField(max_length=64)
    name = serializers.CharField(required=False, max_length=64)
    # Declared fields shadow Field attributes only in the type stubs (see flags/api/versions.py).
    label = serializers.CharField(required=False, max_length=100)  # type: ignore[assignment]
    kind = serializers.CharField(required=False)
    direction = serializers.CharField(required=False)
    margin = serializers.FloatField(min_value=0)
    relative_margin = serializers.BooleanField(required=False)
    critical = serializers.BooleanField(required=False)
    may_act = serializers.BooleanField(required=False)
    scorer = serializers.CharField(required=False, max_length=64)
    quantile = serializers.FloatField(required=False)


@extend_schema_serializer(
    examples=[
        request_example(
            "the default plan",
            {"flag": "support-chat", "environment": "production", "candidate": 8, "reason": "CHG-4471"},
        ),
        request_example(
            "two stages, a stricter error margin",
            {
                "flag": "support-chat",
                "environment": "production",
                "candidate": 8,
                "stages": [
                    {"weight": 500, "min_duration_seconds": 3600, "min_units_per_arm": 300},
                    {"weight": 10000},
                ],
                "policy": [{"metric": "api_error_rate", "margin": 0.005, "critical": True}],
                "tick_interval_seconds": 120,
                "reason": "CHG-4471: 5 % for an hour, then everyone",
            },
        ),
    ]
)
class RolloutCreateSerializer(StrictSerializer):
    flag = serializers.CharField(max_length=100)
    environment = serializers.CharField(max_length=100)
    candidate = serializers.IntegerField(min_value=1)
    stages = StageInputSerializer(many=True, required=False, help_text="Default: 1 % -> 10 % -> 100 %")
    policy = GuardrailInputSerializer(
        many=True, required=False, help_text="Default: the surface's guardrails"
    )
    tick_interval_seconds = serializers.IntegerField(required=False, min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


@extend_schema_serializer(
    examples=[request_example("with a reason", {"reason": "TTFT p95 up 40 % on the canary (INC-2291)"})]
)
class VerbSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, help_text="Why; kept in the audit log")


@extend_schema_serializer(
    examples=[request_example("to 10 %", {"reason": "1 % stage clean for 4 hours; approved", "stage": 0})]
)
class PromoteSerializer(VerbSerializer):
    stage = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="The stage being promoted from: a repeat answers the current state",
    )


INVALID_TRANSITION = Refusal(
    409,
    "invalid_transition",
    "Rollout 12 is rolled back; it cannot pause.",
    extra={"state": "rolled_back"},
)
VERB_REFUSALS = refusals(INVALID_TRANSITION)
WAITING = OpenApiResponse(
    ApprovalSerializer, description="Four eyes: the change waits for an Approver other than its author"
)
CHECKLIST_RED = Refusal(
    409,
    "checklist_incomplete",
    "The deploy checklist of rollout 12 has 1 red item: Effort set explicitly (v8 leaves "
    "output_config.effort to the model's default.). Make each green, or an Approver may waive it "
    "with a reason.",
    extra={"red": ["effort"]},
)


def _detail(rollout: Rollout) -> dict[str, Any]:
    rollout = Rollout.objects.select_related("flag", "environment", "baseline", "candidate").get(
        pk=rollout.pk
    )
    return dict(RolloutSerializer(rollout).data)


class RolloutsView(ListAPIView[Rollout]):
    serializer_class = RolloutSummarySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
            OpenApiParameter("state", str, enum=RolloutState.values),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Rollout]:
        rollouts = Rollout.objects.select_related("flag", "environment", "baseline", "candidate")
        params = self.request.query_params
        filters = {
            "flag__key": params.get("flag"),
            "environment__key": params.get("environment"),
            "state": params.get("state"),
        }
        return rollouts.filter(**{name: value for name, value in filters.items() if value})

    @extend_schema(
        request=RolloutCreateSerializer,
        responses={
            201: RolloutSerializer,
            **refusals(
                Refusal(
                    409,
                    "rollout_active",
                    "Flag 'support-chat' already has an active rollout in 'production' "
                    "(rollout 12, running).",
                )
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated_body(RolloutCreateSerializer, request)
        rollout = lifecycle.create_rollout(
            flag=get_flag(data["flag"]),
            environment=get_environment(data["environment"]),
            candidate=data["candidate"],
            stages=data.get("stages"),
            policy=data.get("policy"),
            tick_interval_seconds=data.get("tick_interval_seconds"),
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(_detail(rollout), status=status.HTTP_201_CREATED)


class RolloutDetailView(APIView):
    @extend_schema(responses=RolloutSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_detail(get_rollout(pk)))


def _apply(
    request: Request, pk: int, verb: Callable[..., Rollout], body: type[VerbSerializer] = VerbSerializer
) -> Response:
    rollout = get_rollout(pk)
    data = validated_body(body, request)
    actor = actor_for_request(request)
    answer = approvals.apply_or_ask(actor=actor, call=lambda: verb(rollout=rollout, actor=actor, **data))
    if isinstance(answer, Approval):
        return Response(approval_data(answer), status=status.HTTP_202_ACCEPTED)
    return Response(_detail(answer))


class StartView(APIView):
    """Serve the candidate to the first stage: needs its gate (a passing verdict or an override)
    and the deploy checklist; where four eyes are required, answers 202 with the approval."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(
        request=VerbSerializer,
        responses={200: RolloutSerializer, 202: WAITING, **refusals(INVALID_TRANSITION, CHECKLIST_RED)},
    )
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, lifecycle.start_rollout)


class PauseView(APIView):
    """Hold the rollout at its stage; traffic stays as it is."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses={200: RolloutSerializer, **VERB_REFUSALS})
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, lifecycle.pause_rollout)


class ResumeView(APIView):
    """Run the paused stage again."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses={200: RolloutSerializer, **VERB_REFUSALS})
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, lifecycle.resume_rollout)


class PromoteView(APIView):
    """Move to the next stage, or make the candidate the serving version: an Approver's call."""

    required_scopes = {"POST": Scope.APPROVE}

    @extend_schema(
        request=PromoteSerializer,
        responses={200: RolloutSerializer, 202: WAITING, **VERB_REFUSALS},
        examples=[
            response_example(
                "at 10 %",
                {
                    **examples.ROLLOUT_DETAIL,
                    "stage_index": 1,
                    "version": 4,
                    "stages": [
                        {**examples.STAGES[0], "state": "passed", "ended_at": "2026-12-05T17:00:00Z"},
                        {**examples.STAGES[1], "state": "analyzing", "started_at": "2026-12-05T17:00:00Z"},
                        examples.STAGES[2],
                    ],
                },
            )
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, lifecycle.promote_rollout, PromoteSerializer)


class RollbackView(APIView):
    """Take the candidate off traffic now and open an incident; waits on nothing. The same
    service as `POST /api/v1/flags/{key}/environments/{env}/rollback/`."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses={200: RolloutSerializer, **VERB_REFUSALS})
    def post(self, request: Request, pk: int) -> Response:
        rollout = get_rollout(pk)
        if not rollout.is_on_traffic:
            return _apply(request, pk, lifecycle.rollback_rollout)  # answered as it stands, or refused
        data = validated_body(VerbSerializer, request)
        # The one motion every Roll back entry point takes (and its flag.rolled_back entry).
        roll_back(
            flag=rollout.flag,
            environment=rollout.environment,
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(_detail(rollout))


class AbortView(APIView):
    """Give the rollout up; the candidate leaves traffic, no incident."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses={200: RolloutSerializer, **VERB_REFUSALS})
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, lifecycle.abort_rollout)


class DecisionsView(ListAPIView[Decision]):
    """Every tick's decision of a rollout, newest first: kept for good."""

    serializer_class = DecisionSerializer

    def get_queryset(self) -> QuerySet[Decision]:
        rollout = get_rollout(self.kwargs["pk"])
        return rollout.decisions.select_related("stage").order_by("-tick")
