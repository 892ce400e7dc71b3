"""Rollout pages: what is moving traffic now (live), and a rollout with its stage bar, per-arm
charts, current decision and decision log (live while it runs), and its Roll back button."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, render_page, require_scope, ui_actor
from flags.views.protected import missing_reason, reason_of
from rollouts.arm_series import rollout_arm_series
from rollouts.forms import ReplayPolicyForm, RolloutForm
from rollouts.lookups import get_rollout
from rollouts.models import RollbackRehearsal, Rollout
from rollouts.rehearsal_reads import rehearsal_panel
from rollouts.replay_status import replay_status
from rollouts.scheduled_reads import scheduled_for
from rollouts.services import lifecycle
from rollouts.services.rollback import roll_back
from rollouts.status import active_changes, last_move, rollout_health, stage_bar
from rollouts.views.checklist import checklist_context
from rollouts.views.controls import controls_context

PAGE_SIZE = 50
# How often an open page asks for the live parts again; a tick runs every minute by default.
POLL_SECONDS = 3
LIVE_BLOCK = "rollout_live"  # the template block a poll of the rollout page renders
SEEN = "seen"  # what a poll sends back: the state its page was rendered in (seen_as)


def seen_as(rollout: Rollout) -> str:
    """What a rollout page's buttons were rendered for: its state and its stage (a promotion
    moves Promote on to the next stage)."""
    return f"{rollout.state}:{rollout.stage_index}"


def page_is_stale(request: HtmxHttpRequest, seen: str) -> bool:
    """A poll from a page rendered for another state than `seen` (a rollout's seen_as, an
    experiment's state). Its live part would update, but its Controls, checklist and Roll back
    form would still offer what the old state allowed: the page reloads instead, and the
    reasons typed in it are kept (data-draft, static/js/app.js)."""
    sent = request.GET.get(SEEN)
    return sent is not None and sent != seen


def poll_url(request: HtmxHttpRequest) -> str:
    """The page's own address for its polls (the decision log's page kept), without the state
    the last poll sent: each poll adds it again."""
    query = request.GET.copy()
    query.pop(SEEN, None)
    return f"{request.path}?{query.urlencode()}" if query else request.path


def list_page(
    request: HtmxHttpRequest, template: str, found: QuerySet[Any], form: forms.Form | None = None
) -> HttpResponse:
    """A list of rollouts or experiments (`?flag=`), under what moves traffic now, and for people
    who may, the form that creates one."""
    if flag := request.GET.get("flag", "").strip():
        found = found.filter(flag__key=flag)
    context = {
        "active": active_changes(),
        "page": Paginator(found, PAGE_SIZE).get_page(request.GET.get("page")),
        "flag": flag,
        "poll_seconds": POLL_SECONDS,
        "form": form,
    }
    return render_page(request, template, context)


def refused_without_reason(form: forms.Form, doing: str) -> bool:
    """Whether a creation form's environment is protected and its reason empty, which is then
    said at the reason field."""
    refusal = missing_reason(form.cleaned_data["environment"], form.cleaned_data.get("reason", ""), doing)
    if refusal is not None:
        form.add_error("reason", refusal)
    return refusal is not None


def _rollouts() -> QuerySet[Rollout]:
    """Every rollout, a rehearsal's canary marked as such (it moves no real change)."""
    rehearsals = RollbackRehearsal.objects.filter(rollout=OuterRef("pk"))
    return Rollout.objects.select_related("flag", "environment", "baseline", "candidate").annotate(
        is_rehearsal=Exists(rehearsals)
    )


@login_required
def rollout_list(request: HtmxHttpRequest) -> HttpResponse:
    can_write = Scope.WRITE in scopes_for_user(request.user)
    form = RolloutForm(initial={"flag": request.GET.get("flag", "").strip()}) if can_write else None
    return list_page(request, "rollouts/rollouts.html", _rollouts(), form=form)


@login_required
@require_POST
def rollout_create(request: HtmxHttpRequest) -> HttpResponse:
    """A new rollout (Draft, or Ready when its gate admits it): its page shows the checklist and
    the Start button."""
    require_scope(request, Scope.WRITE)
    form = RolloutForm(request.POST)
    if form.is_valid() and not refused_without_reason(form, "create this rollout"):
        try:
            rollout = lifecycle.create_rollout(actor=ui_actor(request), **form.service_arguments())
        except DomainError as error:
            form.add_refusal(error)
        else:
            messages.success(
                request,
                f"Rollout #{rollout.pk} created: {rollout.get_state_display().lower()}. "
                "Check its deploy checklist, then start it.",
            )
            return redirect("rollouts:detail", pk=rollout.pk)
    response = list_page(request, "rollouts/rollouts.html", _rollouts(), form=form)
    response.status_code = 400
    return response


