"""Core pages: health, error handlers (JSON under /api/), and the audit, token and user pages.

The helpers every HTML view uses are in controlplane.web.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from controlplane.audit import verify_chain
from controlplane.errors import DomainError, NotFound
from controlplane.forms import (
    ApiTokenForm,
    AuditFilterForm,
    AuditFilterPickerForm,
    UserActiveForm,
    UserCreateForm,
    UserRoleForm,
)
from controlplane.health import database_ok
from controlplane.models import ApiToken, AuditChainHead, AuditEntry, Role, Scope
from controlplane.services import (
    active_admins,
    create_api_token,
    create_user,
    revoke_api_token,
    role_of,
    set_user_active,
    set_user_role,
)
from controlplane.textdiff import word_diff
from controlplane.web import HtmxHttpRequest, add_domain_error, render_page, require_scope, ui_actor

AUDIT_PAGE_SIZE = 50


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    ok = database_ok()
    return JsonResponse({"status": "ok" if ok else "unavailable", "database": ok}, status=200 if ok else 503)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/ofrep/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"code": "not_found", "detail": "No such endpoint."}, status=404)
    # Only the domain's own messages are shown: a resolver's 404 would list the URL patterns.
    detail = exception.detail if isinstance(exception, NotFound) else ""
    return render(request, "404.html", {"detail": detail}, status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The 403 page names the Admins, who are the ones that can give a role."""
    if _wants_json(request):
        return JsonResponse({"code": "forbidden", "detail": str(exception or "Not allowed.")}, status=403)
    context = {"exception": str(exception or ""), "admins": active_admins()}
    return render(request, "403.html", context, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"code": "server_error", "detail": "Something went wrong on our side."}, status=500
        )
    # Rendered without the request: context processors read the session and roles from the
    # database, which may be the very thing that failed.
    return HttpResponseServerError(render_to_string("500.html"))


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _change(field: str, before: Any = "", after: Any = "") -> dict[str, Any]:
    old, new = _shown(before), _shown(after)
    old_runs, new_runs = word_diff(old, new) if old and new else ([], [])
    return {
        "field": field,
        "before": old,
        "after": new,
        "diff": True,
        "before_runs": old_runs,
        "after_runs": new_runs,
    }


def change_rows(changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Lay an entry's changes out as rows of field, before and after (or a plain value)."""
    rows = []
    for field, value in changes.items():
        if field in ("before", "after") and isinstance(value, dict):
            # A creation or a removal: the whole object on one side.
            rows += [_change(name, **{field: item}) for name, item in value.items()]
        elif isinstance(value, dict) and value.keys() == {"before", "after"}:
            rows.append(_change(field, value["before"], value["after"]))
        else:
            rows.append({"field": field, "value": _shown(value), "diff": False})
    return rows


def filtered_page(request: HttpRequest, form: AuditFilterForm) -> Page[AuditEntry]:
    """The page of entries the request asks for, of those that `form`'s filters match."""
    entries = form.apply(AuditEntry.objects.all()) if form.is_valid() else AuditEntry.objects.none()
    return Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))


@login_required
def audit(request: HtmxHttpRequest) -> HttpResponse:
    require_scope(request, Scope.AUDIT)
    form = AuditFilterPickerForm(request.GET)
    page = filtered_page(request, form)
    context = {
        "form": form,
        "page": page,
        "entries": [(entry, change_rows(entry.changes)) for entry in page],
        # A callable, so the template reads it only when it renders the chain box, never for a
        # partial refresh of the results.
        "chain_entries": _chain_entries,
    }
    return render_page(request, "controlplane/audit.html", context)


def _chain_entries() -> int:
    """How many entries the chain holds, from its head (no count over the table)."""
    return AuditChainHead.objects.values_list("entry_count", flat=True).first() or 0


@never_cache
@login_required
def audit_chain(request: HttpRequest) -> HttpResponse:
    """The chain's verdict, fetched by the audit page once it has loaded: the walk reads and
    hashes every entry, too long to hold up the page of a long log."""
    require_scope(request, Scope.AUDIT)
    return render(request, "controlplane/_chain_status.html", {"status": verify_chain()})


@never_cache
@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    form = ApiTokenForm(request.POST or None)
    if form.is_valid():
        try:
            issued = create_api_token(actor=ui_actor(request), **form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            return render(request, "controlplane/token_created.html", {"issued": issued}, status=201)
    token_list = ApiToken.objects.select_related("environment", "created_by")
    return render(request, "controlplane/tokens.html", {"form": form, "tokens": token_list})


@require_POST
@login_required
def revoke_token(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    token = get_object_or_404(ApiToken, pk=pk)
    try:
        revoke_api_token(token=token, actor=ui_actor(request))
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Token '{token.name}' is revoked; requests with it now fail.")
    return redirect("core:tokens")


def _user_rows() -> list[dict[str, Any]]:
    users = get_user_model().objects.select_related("flagstaff_role").order_by("username")
    return [{"user": user, "role": role_of(user)} for user in users]


@never_cache
@login_required
def users(request: HtmxHttpRequest) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    form = UserCreateForm(request.POST or None)
    if form.is_valid():
        try:
            created = create_user(actor=ui_actor(request), **form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            if created.password:
                return render(request, "controlplane/user_created.html", {"created": created}, status=201)
            messages.success(request, f"Created {created.user.get_username()}.")
            return redirect("core:user", pk=created.user.pk)
    return render(request, "controlplane/users.html", {"form": form, "rows": _user_rows()})


def _user_page(request: HttpRequest, pk: int, role_form: UserRoleForm | None = None) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=pk)
    role = role_of(user)
    context = {
        "subject": user,
        "role": role,
        "role_form": role_form or UserRoleForm(initial={"role": role}),
        "tokens": ApiToken.objects.filter(created_by_id=user.pk).select_related("environment"),
        "history": AuditEntry.objects.filter(target_type="auth.user", target_id=str(user.pk))[:20],
    }
    return render(request, "controlplane/user.html", context)


@never_cache
@login_required
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    return _user_page(request, pk)


@require_POST
@login_required
def user_role(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    user = get_object_or_404(get_user_model(), pk=pk)
    form = UserRoleForm(request.POST)
    if form.is_valid():
        try:
            set_user_role(user=user, actor=ui_actor(request), **form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            label = Role(form.cleaned_data["role"]).label
            messages.success(request, f"{user.get_username()} is now {label}.")
            return redirect("core:user", pk=user.pk)
    return _user_page(request, pk, role_form=form)


@require_POST
@login_required
def user_active(request: HttpRequest, pk: int, active: bool) -> HttpResponse:
    require_scope(request, Scope.ADMIN)
    user = get_object_or_404(get_user_model(), pk=pk)
    form = UserActiveForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        set_user_active(user=user, active=active, actor=ui_actor(request), reason=reason)
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        state = "active again" if active else "deactivated: they can no longer log in"
        messages.success(request, f"{user.get_username()} is {state}.")
    return redirect("core:user", pk=user.pk)
