from typing import Any

from django.http import HttpRequest

from controlplane.models import ROLE_SCOPES, Scope
from controlplane.roles import role_for_user

# (label, url name, scope needed to see the page); a user sees only the pages they may open.
NAVIGATION = (
    ("Flags", "flags:list", Scope.READ),
    ("Segments", "flags:segments", Scope.READ),
    ("Models", "flags:models", Scope.READ),
    ("Telemetry", "telemetry:overview", Scope.READ),
    ("Incidents", "incidents:list", Scope.READ),
    ("Evals", "evals:list", Scope.READ),
    ("Usage & cost", "usage:status", Scope.READ),
    ("Audit", "core:audit", Scope.AUDIT),
    ("Tokens", "core:tokens", Scope.ADMIN),
    ("API docs", "api:docs", Scope.READ),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    role = role_for_user(user) if user is not None else None
    scopes = ROLE_SCOPES[role] if role else frozenset()
    return {
        "navigation": [(label, url_name) for label, url_name, scope in NAVIGATION if scope in scopes],
        "user_role": role,
    }
