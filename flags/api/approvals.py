"""REST API of four-eyes approvals: the changes waiting for an Approver, and deciding them.

A guarded verb (publish, a rollout start, a manual promote, an experiment start) in an
environment that requires approval answers 202 with the pending approval instead of making the
change; an Approver other than its author approves it here, which records the evidence shown at
that moment and applies the change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import Refusal, refusals, request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.errors import DomainError, NotFound
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags.api import examples
from flags.models import Approval, ApprovalAction, ApprovalState
from flags.services import approvals


@extend_schema_serializer(examples=[response_example("a rollout start waiting", examples.APPROVAL)])
class ApprovalSerializer(serializers.ModelSerializer[Approval]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")
    evidence = serializers.SerializerMethodField(
        help_text="Decided: what the Approver was shown. Pending: what an Approver would be shown now."
    )

    class Meta:
        model = Approval
        fields = [
            "id",
            "action",
            "flag",
            "environment",
            "subject",
            "params",
            "summary",
            "reason",
            "author_name",
            "state",
            "decided_by_name",
            "decided_at",
            "decision_reason",
            "evidence",
            "created_at",
        ]

    def get_evidence(self, approval: Approval) -> dict[str, Any]:
        if approval.state != ApprovalState.PENDING or not self.context.get("with_current_evidence"):
            return dict(approval.evidence)
        try:
            return approvals.evidence_for(approval)
        except DomainError as error:
            return {"unavailable": error.detail}


@extend_schema_serializer(
    examples=[request_example("approve", {"reason": "Checklist green, gate passed on v8; CHG-4471"})]
)
class DecideSerializer(ReasonSerializer):
    pass


@extend_schema_serializer(
    examples=[request_example("reject", {"reason": "The checklist waiver on effort needs the owner's word"})]
)
class RejectSerializer(StrictSerializer):
    reason = serializers.CharField(max_length=2000, help_text="Why; the author reads it")


OWN_CHANGE = Refusal(
    403,
    "own_change",
    "You are an author of this change (starting rollout 12 of 'support-chat' in 'production' "
    "(v7 → v8)); four eyes means another Approver approves it.",
)
DECIDED = Refusal(
    409,
    "approval_decided",
    "Approval 31 is rejected already; it cannot be approved.",
    extra={"state": "rejected"},
)


def get_approval(pk: int) -> Approval:
    approval = Approval.objects.select_related("flag", "environment").filter(pk=pk).first()
    if approval is None:
        raise NotFound(f"No approval {pk}.")
    return approval


def approval_data(approval: Approval, *, current: bool = False) -> dict[str, Any]:
    fresh = get_approval(approval.pk)
    return dict(ApprovalSerializer(fresh, context={"with_current_evidence": current}).data)


def _decide(
    request: Request, pk: int, body: type[serializers.Serializer[Any]], decide: Callable[..., Approval]
) -> Response:
    data = validated_body(body, request)
    approval = decide(approval=get_approval(pk), actor=actor_for_request(request), reason=data["reason"])
    return Response(approval_data(approval))


class ApprovalsView(ListAPIView[Approval]):
    """Changes waiting for an Approver (state=pending), or decided ones."""

    serializer_class = ApprovalSerializer
    required_scopes = {"GET": Scope.READ}

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=ApprovalState.values, description="Default: every state"),
            OpenApiParameter("action", str, enum=ApprovalAction.values),
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Approval]:
        params = self.request.query_params
        filters = {
            "state": params.get("state"),
            "action": params.get("action"),
            "flag__key": params.get("flag"),
            "environment__key": params.get("environment"),
        }
        found = Approval.objects.select_related("flag", "environment")
        return found.filter(**{name: value for name, value in filters.items() if value})


class ApprovalDetailView(APIView):
    required_scopes = {"GET": Scope.READ}

    @extend_schema(responses=ApprovalSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(approval_data(get_approval(pk), current=True))


class ApproveView(APIView):
    """Approve another person's change: its evidence is recorded, then the change is applied."""

    required_scopes = {"POST": Scope.APPROVE}

    @extend_schema(
        request=DecideSerializer, responses={200: ApprovalSerializer, **refusals(OWN_CHANGE, DECIDED)}
    )
    def post(self, request: Request, pk: int) -> Response:
        return _decide(request, pk, DecideSerializer, approvals.approve)


class RejectView(APIView):
    """Turn another person's change down, saying why."""

    required_scopes = {"POST": Scope.APPROVE}

    @extend_schema(
        request=RejectSerializer, responses={200: ApprovalSerializer, **refusals(OWN_CHANGE, DECIDED)}
    )
    def post(self, request: Request, pk: int) -> Response:
        return _decide(request, pk, RejectSerializer, approvals.reject)


class CancelView(APIView):
    """Withdraw one's own pending request."""

    required_scopes = {"POST": Scope.WRITE}

    @extend_schema(
        request=ReasonSerializer,
        responses={
            200: ApprovalSerializer,
            **refusals(Refusal(403, "not_author", "Only alice can withdraw it.")),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        return _decide(request, pk, ReasonSerializer, approvals.cancel)
