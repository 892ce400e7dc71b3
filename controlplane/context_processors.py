"""What every page's layout needs: the navigation the user may see, and their role."""

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from controlplane.models import ROLE_SCOPES, Scope
from controlplane.roles import role_for_user


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    url_name: str
    scope: str


# The top navigation: a few groups, each a menu (or a plain link when the user may open only one
# of its pages), so it fits in one line from 1024 px up. A user sees only the pages they may open.
# A new app adds its group here, in layer order, and nowhere else.
NAVIGATION: tuple[tuple[str, tuple[NavItem, ...]], ...] = (
    (
        "Flags",
        (
            NavItem("Flags", "flags:list", Scope.READ),
            NavItem("Segments", "flags:segments", Scope.READ),
            NavItem("Models", "flags:models", Scope.READ),
            NavItem("Deprecations", "deprecations:list", Scope.READ),
            # Rollouts and experiments move a flag's traffic; a group of their own would not
            # fit the navigation's one line at 1024 px.
            NavItem("Rollouts", "rollouts:list", Scope.READ),
            NavItem("Experiments", "rollouts:experiments", Scope.READ),
            # Four eyes: the changes waiting for an Approver other than their author.
            NavItem("Approvals", "flags:approvals", Scope.READ),
            NavItem("Scheduled changes", "rollouts:scheduled", Scope.READ),
            NavItem("Model migrations", "autopilot:list", Scope.READ),
        ),
    ),
    (
        "Telemetry",
        (
            NavItem("Dashboards", "telemetry:overview", Scope.READ),
            NavItem("Incidents", "incidents:list", Scope.READ),
            NavItem("Usage & cost", "usage:status", Scope.READ),
            NavItem("Console usage", "usage:console", Scope.READ),
        ),
    ),
    (
        "Evals",
        (
            NavItem("Eval sets", "evals:list", Scope.READ),
            NavItem("Judges", "evals:judges", Scope.READ),
            NavItem("Eval runs", "evals:runs", Scope.READ),
        ),
    ),
    (
        "Audit",
        (
            NavItem("Audit log", "core:audit", Scope.AUDIT),
            NavItem("Timeline", "rollouts:timeline", Scope.AUDIT),
        ),
    ),
    (
        "Admin",
        (
            NavItem("Users", "core:users", Scope.ADMIN),
            NavItem("API tokens", "core:tokens", Scope.ADMIN),
        ),
    ),
    ("API docs", (NavItem("API docs", "api:docs", Scope.READ),)),
)


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    role = role_for_user(user) if user is not None else None
    scopes = ROLE_SCOPES[role] if role else frozenset()
    path = getattr(request, "path", "")
    groups = []
    for label, items in NAVIGATION:
        links = [
            {"label": item.label, "url": url, "active": path.startswith(url)}
            for item in items
            if item.scope in scopes
            for url in [reverse(item.url_name)]
        ]
        if links:
            groups.append({"label": label, "links": links, "active": any(link["active"] for link in links)})
    return {"navigation": groups, "user_role": role}
