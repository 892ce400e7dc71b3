"""Live scores of a flag: pass rate per version and arm and scorer, and the judge budget today."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from controlplane.models import Scope
from controlplane.views import HtmxHttpRequest, require_scope
from evals.live_scores import live_scores
from flags.lookups import get_flag

WINDOW = timedelta(hours=24)


@login_required
def flag_live_scores(request: HtmxHttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.READ)
    flag = get_flag(key)
    context = {"flag": flag, "live": live_scores(flag, since=timezone.now() - WINDOW)}
    template = "evals/_live_scores.html" if request.htmx else "evals/live_scores.html"
    return render(request, template, context)
