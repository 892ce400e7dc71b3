"""Reference data: the Claude model catalog with its prices, and the JSON Schema of config content."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.api_docs import response_example
from flags.api import examples
from flags.models import ClaudeModel, ModelPrice
from flags.validation import CONFIG_SCHEMA


class PriceSerializer(serializers.ModelSerializer[ModelPrice]):
    class Meta:
        model = ModelPrice
        fields = ["token_type", "tier", "context", "usd_per_mtok", "effective_from"]


@extend_schema_serializer(examples=[response_example("Claude Sonnet 5.5", examples.MODEL)])
class ModelSerializer(serializers.ModelSerializer[ClaudeModel]):
    id = serializers.CharField(source="model_id")
    prices = PriceSerializer(many=True)
    days_to_retirement = serializers.SerializerMethodField()

    class Meta:
        model = ClaudeModel
        fields = [
            "id",
            "display_name",
            "line",
            "lifecycle",
            "deprecated_at",
            "retires_at",
            "days_to_retirement",
            "replacement",
            "max_tokens",
            "context_window",
            "capabilities",
            "source",
            "synced_at",
            "prices",
        ]

    def get_days_to_retirement(self, model: ClaudeModel) -> int | None:
        if model.retires_at is None:
            return None
        return (model.retires_at - timezone.now().date()).days


class ModelsView(ListAPIView[ClaudeModel]):
    serializer_class = ModelSerializer
    queryset = ClaudeModel.objects.with_prices()
    pagination_class = None


class ConfigSchemaView(APIView):
    """The JSON Schema of config content."""

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description="A JSON Schema (draft 2020-12) document; docs/config-content.md explains each field.",
        examples=[response_example("the schema", CONFIG_SCHEMA)],
    )
    def get(self, request: Request) -> Response:
        return Response(CONFIG_SCHEMA)
