from typing import Any

from django.http import HttpRequest

from controlplane.roles import role_for_user

NAVIGATION = (
    ("Flags", "flags:list"),
    ("Segments", "flags:segments"),
    ("Models", "flags:models"),
    ("Telemetry", "telemetry:overview"),
    ("Incidents", "incidents:list"),
    ("Usage & cost", "usage:status"),
    ("Audit", "core:audit"),
    ("Tokens", "core:tokens"),
    ("API docs", "api:docs"),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "navigation": NAVIGATION,
        "user_role": role_for_user(user) if user is not None else None,
    }
