"""The cheapest that passes over REST: candidate versions compared on one eval set version.

Viewers (read scope) read it; starting the missing runs is `POST /api/v1/eval-runs/` per version.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import response_example
from evals.api import examples
from evals.comparisons import Comparison, Row, compare, comparison_inputs
from flags.lookups import get_flag


class PairedSerializer(serializers.Serializer[Any]):
    pairs = serializers.IntegerField()
    difference = serializers.FloatField(help_text="Pass rate, candidate minus serving, on the same cases")
    lower = serializers.FloatField()
    upper = serializers.FloatField()


class CounterfactualSerializer(serializers.Serializer[Any]):
    calls = serializers.IntegerField(help_text="Logged calls of the last 7 days")
    output_factor = serializers.FloatField()
    cost_micro_usd = serializers.IntegerField(allow_null=True)
    per_1000_micro_usd = serializers.IntegerField(allow_null=True)
    explanation = serializers.ListField(child=serializers.CharField())


class CandidateSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    model = serializers.CharField()
    serving = serializers.BooleanField()
    run = serializers.IntegerField(allow_null=True)
    active_run = serializers.IntegerField(allow_null=True)
    cases = serializers.IntegerField()
    passed = serializers.IntegerField()
    pass_rate = serializers.FloatField(allow_null=True)
    pass_rate_interval = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    paired_difference = PairedSerializer(allow_null=True)
    per_1000_micro_usd = serializers.IntegerField(allow_null=True)
    per_1000_no_cache_micro_usd = serializers.IntegerField(allow_null=True)
    p95_latency_ms = serializers.FloatField(allow_null=True)
    gate = serializers.CharField(help_text="no gate, no verdict, passed, failed, stale or overridden")
    gate_detail = serializers.CharField()
    passes = serializers.BooleanField()
    counterfactual = CounterfactualSerializer(allow_null=True)
    counterfactual_note = serializers.CharField()


@extend_schema_serializer(examples=[response_example("v7 against v8", examples.COMPARISON)])
class ComparisonSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    eval_set = serializers.CharField()
    eval_set_version = serializers.IntegerField()
    environment = serializers.CharField(allow_null=True)
    serving_version = serializers.IntegerField(allow_null=True)
    logged_calls = serializers.IntegerField(help_text="The flag's calls in the environment, last 7 days")
    candidates = CandidateSerializer(many=True)
    winner = serializers.IntegerField(allow_null=True, help_text="The cheapest version that passes")
    evidence = serializers.CharField()
    needing_runs = serializers.ListField(child=serializers.IntegerField())


def _row(row: Row) -> dict[str, Any]:
    projection, counterfactual = row.projection, row.counterfactual
    return {
        "version": row.version.number,
        "model": row.model,
        "serving": row.is_serving,
        "run": row.run.pk if row.run else None,
        "active_run": row.active_run.pk if row.active_run else None,
        "cases": row.n,
        "passed": row.passed,
        "pass_rate": row.pass_rate,
        "pass_rate_interval": list(row.interval) if row.interval else None,
        "paired_difference": vars_of(row.paired),
        "per_1000_micro_usd": projection.per_1000_micro_usd if projection else None,
        "per_1000_no_cache_micro_usd": projection.per_1000_no_cache_micro_usd if projection else None,
        "p95_latency_ms": row.p95_latency_ms,
        "gate": row.gate.summary,
        "gate_detail": row.gate.detail,
        "passes": row.passes,
        "counterfactual": vars_of(counterfactual),
        "counterfactual_note": row.counterfactual_note,
    }


def vars_of(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {name: getattr(value, name) for name in value.__slots__}


def comparison_data(comparison: Comparison) -> dict[str, Any]:
    return {
        "flag": comparison.flag.key,
        "eval_set": comparison.eval_set_version.eval_set.key,
        "eval_set_version": comparison.eval_set_version.number,
        "environment": comparison.environment.key if comparison.environment else None,
        "serving_version": comparison.serving.number if comparison.serving else None,
        "logged_calls": comparison.logged.calls,
        "candidates": [_row(row) for row in comparison.rows],
        "winner": comparison.winner.version.number if comparison.winner else None,
        "evidence": comparison.evidence,
        "needing_runs": [version.number for version in comparison.needing_runs],
    }


class ComparisonView(APIView):
    """Candidate versions side by side on one eval set version, the cheapest that passes marked."""

    @extend_schema(
        parameters=[
            OpenApiParameter("eval_set", str, description="Default: the gate's eval set"),
            OpenApiParameter(
                "eval_set_version", int, description="Default: the gate's version, or the latest"
            ),
            OpenApiParameter("versions", str, description="Comma-separated version numbers, at most 8"),
            OpenApiParameter("environment", str, description="Whose serving version and logged calls"),
        ],
        responses=ComparisonSerializer,
    )
    def get(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        inputs = comparison_inputs(flag, request.query_params)
        comparison = compare(
            flag=flag,
            eval_set_version=inputs.eval_set_version,
            versions=inputs.versions,
            environment=inputs.environment,
            now=timezone.now(),
        )
        return Response(ComparisonSerializer(comparison_data(comparison)).data)
