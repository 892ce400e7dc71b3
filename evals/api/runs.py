"""Eval runs over REST: start one, read it with its summary and progress, page its cases, cancel, resume.

Editors (write scope) start, cancel and resume; Viewers (read scope) read.
"""

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

from controlplane.api_docs import request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.serializers import StrictSerializer
from evals.api import examples
from evals.lookups import find_eval_set_version, get_run
from evals.models import CaseScore, EvalRun, RunCase, RunMode
from evals.run_progress import run_progress
from evals.services import runs
from flags.lookups import get_flag, get_version


class ProgressSerializer(serializers.Serializer[Any]):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    reused = serializers.IntegerField()
    percent = serializers.IntegerField()
    eta_seconds = serializers.IntegerField(allow_null=True)
    cost_micro_usd = serializers.IntegerField()
    finished = serializers.BooleanField()


@extend_schema_serializer(
    examples=[
        response_example("running", examples.RUN),
        response_example(
            "succeeded",
            {
                **examples.RUN,
                "state": "succeeded",
                "cases_done": 200,
                "cost_micro_usd": 2961400,
                "progress": {
                    **examples.RUN["progress"],
                    "done": 200,
                    "percent": 100,
                    "eta_seconds": None,
                    "cost_micro_usd": 2961400,
                    "finished": True,
                },
                "summary": {
                    "cases": 200,
                    "answered": 200,
                    "judged": 200,
                    "passed": 195,
                    "errors": 0,
                    "pass_rate": 0.975,
                    "pass_rate_interval": [0.943, 0.989],
                    "scorers": {"calls-lookup": {"mean_score": 0.975, "passed": 195, "n": 200, "errors": 0}},
                    "cost_micro_usd": 2961400,
                    "cost_per_case_micro_usd": 14807,
                    "cost_unknown_cases": 0,
                    "latency_p50_ms": 1650,
                    "latency_p95_ms": 4180,
                    "cache_hit_ratio": 0.81,
                },
                "finished_at": "2026-12-04T15:09:31Z",
            },
        ),
    ]
)
class RunSerializer(serializers.ModelSerializer[EvalRun]):
    flag = serializers.CharField(source="flag.key")
    version = serializers.IntegerField(source="config_version.number", allow_null=True, default=None)
    draft = serializers.SerializerMethodField()
    eval_set = serializers.CharField(source="eval_set_version.eval_set.key")
    eval_set_version = serializers.IntegerField(source="eval_set_version.number")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = EvalRun
        fields = [
            "id",
            "flag",
            "version",
            "draft",
            "content_hash",
            "eval_set",
            "eval_set_version",
            "scorer_versions",
            "mode",
            "state",
            "reason",
            "batch_id",
            "concurrency",
            "cases_total",
            "cases_done",
            "cases_reused",
            "cost_micro_usd",
            "progress",
            "summary",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_draft(self, run: EvalRun) -> bool:
        return run.config_version_id is None

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, run: EvalRun) -> dict[str, Any]:
        return dict(vars(run_progress(run, now=timezone.now())))


@extend_schema_serializer(
    examples=[
        request_example(
            "version 8 on support-golden",
            {"flag": "support-chat", "version": 8, "eval_set": "support-golden", "mode": "messages"},
        ),
        request_example(
            "a draft, through the Batches API",
            {
                "flag": "support-chat",
                "draft_content": {"model": "claude-haiku-5-5", "max_tokens": 2048},
                "eval_set": "support-golden",
                "eval_set_version": 3,
                "mode": "batch",
            },
        ),
    ]
)
class RunCreateSerializer(StrictSerializer):
    flag = serializers.SlugField()
    version = serializers.IntegerField(required=False, min_value=1, help_text="A config version of the flag")
    draft_content = serializers.JSONField(
        required=False, help_text="Unsaved config content, instead of a version"
    )
    eval_set = serializers.SlugField()
    eval_set_version = serializers.IntegerField(required=False, min_value=1, help_text="Latest when absent")
    mode = serializers.ChoiceField(choices=RunMode.choices, default=RunMode.MESSAGES)
    concurrency = serializers.IntegerField(required=False, min_value=1, max_value=runs.MAX_CONCURRENCY)


class RunsView(ListAPIView[EvalRun]):
    serializer_class = RunSerializer

    @extend_schema(parameters=[OpenApiParameter("flag", str, description="Flag key")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[EvalRun]:
        found = EvalRun.objects.select_related("flag", "config_version", "eval_set_version__eval_set")
        flag = self.request.query_params.get("flag")
        return found.filter(flag__key=flag) if flag else found

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def post(self, request: Request) -> Response:
        body = validated_body(RunCreateSerializer, request)
        flag = get_flag(body["flag"])
        run = runs.start_run(
            flag=flag,
            eval_set_version=find_eval_set_version(body["eval_set"], body.get("eval_set_version")),
            config_version=get_version(flag, body["version"]) if "version" in body else None,
            draft_content=body.get("draft_content"),
            mode=body["mode"],
            concurrency=body.get("concurrency"),
            actor=actor_for_request(request),
        )
        return Response(RunSerializer(get_run(run.pk)).data, status=status.HTTP_201_CREATED)


class RunDetailView(APIView):
    @extend_schema(responses=RunSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RunSerializer(get_run(pk)).data)


class RunCancelView(APIView):
    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request: Request, pk: int) -> Response:
        run = runs.cancel_run(run=get_run(pk), actor=actor_for_request(request))
        return Response(RunSerializer(run).data)


class RunResumeView(APIView):
    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request: Request, pk: int) -> Response:
        run = runs.resume_run(run=get_run(pk), actor=actor_for_request(request))
        return Response(RunSerializer(run).data)


class CaseScoreSerializer(serializers.ModelSerializer[CaseScore]):
    class Meta:
        model = CaseScore
        fields = ["scorer", "scorer_version", "score", "passed", "error", "explanation", "cost_micro_usd"]


@extend_schema_serializer(examples=[response_example("a tool call, passed", examples.RUN_CASE)])
class RunCaseSerializer(serializers.ModelSerializer[RunCase]):
    position = serializers.IntegerField(source="case.position")
    case_hash = serializers.CharField(source="case.case_hash")
    input = serializers.JSONField(source="case.input")
    reference = serializers.JSONField(source="case.reference")
    output = serializers.JSONField(source="output.output", allow_null=True, default=None)
    stop_reason = serializers.CharField(source="output.stop_reason", allow_null=True, default=None)
    usage = serializers.JSONField(source="output.usage", allow_null=True, default=None)
    cost_micro_usd = serializers.IntegerField(source="output.cost_micro_usd", allow_null=True, default=None)
    latency_ms = serializers.IntegerField(source="output.latency_ms", allow_null=True, default=None)
    ttft_ms = serializers.IntegerField(source="output.ttft_ms", allow_null=True, default=None)
    scores = serializers.SerializerMethodField()

    class Meta:
        model = RunCase
        fields = [
            "position",
            "case_hash",
            "state",
            "reused",
            "passed",
            "score",
            "error",
            "input",
            "reference",
            "output",
            "stop_reason",
            "usage",
            "cost_micro_usd",
            "latency_ms",
            "ttft_ms",
            "scores",
        ]

    @extend_schema_field(CaseScoreSerializer(many=True))
    def get_scores(self, row: RunCase) -> list[dict[str, Any]]:
        if row.output is None:
            return []
        versions = self.context["scorer_versions"]
        return [
            dict(CaseScoreSerializer(score).data)
            for score in row.output.scores.all()
            if versions.get(score.scorer) == score.scorer_version
        ]


class RunCasesView(ListAPIView[RunCase]):
    """The run's cases in position order, with answers and the scores of the run's scorer versions."""

    serializer_class = RunCaseSerializer

    @extend_schema(parameters=[OpenApiParameter("state", str, enum=["pending", "claimed", "done", "error"])])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_serializer_context(self) -> dict[str, Any]:
        return super().get_serializer_context() | {"scorer_versions": self._run().scorer_versions or {}}

    def _run(self) -> EvalRun:
        if not hasattr(self, "_found_run"):
            self._found_run = get_run(self.kwargs["pk"])
        return self._found_run

    def get_queryset(self) -> QuerySet[RunCase]:
        rows = (
            RunCase.objects.filter(run=self._run())
            .select_related("case", "output")
            .prefetch_related("output__scores")
            .order_by("case__position")
        )
        state = self.request.query_params.get("state")
        return rows.filter(state=state) if state else rows
