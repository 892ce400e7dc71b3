"""The pagination of every API list: `?limit=` and `?offset=`, bounded, and refused when wrong.

DRF's LimitOffsetPagination ignores a malformed value and passes any integer on to the database;
a limit past 2^63 then fails there (500), and a huge one reads a whole table into one response.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

from controlplane.errors import InvalidInput

# The largest offset a database takes (a signed 64-bit integer).
MAX_OFFSET = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def _bounded_int(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if _DIGITS.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise InvalidInput(
            f"The '{name}' query parameter must be a whole number from {low} to {high}.",
            code="invalid_pagination",
            errors=[{"path": name, "message": f"Must be a whole number from {low} to {high}."}],
        )
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    @property
    def max_limit(self) -> int:  # type: ignore[override]  # read per request, so tests can change it
        return int(settings.FLAGSTAFF_API_MAX_LIMIT)

    def get_limit(self, request: Request) -> int:
        return _bounded_int(
            request,
            self.limit_query_param,
            default=min(self.default_limit or self.max_limit, self.max_limit),
            low=1,
            high=self.max_limit,
        )

    def get_offset(self, request: Request) -> int:
        return _bounded_int(request, self.offset_query_param, default=0, low=0, high=MAX_OFFSET)

    def get_paginated_response_schema(self, schema: Any) -> dict[str, Any]:
        """DRF's page schema, with the example values of a page that holds every result (the
        docs wrap each listed example in it: controlplane.api_docs)."""
        page: dict[str, Any] = super().get_paginated_response_schema(schema)
        examples = {"count": 1, "next": None, "previous": None}
        for name, value in examples.items():
            page["properties"][name]["example"] = value
        return page

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit},
            self.offset_query_param: {"minimum": 0, "maximum": MAX_OFFSET},
        }
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters
