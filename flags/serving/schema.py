"""What drf-spectacular cannot infer about the serving routes' authentication.

Imported by `FlagsConfig.ready()`; drf-spectacular finds the extensions by subclass.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from controlplane.schema import ApiTokenScheme


class ServingTokenScheme(ApiTokenScheme):
    """The same token on the serving routes, checked through a per-process cache. The schemes
    are `ApiTokenScheme`'s: drf-spectacular ties a scheme's name to one authentication class,
    so this one only refers to them."""

    target_class = "flags.serving.auth.CachedTokenAuthentication"
    name = []

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return []


class StreamTicketScheme(OpenApiAuthenticationExtension):
    """`?ticket=` on the change stream, for EventSource clients that cannot send headers."""

    target_class = "flags.serving.auth.StreamTicketAuthentication"
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
