"""Experiment pages: the list (what moves traffic now, live) with the form that creates one, and
an experiment with its arms side by side as cards (stacked on a phone; the cheapest arm that
passes marked), its policy, goals and decision log, live while it runs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, render_page, require_scope, ui_actor
from rollouts.experiment_reads import arms_of
from rollouts.forms import ExperimentForm
from rollouts.lookups import get_experiment
from rollouts.models import Experiment, ExperimentDecision
from rollouts.services import experiments
from rollouts.status import experiment_health
from rollouts.views.checklist import checklist_context
from rollouts.views.controls import controls_context
from rollouts.views.rollouts import POLL_SECONDS, list_page, page_is_stale, poll_url, refused_without_reason

PAGE_SIZE = 50
LIVE_BLOCK = "experiment_live"  # the template block a poll of the experiment page renders


def _experiments() -> QuerySet[Experiment]:
    return Experiment.objects.select_related("flag", "environment", "baseline")


@login_required
def experiment_list(request: HtmxHttpRequest) -> HttpResponse:
    can_write = Scope.WRITE in scopes_for_user(request.user)
    form = ExperimentForm(initial={"flag": request.GET.get("flag", "").strip()}) if can_write else None
    return list_page(request, "rollouts/experiments.html", _experiments(), form=form)


@login_required
@require_POST
def experiment_create(request: HtmxHttpRequest) -> HttpResponse:
    """A new experiment, a draft: its page shows the checklist and the Start button."""
    require_scope(request, Scope.WRITE)
    form = ExperimentForm(request.POST)
    if form.is_valid() and not refused_without_reason(form, "create this experiment"):
        try:
            experiment = experiments.create_experiment(actor=ui_actor(request), **form.service_arguments())
        except DomainError as error:
            form.add_refusal(error)
        else:
            messages.success(
                request,
                f"Experiment #{experiment.pk} created: a draft. Check its deploy checklist, then start it.",
            )
            return redirect("rollouts:experiment", pk=experiment.pk)
    response = list_page(request, "rollouts/experiments.html", _experiments(), form=form)
    response.status_code = 400
    return response


def _arm_columns(experiment: Experiment, decision: ExperimentDecision | None) -> list[dict[str, Any]]:
    """One column per arm: what it serves, and from the latest decision its units, cost per call,
    verdict and each guardrail's bounds of the difference with the baseline."""
    verdicts = {item["arm"]: item for item in (decision.arms if decision else [])}
    counters = decision.inputs.get("counters", {}) if decision else {}
    columns = []
    for arm in arms_of(experiment):
        totals = counters.get(arm.name, {})
        known = totals.get("calls", 0) - totals.get("cost_unknown_calls", 0)
        verdict = verdicts.get(arm.name, {})
        columns.append(
            {
                "arm": arm,
                "percent": f"{arm.weight / 100:g} %",
                "units": totals.get("calls"),
                "cost_per_call": totals.get("cost_micro_usd", 0) / 1_000_000 / known if known > 0 else None,
                "verdict": verdict,
                "bounds": _bounds(experiment.guardrails, verdict.get("comparisons", {})),
                "cheapest": bool(decision and decision.cheapest_passing == arm.name),
            }
        )
    return columns


def _bounds(policy: list[dict[str, Any]], comparisons: dict[str, Any]) -> list[tuple[str, str]]:
    """Per guardrail: the arm's difference with the baseline and its bounds, in words."""
    cells = []
    for guardrail in policy:
        found = comparisons.get(guardrail["name"])
        cells.append(
            (
                guardrail["label"],
                "—"
                if not found or found.get("difference") is None
                else f"{found['difference']:.4g} "
                f"[{_bound(found.get('lower'))}, {_bound(found.get('upper'))}]",
            )
        )
    return cells


def _duration(seconds: int) -> str:
    for unit, size in (("days", 86_400), ("hours", 3_600), ("minutes", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit if count != 1 else unit[:-1]}"
    return f"{seconds} seconds"


def _bound(value: float | None) -> str:
    return "∞" if value is None else f"{value:.4g}"


@login_required
def experiment_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    experiment = get_experiment(pk)
    decisions = experiment.decisions.order_by("-tick")
    latest = decisions.first()
    columns = _arm_columns(experiment, latest)
    context = {
        "experiment": experiment,
        "window": _duration(experiment.window_seconds or 0),
        "columns": columns,
        "latest": latest,
        "health": experiment_health(
            experiment.state, experiment.pause_reason, latest.action if latest else None
        ),
        "poll_seconds": POLL_SECONDS if experiment.is_active else None,
        "poll_url": poll_url(request),
        "seen": experiment.state,
        "policy": experiment.guardrails,
        "goals": experiment.goals,
        "page": Paginator(decisions, PAGE_SIZE).get_page(request.GET.get("page")),
    }
    # A poll renders the live part alone: the checklist's board and the controls are left out.
    if request.htmx and request.htmx.target == LIVE_BLOCK:
        if page_is_stale(request, context["seen"]):
            return HttpResponseClientRefresh()
    else:
        context["checklist"] = checklist_context(request, experiment)
        context["controls"] = controls_context(request, experiment)
    return render_page(request, "rollouts/experiment.html", context)
