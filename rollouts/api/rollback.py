"""REST API of the one-motion rollback: `POST /api/v1/flags/{key}/environments/{env}/rollback/`.

The same service as every other entry point (rollouts.services.rollback.roll_back): an
Editor's call, acted on at once, with no approval and no analysis waited on.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import StrictSerializer
from flags.api.scoping import EnvironmentFlagView
from flags.lookups import get_environment, get_flag
from rollouts.api import examples
from rollouts.services.rollback import Motion, roll_back


@extend_schema_serializer(
    examples=[request_example("with a reason", {"reason": "support tickets about wrong answers (INC-2291)"})]
)
class RollbackInputSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, help_text="Why; kept in the audit log and the incident")


@extend_schema_serializer(examples=[response_example("a running canary rolled back", examples.ROLLED_BACK)])
class RolledBackSerializer(serializers.Serializer[dict[str, object]]):
    flag = serializers.CharField()
    environment = serializers.CharField()
    motion = serializers.ChoiceField(choices=[motion.value for motion in Motion])
    summary = serializers.CharField(help_text="What was done, in words")
    serving_version = serializers.IntegerField(allow_null=True, help_text="What everyone gets now")
    rollout = serializers.IntegerField(allow_null=True)
    experiment = serializers.IntegerField(allow_null=True)
    split = serializers.CharField(allow_null=True, help_text="The split taken off traffic")
    candidate = serializers.IntegerField(allow_null=True, help_text="The version taken off traffic")
    revision_before = serializers.IntegerField()
    revision_after = serializers.IntegerField(help_text="One more than revision_before")
    incident = serializers.IntegerField(allow_null=True)
    rehearsal = serializers.BooleanField()


NOTHING_TO_ROLL_BACK = Refusal(
    409,
    "nothing_to_roll_back",
    "Nothing to roll back: 'production' serves v7 to everyone of 'support-chat', with no rollout, "
    "experiment or split on traffic, and that version did not come from a rollout's promotion. "
    "To serve another version, publish it.",
)
ROLLBACK_RACED = Refusal(
    409,
    "rollback_raced",
    "A rollout or an experiment of 'support-chat' started in 'production' while rolling back; "
    "nothing was applied. Roll back again.",
)
REASON_REQUIRED = Refusal(
    400,
    "reason_required",
    "Say why you are rolling back: the reason goes to the audit log and the incident.",
    errors=(("reason", "Required."),),
)


class RollbackView(EnvironmentFlagView):
    """Take the flag's candidate off traffic in this environment now, in one motion: a running
    canary rolled back, an experiment ended, a split cleared, or the version a rollout promoted
    replaced by the one it replaced. The revision bumps once; an incident and the
    `rollout-rolled-back` webhook follow."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(
        request=RollbackInputSerializer,
        responses={
            200: RolledBackSerializer,
            **refusals(NOTHING_TO_ROLL_BACK, ROLLBACK_RACED, REASON_REQUIRED),
        },
    )
    def post(self, request: Request, key: str, env: str) -> Response:
        flag, environment = get_flag(key), get_environment(env)
        data = validated_body(RollbackInputSerializer, request)
        done = roll_back(
            flag=flag, environment=environment, actor=actor_for_request(request), reason=data["reason"]
        )
        return Response(RolledBackSerializer(done.as_dict()).data)
