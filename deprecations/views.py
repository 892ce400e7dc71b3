"""The deprecations page: each watched model with its runway, exposures and usage by API key."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.utils import timezone

from controlplane.web import HtmxHttpRequest, render_page
from deprecations.exposures import USAGE_WINDOW_DAYS, runway
from deprecations.pinning import unpinned_in_production


@login_required
def deprecations(request: HtmxHttpRequest) -> HttpResponse:
    today = timezone.now().date()
    context = {
        "watched": runway(today=today),
        "unpinned": unpinned_in_production(),
        "today": today,
        "usage_window_days": USAGE_WINDOW_DAYS,
    }
    return render_page(request, "deprecations/deprecations.html", context)
