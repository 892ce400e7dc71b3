"""What drf-spectacular cannot infer about our API: how its callers authenticate.

Imported by `ControlPlaneConfig.ready()`; drf-spectacular finds the extensions by subclass.
The scheme names are OFREP's own (`BearerAuth`, `ApiKeyAuth`), so one token description
serves both our API and the OFREP routes.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """An API token, as `Authorization: Bearer <token>` or as `X-API-Key: <token>`
    (`controlplane.auth.secret_from_headers`). Either one is enough."""

    target_class = "controlplane.auth.ApiTokenAuthentication"
    name = ["BearerAuth", "ApiKeyAuth"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        return [{"BearerAuth": []}, {"ApiKeyAuth": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token (made on the API tokens page): `Authorization: Bearer <token>`.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "The same API token, for clients that cannot set Authorization.",
            },
        ]


class ServingTokenScheme(ApiTokenScheme):
    """The same token on the serving routes, checked through a per-process cache. The schemes
    are `ApiTokenScheme`'s: drf-spectacular ties a scheme's name to one authentication class,
    so this one only refers to them."""

    target_class = "flags.serving_auth.CachedTokenAuthentication"
    name = []

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return []


class StreamTicketScheme(OpenApiAuthenticationExtension):
    """`?ticket=` on the change stream, for EventSource clients that cannot send headers."""

    target_class = "flags.serving_auth.StreamTicketAuthentication"
    name = "StreamTicket"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "query",
            "name": "ticket",
            "description": "A signed ticket for one environment's stream, from the "
            "`eventStreams` of an OFREP bulk evaluation: it opens one stream, within "
            "FLAGSTAFF_STREAM_TICKET_SECONDS of being issued.",
        }
