"""REST API of the deploy checklist: a rollout's or an experiment's checklist, attesting and
waiving its items, and each environment's policy of required items.

Reading needs `read`; attesting needs `write` (an Editor vouches for what no data shows);
waiving needs `approve` (an Approver lets a red item go, with a reason); a policy is an Admin's.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags.lookups import get_environment
from flags.models import Environment
from rollouts.api import examples
from rollouts.checklist import ITEMS, board_of, required_items
from rollouts.lookups import get_experiment, get_rollout
from rollouts.models import ChecklistPolicy, ChecklistSignoff, Experiment, Rollout
from rollouts.services import checklist as services


class SignoffNoteSerializer(serializers.Serializer[Any]):
    by = serializers.CharField()
    at = serializers.DateTimeField()
    note = serializers.CharField()


@extend_schema_serializer(examples=[response_example("waived by an Approver", examples.CHECKLIST_ROW)])
class ChecklistRowSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    # Declared fields shadow Field attributes only in the type stubs (see flags/api/versions.py).
    label = serializers.CharField()  # type: ignore[assignment]
    kind = serializers.ChoiceField(choices=["computed", "attested"])
    required = serializers.BooleanField(  # type: ignore[assignment]
        help_text="Whether the environment's policy requires it"
    )
    state = serializers.ChoiceField(
        choices=["pass", "fail", "not_applicable", "attested", "unattested", "waived"]
    )
    green = serializers.BooleanField()
    detail = serializers.CharField(help_text="Why, in words")
    attestation = SignoffNoteSerializer(allow_null=True)
    waiver = SignoffNoteSerializer(allow_null=True)


@extend_schema_serializer(examples=[response_example("one item red", examples.CHECKLIST)])
class ChecklistSerializer(serializers.Serializer[Any]):
    environment = serializers.CharField()
    ready = serializers.BooleanField(help_text="Every required item green or waived: a start may go ahead")
    red = serializers.ListField(
        child=serializers.CharField(), help_text="The required items that block a start"
    )
    policy = serializers.ChoiceField(choices=["default", "environment"])
    checked_at = serializers.DateTimeField()
    items = ChecklistRowSerializer(many=True)


@extend_schema_serializer(examples=[response_example("attested", examples.SIGNOFF)])
class SignoffSerializer(serializers.ModelSerializer[ChecklistSignoff]):
    by = serializers.CharField(source="actor_name")
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = ChecklistSignoff
        fields = ["item", "kind", "note", "by", "at"]


@extend_schema_serializer(
    examples=[
        request_example("attest", {"note": "Reviewed the tool list with the owner: no destructive tools"})
    ]
)
class AttestSerializer(StrictSerializer):
    note = serializers.CharField(
        max_length=2000, help_text="What was checked; shown with your name and the time"
    )


@extend_schema_serializer(
    examples=[request_example("waive", {"reason": "Haiku ignores effort; CHG-4471 accepts the default"})]
)
class WaiveSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, help_text="Why this item may stay red; shown for good")


COMPUTED = Refusal(
    400,
    "item_computed",
    "'Effort set explicitly' is computed from the data and cannot be attested: fix what it reports, "
    "or ask an Approver to waive it with a reason.",
    errors=(("item", "a computed item"),),
)
ENDED = Refusal(
    409,
    "checklist_closed",
    "The rollout 12 has ended (rolled back); its checklist is kept as it was.",
    extra={"state": "rolled_back"},
)


class _SubjectView(APIView):
    """A checklist view of a rollout (`kind = "rollout"`) or of an experiment."""

    kind = "rollout"

    def subject(self, pk: int) -> Rollout | Experiment:
        return get_rollout(pk) if self.kind == "rollout" else get_experiment(pk)

    def board(self, subject: Rollout | Experiment) -> dict[str, Any]:
        return dict(ChecklistSerializer(board_of(subject).as_dict()).data)


class ChecklistView(_SubjectView):
    """Every item with its state, who attested or waived it and when, and what blocks a start."""

    required_scopes = {"GET": Scope.READ}

    @extend_schema(responses=ChecklistSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.board(self.subject(pk)))


class AttestView(_SubjectView):
    """Vouch for an item no data can show, with a note."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(request=AttestSerializer, responses={200: SignoffSerializer, **refusals(COMPUTED, ENDED)})
    def post(self, request: Request, pk: int, item: str) -> Response:
        data = validated_body(AttestSerializer, request)
        signoff = services.attest_item(
            subject=self.subject(pk), item=item, note=data["note"], actor=actor_for_request(request)
        )
        return Response(SignoffSerializer(signoff).data)


class WaiveView(_SubjectView):
    """Let a start go ahead without one item, saying why (an Approver's call, shown for good)."""

    required_scopes = {"POST": Scope.APPROVE}

    @extend_schema(
        request=WaiveSerializer,
        responses={
            200: SignoffSerializer,
            **refusals(
                Refusal(
                    400,
                    "reason_required",
                    "A waiver needs a reason: say why this item may stay red.",
                    errors=(("reason", "Required."),),
                ),
                ENDED,
            ),
        },
    )
    def post(self, request: Request, pk: int, item: str) -> Response:
        data = validated_body(WaiveSerializer, request)
        signoff = services.waive_item(
            subject=self.subject(pk), item=item, reason=data["reason"], actor=actor_for_request(request)
        )
        return Response(SignoffSerializer(signoff).data)


class ExperimentChecklistView(ChecklistView):
    kind = "experiment"


class ExperimentAttestView(AttestView):
    kind = "experiment"


class ExperimentWaiveView(WaiveView):
    kind = "experiment"


# Policies


@extend_schema_serializer(examples=[response_example("production, edited", examples.CHECKLIST_POLICY)])
class PolicySerializer(serializers.Serializer[Any]):
    environment = serializers.CharField()
    default = serializers.BooleanField(help_text="True: no policy was set, the default holds")
    required = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    updated_by_name = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField(allow_null=True)
    items = serializers.ListField(child=serializers.DictField(), help_text="Every item: key, label, kind")


@extend_schema_serializer(
    examples=[
        request_example(
            "computed items and tools",
            {
                "required": ["eval_gate", "streaming", "request_ids", "tools_deliberate"],
                "reason": "Staging carries a partner's traffic from Monday (OPS-311)",
            },
        )
    ]
)
class PolicyInputSerializer(ReasonSerializer):
    required = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(max_length=64), max_length=100
    )


class EnvironmentPolicySerializer(PolicySerializer):
    """An environment, answered as its checklist policy."""

    def to_representation(self, instance: Any) -> Any:
        environment: Environment = instance
        required, is_default = required_items(environment)
        row = ChecklistPolicy.objects.filter(environment=environment).first()
        return super().to_representation(
            {
                "environment": environment.key,
                "default": is_default,
                "required": required,
                "updated_by_name": row.updated_by_name if row else "",
                "updated_at": row.updated_at if row else None,
                "items": [{"key": i.key, "label": i.label, "kind": i.kind.value} for i in ITEMS.values()],
            }
        )


def policy_data(environment: Environment) -> dict[str, Any]:
    return dict(EnvironmentPolicySerializer(environment).data)


class PoliciesView(ListAPIView[Environment]):
    """Every environment's checklist policy."""

    serializer_class = EnvironmentPolicySerializer
    required_scopes = {"GET": Scope.READ}

    def get_queryset(self) -> QuerySet[Environment]:
        return Environment.objects.by_key()


class PolicyView(APIView):
    """Which items an environment requires before a start; an Admin edits it."""

    required_scopes = {"GET": Scope.READ, "PUT": Scope.ADMIN}
    environment_url_kwarg = "env"

    @extend_schema(responses=PolicySerializer)
    def get(self, request: Request, env: str) -> Response:
        return Response(policy_data(get_environment(env)))

    @extend_schema(request=PolicyInputSerializer, responses=PolicySerializer)
    def put(self, request: Request, env: str) -> Response:
        environment = get_environment(env)
        data = validated_body(PolicyInputSerializer, request)
        services.set_checklist_policy(
            environment=environment,
            required=data["required"],
            actor=actor_for_request(request),
            reason=data["reason"],
        )
        return Response(policy_data(environment))
