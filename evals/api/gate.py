"""A flag's eval gate: read and set its policy, list verdicts, judge a version, override a verdict."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.errors import NotFound
from controlplane.inputs import REASON_PARAMETER, delete_reason, validated_body
from controlplane.models import Scope
from controlplane.serializers import ReasonSerializer, StrictSerializer
from evals.api import examples
from evals.models import GatePolicy, GateVerdict
from evals.services import gate
from flags.lookups import get_environment, get_flag, get_version
from flags.models import Flag

VERDICTS_SHOWN = 50
OVERRIDE_REASON = "The 3 failing cases ask for a discontinued product; reviewed with CX (CHG-4490)"


@extend_schema_serializer(
    examples=[
        request_example(
            "92 % on support-golden",
            {
                **{key: value for key, value in examples.GATE_POLICY.items() if key != "version_policy"},
                "reason": "Gate every support-chat version from December",
            },
        )
    ]
)
class GatePolicyInputSerializer(StrictSerializer):
    eval_set = serializers.CharField(max_length=100)
    pinned_version = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    required_pass_rate = serializers.FloatField(min_value=0, max_value=1)
    margin = serializers.FloatField(required=False, default=gate.DEFAULT_MARGIN, min_value=0, max_value=0.99)
    max_cost_per_case_micro_usd = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0
    )
    max_p95_latency_ms = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class GatePolicySerializer(serializers.Serializer[Any]):
    eval_set = serializers.CharField()
    version_policy = serializers.CharField()
    pinned_version = serializers.IntegerField(allow_null=True)
    required_pass_rate = serializers.FloatField()
    margin = serializers.FloatField()
    max_cost_per_case_micro_usd = serializers.IntegerField(allow_null=True)
    max_p95_latency_ms = serializers.IntegerField(allow_null=True)


class OverrideSerializer(serializers.Serializer[Any]):
    by = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()


@extend_schema_serializer(examples=[response_example("passed", examples.VERDICT)])
class VerdictSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    version = serializers.IntegerField()
    eval_set = serializers.CharField()
    eval_set_version = serializers.IntegerField()
    passed = serializers.BooleanField()
    admitted = serializers.BooleanField(help_text="Passed, or failed and overridden by an Approver")
    explanation = serializers.CharField()
    override = OverrideSerializer(allow_null=True)
    run = serializers.IntegerField()
    baseline_run = serializers.IntegerField(allow_null=True)
    policy = serializers.JSONField()
    evidence = serializers.JSONField()
    created_at = serializers.DateTimeField()


@extend_schema_serializer(examples=[response_example("gated", examples.GATE)])
class GateSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    # Declared fields shadow Field attributes only in the type stubs (see flags/api/versions.py).
    required = serializers.BooleanField()  # type: ignore[assignment]
    detail = serializers.CharField()
    policy = GatePolicySerializer(allow_null=True)
    verdicts = VerdictSerializer(many=True)


@extend_schema_serializer(
    examples=[request_example("v8 against production", {"version": 8, "environment": "production"})]
)
class EvaluateSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1)
    environment = serializers.CharField(
        required=False, allow_null=True, default=None, help_text="Judge against the version it serves"
    )


@extend_schema_serializer(
    examples=[
        request_example(
            "let it through",
            {"reason": OVERRIDE_REASON},
        )
    ]
)
class OverrideInputSerializer(ReasonSerializer):
    reason = serializers.CharField(max_length=2000)


def verdict_data(verdict: GateVerdict) -> dict[str, Any]:
    override = (
        {"by": verdict.override_by, "reason": verdict.override_reason, "at": verdict.overridden_at}
        if verdict.is_overridden
        else None
    )
    return {
        "id": verdict.pk,
        "version": verdict.config_version.number,
        "eval_set": verdict.eval_set_version.eval_set.key,
        "eval_set_version": verdict.eval_set_version.number,
        "passed": verdict.passed,
        "admitted": verdict.passed or verdict.is_overridden,
        "explanation": verdict.evidence.get("explanation", ""),
        "override": override,
        "run": verdict.run_id,
        "baseline_run": verdict.baseline_run_id,
        "policy": verdict.policy,
        "evidence": verdict.evidence,
        "created_at": verdict.created_at,
    }


def _gate_data(flag: Flag) -> dict[str, Any]:
    policy = GatePolicy.objects.select_related("eval_set", "pinned_version").filter(flag=flag).first()
    verdicts = GateVerdict.objects.filter(config_version__flag=flag).select_related(
        "config_version", "eval_set_version__eval_set"
    )[:VERDICTS_SHOWN]
    return {
        "flag": flag.key,
        "required": policy is not None,
        "detail": "Publishing needs a passing verdict (or an Approver's override)."
        if policy
        else "No gate policy: publishing needs no verdict.",
        "policy": gate.policy_fields(policy) if policy else None,
        "verdicts": [verdict_data(verdict) for verdict in verdicts],
    }


class GateView(APIView):
    @extend_schema(responses=GateSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(GateSerializer(_gate_data(get_flag(key))).data)

    @extend_schema(request=GatePolicyInputSerializer, responses=GateSerializer)
    def put(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = validated_body(GatePolicyInputSerializer, request)
        gate.set_gate_policy(
            flag=flag,
            eval_set_key=data.pop("eval_set"),
            actor=actor_for_request(request),
            **data,
        )
        return Response(GateSerializer(_gate_data(flag)).data)

    @extend_schema(parameters=[REASON_PARAMETER], responses={204: None})
    def delete(self, request: Request, key: str) -> Response:
        reason = delete_reason(request)
        gate.remove_gate_policy(flag=get_flag(key), actor=actor_for_request(request), reason=reason)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GateEvaluateView(APIView):
    """Judge a version on the policy's eval set version, against what `environment` serves."""

    @extend_schema(
        request=EvaluateSerializer,
        responses={
            201: VerdictSerializer,
            **refusals(
                Refusal(
                    409,
                    "run_required",
                    "The gate needs a finished run of v8 on support-golden v3.",
                    extra={"missing": ["a finished run of v8 on support-golden v3"]},
                )
            ),
        },
    )
    def post(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = validated_body(EvaluateSerializer, request)
        environment = get_environment(data["environment"]) if data["environment"] else None
        verdict = gate.evaluate_gate(
            flag=flag,
            version=get_version(flag, data["version"]),
            environment=environment,
            actor=actor_for_request(request),
        )
        return Response(VerdictSerializer(verdict_data(verdict)).data, status=status.HTTP_201_CREATED)


class GateOverrideView(APIView):
    """An Approver lets a failed verdict through, with a reason that the audit log keeps."""

    required_scopes = {"POST": Scope.APPROVE}

    @extend_schema(
        request=OverrideInputSerializer,
        responses={
            200: VerdictSerializer,
            **refusals(Refusal(409, "verdict_passed", "The verdict passed; there is nothing to override.")),
        },
        examples=[
            response_example(
                "overridden",
                {
                    **examples.VERDICT,
                    "passed": False,
                    "admitted": True,
                    "override": {
                        "by": "lead@acme.example",
                        "reason": OVERRIDE_REASON,
                        "at": "2026-12-04T15:30:00Z",
                    },
                },
            )
        ],
    )
    def post(self, request: Request, key: str, verdict_id: int) -> Response:
        flag = get_flag(key)
        data = validated_body(OverrideInputSerializer, request)
        verdict = GateVerdict.objects.filter(pk=verdict_id, config_version__flag=flag).first()
        if verdict is None:
            raise NotFound(f"Flag '{flag.key}' has no gate verdict {verdict_id}.")
        verdict = gate.override_verdict(
            verdict=verdict, reason=data["reason"], actor=actor_for_request(request)
        )
        return Response(VerdictSerializer(verdict_data(verdict)).data)
