"""REST API of the deprecation watch: each watched model with its runway and exposures."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api_docs import response_example
from controlplane.errors import InvalidInput
from controlplane.models import Scope
from deprecations.exposures import PLACES, runway
from deprecations.runway import SEVERITIES
from flags.catalog import current_catalog

EXPOSURE = {
    "model": "claude-sonnet-4-5-20250929",
    "used_as": "claude-sonnet-4-5",
    "place": "serving",
    "place_label": "serving version",
    "flag": "support-chat",
    "surface": "chat",
    "environment": "production",
    "version": 7,
    "path": "model",
    "detail": "served to everyone not matched by a rule or split",
    "live": True,
}
USAGE = {
    "model": "claude-sonnet-4-5-20250929",
    "used_as": "claude-sonnet-4-5-20250929",
    "api_key_id": "apikey_01Rj2N8SVvo6BePZj99NhmiT",
    "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ",
    "input_tokens": 48210311,
    "output_tokens": 3120448,
    "last_used_at": "2026-12-05T13:00:00Z",
    "in_flags": True,
}
WATCHED_MODEL = {
    "model": "claude-sonnet-4-5-20250929",
    "display_name": "Claude Sonnet 4.5",
    "lifecycle": "deprecated",
    "legacy": False,
    "deprecated_at": None,
    "retires_at": "2026-12-17",
    "replacement": "claude-sonnet-5-5",
    "days_left": 12,
    "threshold_days": 14,
    "severity": "medium",
    "runway": "retires in 12 days (2026-12-17)",
    "exposures": [
        EXPOSURE,
        {
            **EXPOSURE,
            "place": "rollout",
            "place_label": "rollout candidate",
            "environment": "staging",
            "version": 8,
            "path": "subagents[0].config.model",
            "detail": "rollout #31 (running)",
        },
    ],
    "usage": [USAGE],
    "outside_flags": False,
}


class ExposureSerializer(serializers.Serializer[Any]):
    model = serializers.CharField(help_text="The catalog's id of the model")
    used_as = serializers.CharField(help_text="The id the config names: the model's id or an alias")
    place = serializers.ChoiceField(choices=list(PLACES), help_text="Where the version is reached from")
    place_label = serializers.CharField()
    flag = serializers.CharField()
    surface = serializers.CharField()
    environment = serializers.CharField(allow_null=True, help_text="Null for an eval set's judge")
    version = serializers.IntegerField()
    path = serializers.CharField(help_text="Where in the config, e.g. subagents[0].config.model")
    detail = serializers.CharField()
    live = serializers.BooleanField(help_text="Reaches traffic now (only live exposures are notified)")


class UsageSerializer(serializers.Serializer[Any]):
    model = serializers.CharField()
    used_as = serializers.CharField()
    api_key_id = serializers.CharField(help_text="Empty for Console use without an API key")
    workspace_id = serializers.CharField(help_text="Empty for the default workspace")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    last_used_at = serializers.DateTimeField()
    in_flags = serializers.BooleanField(help_text="False: the model is used outside Flagstaff's flags")


@extend_schema_serializer(examples=[response_example("retiring in 12 days", WATCHED_MODEL)])
class WatchedModelSerializer(serializers.Serializer[Any]):
    model = serializers.CharField()
    display_name = serializers.CharField()
    lifecycle = serializers.ChoiceField(choices=["active", "deprecated", "retired"])
    legacy = serializers.BooleanField(help_text="Active, with a replacement named by the catalog")
    deprecated_at = serializers.DateField(allow_null=True)
    retires_at = serializers.DateField(allow_null=True)
    replacement = serializers.CharField(allow_null=True)
    days_left = serializers.IntegerField(allow_null=True, help_text="Negative once the date has passed")
    threshold_days = serializers.IntegerField(
        allow_null=True, help_text="The notification threshold reached: 60, 30, 14, 7, 1, or 0 (retired)"
    )
    severity = serializers.ChoiceField(choices=list(SEVERITIES), allow_null=True)
    runway = serializers.CharField(help_text="The runway in words")
    exposures = ExposureSerializer(many=True)
    usage = UsageSerializer(many=True, help_text="Admin API usage of the last 30 days by API key")
    outside_flags = serializers.BooleanField(help_text="Used by API keys, by no flag")


class DeprecationsView(ListAPIView[Any]):
    """Every watched model (retired, deprecated, retiring or legacy) that is used or still counts
    down to its retirement, most urgent first, with its runway, the places Flagstaff's flags
    use it and the organisation's usage by API key."""

    required_scopes = {"GET": Scope.READ}
    serializer_class = WatchedModelSerializer

    @extend_schema(parameters=[OpenApiParameter("model", str, description="A model id or alias")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> list[dict[str, Any]]:  # type: ignore[override]
        model = self.request.query_params.get("model")
        if model is not None and model not in current_catalog():
            message = f"Model '{model[:100]}' is not in the catalog."
            raise InvalidInput(message, errors=[{"path": "model", "message": message}])
        return [watched.as_dict() for watched in runway(model=model)]
