"""The Roll back button's page, and a flag's rollback rehearsals in an environment.

The flag and rollout pages link here: the page says in words what rolling back does now and
asks why, and posting it calls the one-motion service (rollouts.services.rollback).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, render_page, require_scope, ui_actor
from flags.lookups import get_environment, get_flag
from rollouts import rehearsal_reads
from rollouts.services import rehearsals
from rollouts.services.rollback import plan_rollback, roll_back


def _back_to(request: HtmxHttpRequest, key: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("flags:detail", args=[key])


@login_required
def rollback(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    flag, environment = get_flag(key), get_environment(env)
    reason, error = request.POST.get("reason", "").strip(), ""
    if request.method == "POST":
        try:
            done = roll_back(flag=flag, environment=environment, actor=ui_actor(request), reason=reason)
        except DomainError as refusal:
            error = refusal.detail
        else:
            messages.success(
                request,
                f"Rolled back: {done.summary}"
                + (f" Incident #{done.incident} is open." if done.incident else ""),
            )
            return redirect(_back_to(request, key))
    context = {
        "flag": flag,
        "environment": environment,
        "plan": plan_rollback(flag, environment),
        "reason": reason,
        "error": error,
        "next": _back_to(request, key),
    }
    return render_page(request, "rollouts/rollback.html", context)


@login_required
def rehearsal_list(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = get_flag(key), get_environment(env)
    context = {
        "flag": flag,
        "environment": environment,
        "panel": rehearsal_reads.rehearsal_panel(flag=flag, environment=environment, limit=50),
        "can_write": Scope.WRITE in scopes_for_user(request.user),
        "production": rehearsals.is_production(environment),
    }
    return render_page(request, "rollouts/rehearsals.html", context)


@login_required
@require_POST
def rehearse(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    flag, environment = get_flag(key), get_environment(env)
    try:
        rehearsal = rehearsals.request_rehearsal(
            flag=flag, environment=environment, actor=ui_actor(request), reason=request.POST.get("reason", "")
        )
    except DomainError as refusal:
        messages.error(request, refusal.detail)
    else:
        messages.success(
            request,
            f"Rehearsal {rehearsal.pk} is queued: a worker runs it within seconds; this page updates.",
        )
    return redirect(
        _back_to(request, key)
        if request.POST.get("next")
        else reverse("rollouts:rehearsals", args=[key, env])
    )


@login_required
@require_POST
def schedule(request: HtmxHttpRequest, key: str, env: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    flag, environment = get_flag(key), get_environment(env)
    try:
        days = int(request.POST.get("every_days", ""))
        rehearsals.set_rehearsal_schedule(
            flag=flag,
            environment=environment,
            interval_seconds=days * 86400,
            enabled=request.POST.get("enabled", "1") == "1",
            actor=ui_actor(request),
            reason=request.POST.get("reason", ""),
        )
    except ValueError:
        messages.error(request, "Give the interval as a whole number of days.")
    except DomainError as refusal:
        messages.error(request, refusal.detail)
    else:
        messages.success(request, f"'{flag.key}' is rehearsed in '{environment.key}' every {days} day(s).")
    return redirect("rollouts:rehearsals", key=key, env=env)
