"""REST API of experiments: create, read and list them, their verbs, their decisions, and one
action from a concluded experiment to a running canary of its winner.

Every verb takes a reason and is idempotent: repeating it answers the experiment as it stands.
Every verb needs the `write` scope (an Editor); reading needs `read`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import StrictSerializer
from flags.api.approvals import ApprovalSerializer, approval_data
from flags.lookups import get_environment, get_flag
from flags.models import Approval
from flags.services import approvals
from rollouts.api import examples
from rollouts.api.rollouts import (
    GuardrailInputSerializer,
    RolloutSerializer,
    StageInputSerializer,
    VerbSerializer,
)
from rollouts.api.rollouts import _detail as rollout_detail
from rollouts.lookups import get_experiment
from rollouts.models import Experiment, ExperimentArm, ExperimentDecision, ExperimentState
from rollouts.services import experiments


class ExperimentArmSerializer(serializers.ModelSerializer[ExperimentArm]):
    version = serializers.IntegerField(source="version.number")

    class Meta:
        model = ExperimentArm
        fields = ["name", "version", "weight"]


@extend_schema_serializer(examples=[response_example("concluded", examples.EXPERIMENT_DECISION)])
class ExperimentDecisionSerializer(serializers.ModelSerializer[ExperimentDecision]):
    class Meta:
        model = ExperimentDecision
        fields = [
            "tick",
            "action",
            "reason",
            "explanation",
            "applied",
            "outcome",
            "cheapest_passing",
            "evidence",
            "srm_p_value",
            "alpha",
            "arms",
            "inputs",
            "inputs_hash",
            "created_at",
        ]


@extend_schema_serializer(examples=[response_example("concluded", examples.EXPERIMENT)])
class ExperimentSummarySerializer(serializers.ModelSerializer[Experiment]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")
    baseline = serializers.IntegerField(source="baseline.number")
    split = serializers.SerializerMethodField()
    canary = serializers.IntegerField(source="canary_id", allow_null=True, help_text="The winner's rollout")

    class Meta:
        model = Experiment
        fields = [
            "id",
            "flag",
            "environment",
            "baseline",
            "state",
            "pause_reason",
            "version",
            "split",
            "window_seconds",
            "required_units_per_arm",
            "tick_interval_seconds",
            "next_tick_at",
            "ticks_done",
            "started_at",
            "winner",
            "canary",
            "created_by_name",
            "created_at",
            "ended_at",
        ]

    def get_split(self, experiment: Experiment) -> str | None:
        return f"split-{experiment.split_id}" if experiment.split_id else None


@extend_schema_serializer(examples=[response_example("concluded", examples.EXPERIMENT_DETAIL)])
class ExperimentSerializer(ExperimentSummarySerializer):
    arms = ExperimentArmSerializer(many=True)
    policy = serializers.JSONField(source="guardrails", help_text="The guardrails, as for rollouts")
    goals = serializers.JSONField()
    latency_budgets_ms = serializers.JSONField()
    latest_decision = serializers.SerializerMethodField()

    class Meta(ExperimentSummarySerializer.Meta):
        fields = [
            *ExperimentSummarySerializer.Meta.fields,
            "arms",
            "policy",
            "goals",
            "latency_budgets_ms",
            "latest_decision",
        ]

    @extend_schema(responses=ExperimentDecisionSerializer(allow_null=True))
    def get_latest_decision(self, experiment: Experiment) -> dict[str, Any] | None:
        decision = experiment.decisions.order_by("-tick").first()
        return ExperimentDecisionSerializer(decision).data if decision else None


class CandidateInputSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1)
    weight = serializers.IntegerField(help_text="Basis points (100 = 1 %)")
    name = serializers.CharField(
        required=False, max_length=32, help_text="The arm's name; default v<version>"
    )


class GoalInputSerializer(StrictSerializer):
    metric = serializers.CharField(max_length=64)
    name = serializers.CharField(required=False, max_length=64)
    scorer = serializers.CharField(required=False, max_length=64)
    direction = serializers.CharField(required=False)


EXAMPLE = {
    "flag": "support-chat",
    "environment": "production",
    "baseline_weight": 4000,
    "candidates": [
        {"version": 8, "weight": 3000, "name": "haiku"},
        {"version": 9, "weight": 3000, "name": "concise"},
    ],
    "window_seconds": 86400,
    "goals": [{"metric": "live_pass_rate", "scorer": "helpful"}],
    "reason": "is haiku good enough for support?",
}


class ExperimentCreateSerializer(StrictSerializer):
    flag = serializers.CharField(max_length=100)
    environment = serializers.CharField(max_length=100)
    baseline_weight = serializers.IntegerField(help_text="Basis points of units kept on the serving version")
    candidates = CandidateInputSerializer(many=True, help_text="One to three; all weights add up to 10000")
    window_seconds = serializers.IntegerField(required=False, help_text="A fixed window")
    required_units_per_arm = serializers.IntegerField(
        required=False, help_text="Or: end once every arm has this many units"
    )
    policy = GuardrailInputSerializer(
        many=True, required=False, help_text="Default: the surface's guardrails"
    )
    goals = GoalInputSerializer(many=True, required=False, help_text="Two-sided, Benjamini-Hochberg")
    tick_interval_seconds = serializers.IntegerField(required=False, min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class StartCanarySerializer(VerbSerializer):
    stages = StageInputSerializer(many=True, required=False, help_text="Default: 1 % -> 10 % -> 100 %")


def _detail(experiment: Experiment) -> dict[str, Any]:
    return dict(ExperimentSerializer(experiments.fresh(experiment)).data)


VERB_EXAMPLE = [OpenApiExample("reason", value={"reason": "the window is long enough"}, request_only=True)]


class ExperimentsView(ListAPIView[Experiment]):
    serializer_class = ExperimentSummarySerializer
    required_scopes = {"GET": Scope.READ, "POST": Scope.WRITE}

    @extend_schema(
        parameters=[
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
            OpenApiParameter("state", str, enum=ExperimentState.values),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Experiment]:
        found = Experiment.objects.select_related("flag", "environment", "baseline")
        params = self.request.query_params
        filters = {
            "flag__key": params.get("flag"),
            "environment__key": params.get("environment"),
            "state": params.get("state"),
        }
        return found.filter(**{name: value for name, value in filters.items() if value})

    @extend_schema(
        request=ExperimentCreateSerializer,
        responses={201: ExperimentSerializer},
        examples=[OpenApiExample("two candidates for a day", value=EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        data = validated_body(ExperimentCreateSerializer, request)
        experiment = experiments.create_experiment(
            flag=get_flag(data["flag"]),
            environment=get_environment(data["environment"]),
            baseline_weight=data["baseline_weight"],
            candidates=data["candidates"],
            window_seconds=data.get("window_seconds"),
            required_units_per_arm=data.get("required_units_per_arm"),
            policy=data.get("policy"),
            goals=data.get("goals", []),
            tick_interval_seconds=data.get("tick_interval_seconds"),
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(_detail(experiment), status=status.HTTP_201_CREATED)


class ExperimentDetailView(APIView):
    required_scopes = {"GET": Scope.READ}

    @extend_schema(responses=ExperimentSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(_detail(get_experiment(pk)))


def _apply(request: Request, pk: int, verb: Callable[..., Experiment]) -> Response:
    experiment = get_experiment(pk)
    data = validated_body(VerbSerializer, request)
    actor = actor_for_request(request)
    answer = approvals.apply_or_ask(
        actor=actor, call=lambda: verb(experiment=experiment, actor=actor, **data)
    )
    if isinstance(answer, Approval):
        return Response(approval_data(answer), status=status.HTTP_202_ACCEPTED)
    return Response(_detail(answer))


class StartView(APIView):
    """Serve the arms (an experiment split with its own seed): needs each candidate's gate."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(
        request=VerbSerializer,
        responses={
            200: ExperimentSerializer,
            202: OpenApiResponse(ApprovalSerializer, description="Four eyes: waiting for an Approver"),
        },
        examples=VERB_EXAMPLE,
    )
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, experiments.start_experiment)


