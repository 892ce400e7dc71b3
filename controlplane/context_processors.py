from typing import Any

from django.http import HttpRequest
from django.urls import reverse

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


# A menu item is also current on these other pages of its section (the Evals menu's runs and judges
# live under their own paths).
SECTION_PATHS = {"evals:list": ("/eval-runs/", "/judges/")}


def _current(url: str, url_name: str, path: str) -> bool:
    return path.startswith(url) or any(path.startswith(part) for part in SECTION_PATHS.get(url_name, ()))


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    role = role_for_user(user) if user is not None else None
    scopes = ROLE_SCOPES[role] if role else frozenset()
    return {
        "navigation": [
            (label, url, _current(url, url_name, request.path))
            for label, url_name, scope in NAVIGATION
            if scope in scopes
            for url in (reverse(url_name),)
        ],
        "user_role": role,
    }
