"""Telemetry dashboards: every flag at a glance, and one flag by version and arm."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.utils import timezone

from controlplane.models import Scope
from controlplane.web import HtmxHttpRequest, render_page, require_scope
from flags.lookups import get_environment, get_flag
from flags.models import Environment
from telemetry import comparison, dashboards


def _filters(request: HtmxHttpRequest) -> tuple[dashboards.Window, Environment | None]:
    window = dashboards.Window.ending(timezone.now(), request.GET.get("range"))
    key = request.GET.get("environment")
    return window, get_environment(key) if key else None


def _choices(window: dashboards.Window, environment: Environment | None) -> dict[str, object]:
    return {
        "ranges": list(dashboards.RANGES),
        "environments": Environment.objects.by_key(),
        "window": window,
        "environment": environment,
    }


@login_required
def overview(request: HtmxHttpRequest) -> HttpResponse:
    require_scope(request, Scope.READ)
    window, environment = _filters(request)
    context = {"rows": dashboards.overview(window, environment), **_choices(window, environment)}
    return render_page(request, "telemetry/overview.html", context)


@login_required
def flag_dashboard(request: HtmxHttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.READ)
    flag = get_flag(key)
    window, environment = _filters(request)
    dashboard = dashboards.flag_dashboard(flag, window, environment)
    context = {
        "dashboard": dashboard,
        "calls_series": comparison.calls_series(dashboard.rollups, window),
        "series_step": "minute" if comparison.step_of(window).total_seconds() == 60 else "hour",
        "comparison": comparison.candidate_vs_control(dashboard.arms, dashboard.budgets),
        "arms_explained": comparison.ARMS_EXPLAINED,
        **_choices(window, environment),
    }
    return render_page(request, "telemetry/flag.html", context)
