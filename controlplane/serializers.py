"""Serializer base classes shared by every app's API."""

from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from controlplane.api_docs import request_example


class StrictSerializer(serializers.Serializer[Any]):
    """An input serializer that rejects fields it does not know instead of dropping them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({field: ["Unknown field."] for field in unknown})
        return super().to_internal_value(data)


# Subclasses inherit this example: one that adds a required field must name its own.
@extend_schema_serializer(
    examples=[
        request_example("with a reason", {"reason": "Latency incident INC-2291: back to the last good state"})
    ]
)
class ReasonSerializer(StrictSerializer):
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="Why, for the audit entry; required for a change to a protected environment",
    )
