"""Scheduled changes: the list (filtered by flag, environment and state), scheduling one, and
cancelling one that is still pending."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError, NotFound
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, add_domain_error, render_page, require_scope, ui_actor
from rollouts.forms import ScheduleForm
from rollouts.models import ScheduledChange, ScheduledChangeState
from rollouts.services import scheduling

PAGE_SIZE = 50


@login_required
def scheduled_list(request: HtmxHttpRequest) -> HttpResponse:
    filters = {name: request.GET.get(name, "").strip() for name in ("flag", "environment", "state")}
    form = ScheduleForm(request.POST or None, initial={k: v for k, v in filters.items() if k != "state"})
    status = 200
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                change = scheduling.schedule_change(actor=ui_actor(request), **form.service_arguments())
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(
                    request, f"Scheduled: {change.describe()} at {change.run_at:%Y-%m-%d %H:%M} UTC."
                )
                return redirect(f"{reverse('rollouts:scheduled')}?flag={change.flag.key}#change-{change.pk}")
        status = 400
    changes = ScheduledChange.objects.select_related("flag", "environment")
    lookups = {
        "flag__key": filters["flag"],
        "environment__key": filters["environment"],
        "state": filters["state"],
    }
    changes = changes.filter(**{name: value for name, value in lookups.items() if value})
    context = {
        "form": form,
        "filters": filters,
        "states": ScheduledChangeState.choices,
        "page": Paginator(changes, PAGE_SIZE).get_page(request.GET.get("page")),
        "can_write": Scope.WRITE in scopes_for_user(request.user),
        "now": timezone.now(),
    }
    response = render_page(request, "rollouts/scheduled.html", context)
    response.status_code = status
    return response


@login_required
@require_POST
def scheduled_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    change = ScheduledChange.objects.select_related("flag", "environment").filter(pk=pk).first()
    if change is None:
        raise NotFound(f"No scheduled change {pk}.")
    try:
        scheduling.cancel_scheduled_change(
            change=change, actor=ui_actor(request), reason=request.POST.get("reason", "").strip()
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Cancelled: {change.describe()}. Nothing will change at that time.")
    return redirect(request.POST.get("next") or f"{reverse('rollouts:scheduled')}?flag={change.flag.key}")
