"""REST API of publishing: which version an environment serves, and enabling or disabling the flag there."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api_docs import refusals, request_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.serializers import ReasonSerializer
from flags import services
from flags.api import examples
from flags.api.approvals import ApprovalSerializer, approval_data
from flags.api.flags import FlagStateSerializer
from flags.api.scoping import EnvironmentFlagView
from flags.lookups import get_environment, get_flag
from flags.models import Approval, FlagState
from flags.services import approvals


@extend_schema_serializer(
    examples=[request_example("publish v8", {"version": 8, "reason": "v8 passed the gate; CHG-4471"})]
)
class PublishSerializer(ReasonSerializer):
    version = serializers.IntegerField(min_value=1)


class PublishView(EnvironmentFlagView):
    @extend_schema(
        request=PublishSerializer,
        responses={
            200: FlagStateSerializer,
            202: OpenApiResponse(ApprovalSerializer, description="Four eyes: waiting for an Approver"),
            **refusals(examples.REASON_REQUIRED),
        },
    )
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = validated_body(PublishSerializer, request)
        actor = actor_for_request(request)
        answer = approvals.apply_or_ask(
            actor=actor,
            call=lambda: services.publish_version(
                flag=flag, environment=environment, number=data["version"], actor=actor, reason=data["reason"]
            ),
        )
        if isinstance(answer, Approval):
            return Response(approval_data(answer), status=status.HTTP_202_ACCEPTED)
        return Response(FlagStateSerializer(_fresh_state(answer)).data)


def _fresh_state(state: FlagState) -> FlagState:
    return FlagState.objects.select_related("environment", "serving_version").get(pk=state.pk)


class EnableView(EnvironmentFlagView):
    enabled = True

    @extend_schema(
        request=ReasonSerializer,
        responses={200: FlagStateSerializer, **refusals(examples.REASON_REQUIRED)},
    )
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = validated_body(ReasonSerializer, request)
        state = services.set_flag_enabled(
            flag=flag,
            environment=environment,
            enabled=self.enabled,
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(FlagStateSerializer(_fresh_state(state)).data)


class DisableView(EnableView):
    enabled = False
