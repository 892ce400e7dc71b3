"""The migrations page: every migration with its runway, draft, verdict, rollout and next step;
the flags still exposed with a button to draft their migration; one migration's changes."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from autopilot import reads, services
from autopilot.lookups import get_migration
from autopilot.models import Migration
from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, render_page, require_scope, ui_actor
from flags.lookups import get_environment
from flags.models import Environment
from flags.views.access import writable_flag
from flags.views.protected import confirmation, reason_of

PAGE_SIZE = 50


@login_required
def migration_list(request: HtmxHttpRequest) -> HttpResponse:
    page = Paginator(Migration.objects.for_page(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": reads.migration_rows(list(page)),
        "exposures": reads.unmigrated_exposures(),
        "settings": [
            (environment, services.setting_for(environment)) for environment in Environment.objects.all()
        ],
        "can_configure": Scope.ADMIN in scopes_for_user(request.user),
    }
    return render_page(request, "autopilot/migrations.html", context)


@login_required
def migration_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    migration = get_migration(pk)
    (row,) = reads.migration_rows([migration])
    return render_page(request, "autopilot/migration.html", {"row": row, "migration": migration})


@login_required
@require_POST
def migration_create(request: HttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    if page := confirmation(request, flag, environment, "Draft a model migration and propose its rollout"):
        return page
    try:
        migration = services.create_migration(
            flag=flag, environment=environment, actor=ui_actor(request), reason=reason_of(request)
        )
    except DomainError as error:
        messages.error(request, error.detail)
        return redirect("autopilot:list")
    messages.success(
        request,
        f"Drafted v{migration.draft_version.number} of {flag.key} on {migration.to_model}; "
        "its eval gate is running.",
    )
    return redirect("autopilot:detail", pk=migration.pk)


@login_required
@require_POST
def migration_rerun(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    migration = get_migration(pk)
    try:
        services.rerun_gate(migration=migration, actor=ui_actor(request), reason=reason_of(request))
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, "The eval gate runs again on the draft.")
    return redirect("autopilot:detail", pk=migration.pk)


@login_required
@require_POST
def setting_change(request: HttpRequest, env: str) -> HttpResponse:
    """An Admin lets the autopilot auto-start rollouts or use the Batches API in an environment."""
    require_scope(request, Scope.ADMIN)
    environment = get_environment(env)
    try:
        services.set_autopilot_setting(
            environment=environment,
            auto_start=request.POST.get("auto_start") == "on",
            use_batches=request.POST.get("use_batches") == "on",
            actor=ui_actor(request),
            reason=reason_of(request),
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Autopilot settings of '{environment.key}' saved.")
    return redirect("autopilot:list")
