"""The helpers every HTML view uses: the scope check, the UI actor, service refusals shown on
forms, and rendering a page or, for htmx, just the block the request targets."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import Engine
from django.template.context import make_context
from django.template.loader_tags import BlockNode
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails

from controlplane.audit import Actor
from controlplane.errors import DomainError
from controlplane.models import Scope, Source
from controlplane.roles import scopes_for_user

SCOPE_REFUSALS: dict[str, str] = {
    Scope.WRITE: "Changing flags, versions and environments needs the Editor or Admin role.",
    Scope.AUDIT: "The audit log is open to the Auditor and Admin roles.",
    Scope.ADMIN: "Managing users and API tokens needs the Admin role.",
}


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def require_scope(request: HttpRequest, scope: str) -> None:
    if scope not in scopes_for_user(request.user):
        raise PermissionDenied(SCOPE_REFUSALS.get(scope, f"This needs the '{scope}' scope."))


def ui_actor(request: HttpRequest) -> Actor:
    return Actor.for_user(request.user, source=Source.UI)


def add_domain_error(form: forms.Form, error: DomainError, *, nested: Iterable[str] = ()) -> None:
    """Show a service's refusal on the form: at the fields it names, and a path inside one of the
    `nested` fields (a JSON list such as `stages[1].weight`) at that field with its path; the
    rest above the form."""
    for issue in error.errors:
        path, message = issue.get("path", ""), issue["message"]
        field = re.split(r"[.\[]", path, maxsplit=1)[0]
        if path in form.fields:
            form.add_error(path, message)
        elif field in nested:
            form.add_error(field, f"{path}: {message}")
        else:
            form.add_error(None, f"{path}: {message}" if path else message)
    if not error.errors:
        on_key = error.code == "duplicate_key" and "key" in form.fields
        form.add_error("key" if on_key else None, error.detail)


def render_page(request: HtmxHttpRequest, template_name: str, context: dict[str, Any]) -> HttpResponse:
    """Render the page, or for htmx only the block named like the element the request targets."""
    target = request.htmx.target if request.htmx else None
    response = None
    if target:
        template = Engine.get_default().get_template(template_name)
        blocks = template.nodelist.get_nodes_by_type(BlockNode)
        block = next((node for node in blocks if isinstance(node, BlockNode) and node.name == target), None)
        if block is not None:
            block_context = make_context(context, request)
            with block_context.bind_template(template):
                response = HttpResponse(block.nodelist.render(block_context))
    if response is None:
        response = render(request, template_name, context)
    # The same URL answers with a page or a fragment: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response
