"""REST API of a rollout's paired replay: read its settings and today's spend, change them.

Reading needs `read`; changing needs `write` (an Editor). Turning it on needs a
`paired_pass_rate` guardrail in the rollout's policy (given when the rollout is created).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.errors import NotFound
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import StrictSerializer
from rollouts.lookups import get_rollout
from rollouts.models import Rollout
from rollouts.replay_status import replay_status
from rollouts.services.paired_replay import set_replay_policy


@extend_schema_serializer(
    examples=[
        response_example(
            "on, a third of today's replay budget spent",
            {
                "enabled": True,
                "sample_rate": 0.25,
                "daily_call_budget": 200,
                "daily_budget_micro_usd": 2_000_000,
                "calls_today": 64,
                "micro_usd_today": 655_000,
                "budget_spent": False,
                "paired": 412,
                "skipped": 1_190,
                "errored": 3,
                "scorers": ["helpful"],
            },
        )
    ]
)
class ReplayStatusSerializer(serializers.Serializer[Any]):
    enabled = serializers.BooleanField()
    sample_rate = serializers.FloatField()
    daily_call_budget = serializers.IntegerField()
    daily_budget_micro_usd = serializers.IntegerField()
    calls_today = serializers.IntegerField()
    micro_usd_today = serializers.IntegerField()
    budget_spent = serializers.BooleanField(help_text="True: replays stopped until midnight UTC")
    paired = serializers.IntegerField(help_text="Control samples replayed and scored")
    skipped = serializers.IntegerField(help_text="Control samples outside the sample rate")
    errored = serializers.IntegerField(help_text="Replays that could not be paired (a 4xx, no such scorer)")
    scorers = serializers.ListField(child=serializers.CharField())


@extend_schema_serializer(
    examples=[
        request_example(
            "a quarter of the control samples, 200 replays or $2 a day",
            {
                "enabled": True,
                "sample_rate": 0.25,
                "daily_call_budget": 200,
                "daily_budget_micro_usd": 2_000_000,
                "reason": "small stage: paired evidence",
            },
        )
    ]
)
class ReplayPolicyInputSerializer(StrictSerializer):
    enabled = serializers.BooleanField()
    sample_rate = serializers.FloatField(min_value=0, max_value=1)
    daily_call_budget = serializers.IntegerField(min_value=0)
    daily_budget_micro_usd = serializers.IntegerField(min_value=0)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _status(rollout: Rollout) -> dict[str, Any]:
    status = replay_status(rollout)
    if status is None:
        raise NotFound(f"Rollout {rollout.pk} has no paired replay.", code="no_paired_replay")
    return asdict(status) | {"scorers": list(status.scorers)}


class PairedReplayView(APIView):
    required_scopes = {"GET": Scope.READ, "PUT": Scope.WRITE}

    @extend_schema(responses={200: ReplayStatusSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(_status(get_rollout(pk)))

    @extend_schema(
        request=ReplayPolicyInputSerializer,
        responses={
            200: ReplayStatusSerializer,
            **refusals(
                Refusal(
                    400,
                    "no_paired_guardrail",
                    "The rollout's policy has no paired_pass_rate guardrail: "
                    "paired replay would feed nothing.",
                )
            ),
        },
    )
    def put(self, request: Request, pk: int) -> Response:
        rollout = get_rollout(pk)
        data = validated_body(ReplayPolicyInputSerializer, request)
        set_replay_policy(rollout=rollout, actor=actor_for_request(request), **data)
        return Response(_status(rollout))
