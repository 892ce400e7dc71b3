"""A rollout's paired replay settings, changed from its page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.web import HtmxHttpRequest, require_scope, ui_actor
from rollouts.forms import ReplayPolicyForm
from rollouts.lookups import get_rollout
from rollouts.services.paired_replay import set_replay_policy


@login_required
@require_POST
def rollout_paired_replay(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    rollout = get_rollout(pk)
    form = ReplayPolicyForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "Paired replay not changed: "
            + "; ".join(
                f"{name}: {' '.join(str(error) for error in errors)}" for name, errors in form.errors.items()
            ),
        )
        return redirect("rollouts:detail", pk=rollout.pk)
    try:
        set_replay_policy(rollout=rollout, actor=ui_actor(request), **form.service_arguments())
    except DomainError as error:
        messages.error(request, f"Paired replay not changed: {error.detail}")
    else:
        messages.success(request, "Paired replay settings saved.")
    return redirect("rollouts:detail", pk=rollout.pk)
