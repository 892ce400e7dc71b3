"""Request input the API views of every app read: a serializer-validated body, a DELETE's
reason and whole-number query parameters."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.request import Request

from controlplane.errors import InvalidInput
from controlplane.serializers import ReasonSerializer


def validated_body(serializer_class: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# OpenAPI gives DELETE no request body, and some clients send none: a DELETE takes its reason
# (required in a protected environment) from the query string, or from a JSON body.
REASON_PARAMETER = OpenApiParameter(
    "reason", str, description="Why; required in a protected environment (400 reason_required without it)"
)


def delete_reason(request: Request) -> str:
    reason: str = validated_body(ReasonSerializer, request)["reason"] or request.query_params.get(
        "reason", ""
    )
    return reason


def int_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        raise InvalidInput(
            f"The '{name}' query parameter is required.", errors=[{"path": name, "message": "Required."}]
        )
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(
            f"The '{name}' query parameter must be a version number.",
            errors=[{"path": name, "message": "Must be a whole number."}],
        ) from None
    if value < 1:
        raise InvalidInput(
            f"'{name}' must be 1 or more.", errors=[{"path": name, "message": "Must be 1 or more."}]
        )
    return value