def _detail_page(request: HtmxHttpRequest, rollout: Rollout, status: int = 200) -> HttpResponse:
    decisions = rollout.decisions.select_related("stage").order_by("-tick")
    page = Paginator(decisions, PAGE_SIZE).get_page(request.GET.get("page"))
    latest = decisions.first()
    stages = list(rollout.stages.order_by("index"))
    # What the live part (`rollout_live`, polled every POLL_SECONDS) shows.
    context: dict[str, Any] = {
        "rollout": rollout,
        "stages": stages,
        "bar": stage_bar(rollout, stages),
        "health": rollout_health(
            rollout.state,
            rollout.pause_reason,
            latest.action if latest else None,
            latest.reason if latest else "",
        ),
        "latest": latest,
        # A tick that ran late (or a 1 s interval) leaves `next_tick_at` already past: the next
        # analysis is then due now, not at a time before the decision shown beside it.
        "analysis_due": rollout.next_tick_at is not None and rollout.next_tick_at <= timezone.now(),
        "last_move": last_move(rollout),
        "series": rollout_arm_series(rollout),
        "page": page,
        "can_roll_back": Scope.WRITE in scopes_for_user(request.user),
        "poll_seconds": POLL_SECONDS if rollout.is_active else None,
        "poll_url": poll_url(request),
        "seen": seen_as(rollout),
    }
    if request.htmx and request.htmx.target == LIVE_BLOCK:
        if page_is_stale(request, context["seen"]):
            return HttpResponseClientRefresh()
    else:
        context.update(_rest_of_the_page(request, rollout))
    response = render_page(request, "rollouts/rollout.html", context)
    response.status_code = status
    return response


def _rest_of_the_page(request: HtmxHttpRequest, rollout: Rollout) -> dict[str, Any]:
    """What only the whole page shows: a poll leaves these out, the checklist's board (a dozen
    computed items, some reading the day's calls) first of all."""
    replay = replay_status(rollout)
    return {
        "policy": rollout.guardrails.order_by("id"),
        "reason": request.POST.get("reason", ""),
        "checklist": checklist_context(request, rollout),
        "controls": controls_context(request, rollout),
        "rehearsals": rehearsal_panel(flag=rollout.flag, environment=rollout.environment),
        "scheduled": scheduled_for(rollout.flag, rollout.environment),
        "replay": replay,
        "replay_form": ReplayPolicyForm(
            initial={
                "enabled": replay.enabled,
                "sample_rate": replay.sample_rate,
                "daily_call_budget": replay.daily_call_budget,
                "daily_budget_usd": replay.daily_budget_micro_usd / 1_000_000,
            }
        )
        if replay
        else None,
    }


@login_required
def rollout_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _detail_page(request, get_rollout(pk))


@login_required
@require_POST
def rollout_rollback(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Take the candidate off traffic now; a protected environment asks for a reason first."""
    require_scope(request, Scope.WRITE)
    rollout = get_rollout(pk)
    reason = reason_of(request)
    refusal = missing_reason(rollout.environment, reason, "roll back")
    if refusal:
        messages.error(request, refusal)
        return _detail_page(request, rollout, status=400)
    if not rollout.is_on_traffic:
        # A Draft or Ready rollout has nothing on traffic: the flag's rollback would undo something
        # else (an earlier rollout's promotion), which is not what this page's button says.
        messages.error(
            request,
            f"Nothing to roll back: rollout #{rollout.pk} is {rollout.get_state_display().lower()}."
            + (" To give it up, abort it." if rollout.is_active else ""),
        )
        return _detail_page(request, rollout, status=409)
    try:
        done = roll_back(
            flag=rollout.flag,
            environment=rollout.environment,
            actor=ui_actor(request),
            reason=reason or "rolled back from the rollout page",
        )
    except DomainError as error:
        messages.error(request, error.detail)
        return _detail_page(request, rollout, status=error.status_code)
    messages.success(request, f"Rolled back: {done.summary}")
    return redirect("rollouts:detail", pk=rollout.pk)
