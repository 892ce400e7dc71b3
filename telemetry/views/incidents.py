"""Pages for incidents, webhooks and per-flag budgets."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, add_domain_error, render_page, require_scope, ui_actor
from flags.lookups import get_flag
from telemetry import budgets as rules
from telemetry.forms import BudgetForm, ReasonForm, WebhookForm
from telemetry.models.incidents import Incident, IncidentKind, IncidentState, Webhook
from telemetry.services import webhooks
from telemetry.services.incidents import budgets_for, resolve_incident, update_flag_budgets

PAGE_SIZE = 50
STATE_FILTERS = {"open": IncidentState.OPEN, "resolved": IncidentState.RESOLVED}


@login_required
def incident_list(request: HtmxHttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    incidents = Incident.objects.newest_first().select_related("flag", "environment")
    if state in STATE_FILTERS:
        incidents = incidents.filter(state=STATE_FILTERS[state])
    if kind := request.GET.get("kind", ""):
        incidents = incidents.filter(kind=kind)
    if flag := request.GET.get("flag", "").strip():
        incidents = incidents.filter(flag__key=flag)
    page = Paginator(incidents, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "state": state, "kind": kind, "flag": flag, "kinds": IncidentKind.choices}
    return render_page(request, "telemetry/incidents.html", context)


@login_required
def incident_detail(request: HttpRequest, pk: int) -> HttpResponse:
    incident = get_object_or_404(Incident.objects.select_related("flag", "environment"), pk=pk)
    context = {
        "incident": incident,
        "can_resolve": incident.is_open and Scope.WRITE in scopes_for_user(request.user),
        "form": ReasonForm(),
        "recovery_percent": settings.FLAGSTAFF_BUDGET_RECOVERY_PERCENT,
    }
    return render(request, "telemetry/incidents_detail.html", context)


@login_required
@require_POST
def incident_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    incident = get_object_or_404(Incident, pk=pk)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        resolve_incident(incident=incident, actor=ui_actor(request), reason=reason)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Incident {incident.pk} is resolved.")
    return redirect("incidents:detail", pk=incident.pk)


@login_required
def flag_budgets(request: HttpRequest, key: str) -> HttpResponse:
    flag = get_flag(key)
    initial = {k: flag.budgets.get(k) for k in rules.BUDGET_KEYS} if flag.budgets else {}
    form = BudgetForm(request.POST or None, initial=initial, surface=flag.surface)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                update_flag_budgets(
                    flag=flag,
                    changes=form.changes(),
                    actor=ui_actor(request),
                    reason=form.cleaned_data["reason"],
                )
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Saved the budgets of '{flag.key}'.")
                return redirect("incidents:budgets", key=flag.key)
    effective = budgets_for(flag)
    context = {
        "flag": flag,
        "form": form,
        "effective": effective,
        "effective_sources": {key: effective.source(key) for key in rules.BUDGET_KEYS},
        "can_write": Scope.WRITE in scopes_for_user(request.user) and not flag.is_archived,
        "incidents": Incident.objects.filter(flag=flag).newest_first().select_related("environment")[:20],
    }
    return render(request, "telemetry/incidents_budgets.html", context)


@never_cache
@login_required
def webhook_list(request: HttpRequest) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    form = WebhookForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            webhook = webhooks.create_webhook(actor=ui_actor(request), **form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            return render(
                request, "telemetry/incidents_webhook_created.html", {"webhook": webhook}, status=201
            )
    context = {"form": form, "webhooks": Webhook.objects.all()}
    return render(request, "telemetry/incidents_webhooks.html", context)


@login_required
def webhook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    webhook = get_object_or_404(Webhook, pk=pk)
    page = Paginator(webhook.deliveries.order_by("-created_at", "-id"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "telemetry/incidents_webhook.html", {"webhook": webhook, "page": page})


@login_required
@require_POST
def webhook_set_active(request: HttpRequest, pk: int, active: bool) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    webhook = get_object_or_404(Webhook, pk=pk)
    try:
        webhooks.update_webhook(webhook=webhook, changes={"active": active}, actor=ui_actor(request))
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        state = "active again" if active else "deactivated; nothing more is sent to it"
        messages.success(request, f"Webhook '{webhook.name}' is {state}.")
    return redirect("incidents:webhook", pk=webhook.pk)