class PauseView(APIView):
    """Stop the ticks; the arms keep being served."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses=ExperimentSerializer, examples=VERB_EXAMPLE)
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, experiments.pause_experiment)


class ResumeView(APIView):
    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses=ExperimentSerializer, examples=VERB_EXAMPLE)
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, experiments.resume_experiment)


class AbortView(APIView):
    """Give the experiment up without a conclusion; everyone gets the baseline again."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses=ExperimentSerializer, examples=VERB_EXAMPLE)
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, experiments.abort_experiment)


class ConcludeView(APIView):
    """Conclude now on the data so far: the arms that pass, the cheapest marked."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=VerbSerializer, responses=ExperimentSerializer, examples=VERB_EXAMPLE)
    def post(self, request: Request, pk: int) -> Response:
        return _apply(request, pk, experiments.conclude_experiment)


class StartCanaryView(APIView):
    """Create and start a rollout of the winner with the experiment's guardrails; its gate applies."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(
        request=StartCanarySerializer,
        responses={201: RolloutSerializer},
        examples=[OpenApiExample("reason", value={"reason": "ship the cheapest"}, request_only=True)],
    )
    def post(self, request: Request, pk: int) -> Response:
        experiment = get_experiment(pk)
        data = validated_body(StartCanarySerializer, request)
        rollout = experiments.start_canary(
            experiment=experiment,
            actor=actor_for_request(request),
            reason=data["reason"],
            stages=data.get("stages"),
        )
        return Response(rollout_detail(rollout), status=status.HTTP_201_CREATED)


class DecisionsView(ListAPIView[ExperimentDecision]):
    """Every tick's decision of an experiment, newest first: kept for good."""

    serializer_class = ExperimentDecisionSerializer
    required_scopes = {"GET": Scope.READ}

    def get_queryset(self) -> QuerySet[ExperimentDecision]:
        return get_experiment(self.kwargs["pk"]).decisions.order_by("-tick")
