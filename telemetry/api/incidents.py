"""REST API of budgets, incidents and webhooks: thin views over the telemetry services."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import request_example, response_example
from controlplane.auth import actor_for_request
from controlplane.inputs import validated_body
from controlplane.models import Scope
from controlplane.serializers import ReasonSerializer, StrictSerializer
from flags.lookups import get_flag
from flags.models import Flag
from telemetry import budgets as rules
from telemetry.models.incidents import (
    Incident,
    IncidentKind,
    IncidentState,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from telemetry.services import webhooks
from telemetry.services.incidents import budgets_for, resolve_incident, update_flag_budgets

ADMIN_ONLY = {"GET": Scope.ADMIN, "POST": Scope.ADMIN, "PATCH": Scope.ADMIN, "DELETE": Scope.ADMIN}


# Incidents

INCIDENT = {
    "id": 57,
    "kind": "latency_budget",
    "state": "open",
    "flag": "support-chat",
    "environment": "production",
    "summary": "support-chat @ production: TTFT p95 2,612 ms over budget 2,000 ms (last 15 min)",
    "opened_at": "2026-12-05T13:47:00Z",
    "resolved_at": None,
    "evidence": {
        "window": {"start": "2026-12-05T13:32:00+00:00", "end": "2026-12-05T13:47:00+00:00", "minutes": 15},
        "surface": "chat",
        "calls": 1843,
        "errors": 4,
        "observations": {"ttft_p95_ms": 1843, "total_p95_ms": 1843},
        "min_calls": 20,
        "checks": [
            {
                "metric": "ttft_p95_ms",
                "value": 2612.0,
                "budget": 2000,
                "budget_source": "surface default",
                "breached": True,
            }
        ],
    },
    "resolution": {},
}
RESOLVED_INCIDENT = {
    **INCIDENT,
    "state": "resolved",
    "resolved_at": "2026-12-05T14:05:12Z",
    "resolution": {"resolved_by": "oncall@acme.example", "reason": "Rolled back to v7; p95 back at 1.4 s"},
}


@extend_schema_serializer(
    examples=[response_example("TTFT over budget", INCIDENT), response_example("resolved", RESOLVED_INCIDENT)]
)
class IncidentSerializer(serializers.ModelSerializer[Incident]):
    flag = serializers.CharField(source="flag.key")
    environment = serializers.CharField(source="environment.key")

    class Meta:
        model = Incident
        fields = [
            "id",
            "kind",
            "state",
            "flag",
            "environment",
            "summary",
            "opened_at",
            "resolved_at",
            "evidence",
            "resolution",
        ]


class IncidentsView(ListAPIView[Incident]):
    serializer_class = IncidentSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=IncidentState.values),
            OpenApiParameter("kind", str, enum=IncidentKind.values),
            OpenApiParameter("flag", str, description="Flag key"),
            OpenApiParameter("environment", str, description="Environment key"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Incident]:
        incidents = Incident.objects.newest_first().select_related("flag", "environment")
        params = self.request.query_params
        filters = {
            "state": params.get("state"),
            "kind": params.get("kind"),
            "flag__key": params.get("flag"),
            "environment__key": params.get("environment"),
        }
        return incidents.filter(**{name: value for name, value in filters.items() if value})


class IncidentDetailView(APIView):
    @extend_schema(responses=IncidentSerializer)
    def get(self, request: Request, pk: int) -> Response:
        incident = get_object_or_404(Incident.objects.select_related("flag", "environment"), pk=pk)
        return Response(IncidentSerializer(incident).data)


class IncidentResolveView(APIView):
    @extend_schema(request=ReasonSerializer, responses=IncidentSerializer)
    def post(self, request: Request, pk: int) -> Response:
        incident = get_object_or_404(Incident.objects.select_related("flag", "environment"), pk=pk)
        data = validated_body(ReasonSerializer, request)
        incident = resolve_incident(
            incident=incident, actor=actor_for_request(request), reason=data["reason"]
        )
        return Response(IncidentSerializer(incident).data)


# Budgets


class BudgetValuesSerializer(serializers.Serializer[Any]):
    ttft_p95_ms = serializers.IntegerField(allow_null=True)
    total_p95_ms = serializers.IntegerField(allow_null=True)
    daily_cost_usd = serializers.CharField(allow_null=True)


@extend_schema_serializer(
    examples=[
        response_example(
            "a TTFT override",
            {
                "flag": "support-chat",
                "surface": "chat",
                "overrides": {"ttft_p95_ms": 1500, "total_p95_ms": None, "daily_cost_usd": "250.00"},
                "defaults": {"ttft_p95_ms": 2000, "total_p95_ms": None, "daily_cost_usd": None},
                "effective": {"ttft_p95_ms": 1500, "total_p95_ms": None, "daily_cost_usd": "250.00"},
            },
        )
    ]
)
class FlagBudgetsSerializer(serializers.Serializer[Any]):
    flag = serializers.CharField()
    surface = serializers.CharField()
    overrides = BudgetValuesSerializer()
    defaults = BudgetValuesSerializer()
    effective = BudgetValuesSerializer()


@extend_schema_serializer(
    examples=[
        request_example(
            "tighter TTFT, a daily cap",
            {"ttft_p95_ms": 1500, "daily_cost_usd": "250.00", "reason": "Chat SLO is 1.5 s from Q1"},
        ),
        request_example("back to the default", {"ttft_p95_ms": None, "reason": "SLO review"}),
    ]
)
class FlagBudgetsUpdateSerializer(StrictSerializer):
    """Only the fields sent change; null clears an override (back to the surface default)."""

    ttft_p95_ms = serializers.IntegerField(required=False, allow_null=True)
    total_p95_ms = serializers.IntegerField(required=False, allow_null=True)
    daily_cost_usd = serializers.DecimalField(
        required=False, allow_null=True, max_digits=12, decimal_places=2, coerce_to_string=True
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _budgets_body(flag: Flag) -> dict[str, Any]:
    overrides = flag.budgets or {}
    defaults = rules.surface_defaults(flag.surface)
    return {
        "flag": flag.key,
        "surface": flag.surface,
        "overrides": {key: overrides.get(key) for key in rules.BUDGET_KEYS},
        "defaults": {**defaults, rules.DAILY_COST_USD: None},
        "effective": budgets_for(flag).as_dict(),
    }


class FlagBudgetsView(APIView):
    @extend_schema(responses=FlagBudgetsSerializer)
    def get(self, request: Request, key: str) -> Response:
        return Response(_budgets_body(get_flag(key)))

    @extend_schema(request=FlagBudgetsUpdateSerializer, responses=FlagBudgetsSerializer)
    def patch(self, request: Request, key: str) -> Response:
        flag = get_flag(key)
        data = validated_body(FlagBudgetsUpdateSerializer, request)
        reason = data.pop("reason")
        flag = update_flag_budgets(flag=flag, changes=data, actor=actor_for_request(request), reason=reason)
        return Response(_budgets_body(flag))


# Webhooks


WEBHOOK = {
    "id": 3,
    "name": "ops-pager",
    "url": "https://hooks.acme.example/flagstaff",
    "events": ["incident.opened", "incident.resolved", "rollout-rolled-back"],
    "active": True,
    "created_by_name": "oncall@acme.example",
    "created_at": "2026-11-20T09:00:00Z",
    "deactivated_at": None,
}


@extend_schema_serializer(examples=[response_example("ops pager", WEBHOOK)])
class WebhookSerializer(serializers.ModelSerializer[Webhook]):
    class Meta:
        model = Webhook
        fields = ["id", "name", "url", "events", "active", "created_by_name", "created_at", "deactivated_at"]


@extend_schema_serializer(
    examples=[response_example("created", {**WEBHOOK, "secret": "whsec_5Jb0yQm2nX8pR4tV7wZ1cE6hK9sD3fG"})]
)
class WebhookCreatedSerializer(WebhookSerializer):
    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


@extend_schema_serializer(
    examples=[
        request_example(
            "ops pager",
            {key: WEBHOOK[key] for key in ("name", "url", "events")},
            description="A secret is generated",
        )
    ]
)
class WebhookCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    url = serializers.CharField(max_length=500)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), default=list(WebhookEvent.values)
    )
    secret = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


@extend_schema_serializer(
    examples=[request_example("pause it", {"active": False, "reason": "Pager migration this weekend"})]
)
class WebhookUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    url = serializers.CharField(max_length=500, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), required=False
    )
    active = serializers.BooleanField(required=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class WebhooksView(ListAPIView[Webhook]):
    """Webhooks carry a signing secret and send data out: the admin scope only."""

    required_scopes = ADMIN_ONLY
    serializer_class = WebhookSerializer
    queryset = Webhook.objects.all()

    @extend_schema(request=WebhookCreateSerializer, responses={201: WebhookCreatedSerializer})
    def post(self, request: Request) -> Response:
        data = validated_body(WebhookCreateSerializer, request)
        webhook = webhooks.create_webhook(actor=actor_for_request(request), **data)
        # The secret is returned this once; no other response includes it.
        return Response(WebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    required_scopes = ADMIN_ONLY

    @extend_schema(responses=WebhookSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(WebhookSerializer(get_object_or_404(Webhook, pk=pk)).data)

    @extend_schema(request=WebhookUpdateSerializer, responses=WebhookSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        webhook = get_object_or_404(Webhook, pk=pk)
        data = validated_body(WebhookUpdateSerializer, request)
        reason = data.pop("reason")
        webhook = webhooks.update_webhook(
            webhook=webhook, changes=data, actor=actor_for_request(request), reason=reason
        )
        return Response(WebhookSerializer(webhook).data)

    @extend_schema(
        request=None,
        responses={200: WebhookSerializer},
        examples=[
            response_example(
                "deactivated", {**WEBHOOK, "active": False, "deactivated_at": "2026-12-05T10:00:00Z"}
            )
        ],
    )
    def delete(self, request: Request, pk: int) -> Response:
        """Deactivate (the delivery log is kept)."""
        webhook = get_object_or_404(Webhook, pk=pk)
        webhook = webhooks.deactivate_webhook(webhook=webhook, actor=actor_for_request(request))
        return Response(WebhookSerializer(webhook).data)


@extend_schema_serializer(
    examples=[
        response_example(
            "delivered on the second attempt",
            {
                "id": 912,
                "event": "incident.opened",
                "state": "delivered",
                "attempts": 2,
                "last_status": 200,
                "last_error": "",
                "created_at": "2026-12-05T13:47:01Z",
                "last_attempt_at": "2026-12-05T13:48:03Z",
                "next_attempt_at": None,
                "delivered_at": "2026-12-05T13:48:03Z",
                "payload": {
                    key: INCIDENT[key] for key in ("id", "kind", "state", "summary", "environment", "flag")
                },
            },
        )
    ]
)
class WebhookDeliverySerializer(serializers.ModelSerializer[WebhookDelivery]):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "state",
            "attempts",
            "last_status",
            "last_error",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
            "payload",
        ]


class WebhookDeliveriesView(ListAPIView[WebhookDelivery]):
    required_scopes = ADMIN_ONLY
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        webhook = get_object_or_404(Webhook, pk=self.kwargs["pk"])
        return webhook.deliveries.order_by("-created_at", "-id")
