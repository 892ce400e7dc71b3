"""Rollout pages, read-only: the list, and a rollout with its stages, policy and decisions."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse

from controlplane.web import HtmxHttpRequest, render_page
from rollouts.lookups import get_rollout
from rollouts.models import Rollout
from rollouts.rehearsal_reads import rehearsal_panel
from rollouts.scheduled_reads import scheduled_for
from rollouts.views.checklist import checklist_context

PAGE_SIZE = 50


@login_required
def rollout_list(request: HtmxHttpRequest) -> HttpResponse:
    found = Rollout.objects.select_related("flag", "environment", "baseline", "candidate")
    if flag := request.GET.get("flag", "").strip():
        found = found.filter(flag__key=flag)
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    return render_page(request, "rollouts/rollouts.html", {"page": page, "flag": flag})


@login_required
def rollout_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    rollout = get_rollout(pk)
    decisions = rollout.decisions.select_related("stage").order_by("-tick")
    context = {
        "rollout": rollout,
        "stages": rollout.stages.order_by("index"),
        "policy": rollout.guardrails.order_by("id"),
        "page": Paginator(decisions, PAGE_SIZE).get_page(request.GET.get("page")),
        "checklist": checklist_context(request, rollout),
        "rehearsals": rehearsal_panel(flag=rollout.flag, environment=rollout.environment),
        "scheduled": scheduled_for(rollout.flag, rollout.environment),
    }
    return render_page(request, "rollouts/rollout.html", context)
