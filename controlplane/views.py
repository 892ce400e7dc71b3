"""Core pages: health, error handlers (JSON under /api/), and the audit and token pages.

The helpers every HTML view uses are in controlplane.web.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from controlplane.audit import verify_chain
from controlplane.errors import DomainError, NotFound
from controlplane.forms import ApiTokenForm, AuditFilterForm
from controlplane.health import database_ok
from controlplane.models import ApiToken, AuditChainHead, AuditEntry, Scope
from controlplane.services import create_api_token, revoke_api_token
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
    return {"field": field, "before": _shown(before), "after": _shown(after), "diff": True}


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


@login_required
def audit(request: HtmxHttpRequest) -> HttpResponse:
    require_scope(request, Scope.AUDIT)
    form = AuditFilterForm(request.GET)
    entries = form.apply(AuditEntry.objects.all()) if form.is_valid() else AuditEntry.objects.none()
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
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
