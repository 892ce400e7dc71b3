"""Versions: the editor that writes a new one, and a version's page with the request it renders."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from controlplane.errors import DomainError, NotFound
from controlplane.web import HtmxHttpRequest, add_domain_error, render_page, ui_actor
from flags import services
from flags.forms import VersionForm, starter_content
from flags.lookups import get_flag, get_version
from flags.models import ConfigVersion, Flag, FlagState
from flags.services import preconditions
from flags.views.access import can_write, writable_flag
from flags.views.json_text import pretty_json
from flagstaff.render import RenderError, render_request


def version_number_param(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise NotFound(f"'{value}' is not a version number.")
    return int(value)


def _editor_start(flag: Flag, from_number: int | None) -> dict[str, Any]:
    """Start from the chosen version, else the latest, else a template for the flag's surface."""
    if from_number is not None:
        source: ConfigVersion | None = get_version(flag, from_number)
    else:
        source = ConfigVersion.objects.for_flag(flag).first()
    content = source.content if source else starter_content(flag.surface)
    return {"content": pretty_json(content), "parent": source.number if source else None}


@login_required
def version_new(request: HtmxHttpRequest, key: str) -> HttpResponse:
    flag = writable_flag(request, key)
    initial = _editor_start(flag, version_number_param(request.GET.get("from")))
    form = VersionForm(request.POST or None, flag=flag, initial=initial)
    if form.is_valid() and form.saving:
        data = form.cleaned_data
        try:
            created = services.create_version(
                flag=flag,
                content=data["content"],
                message=data["message"],
                parent_number=data["parent"],
                actor=ui_actor(request),
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, f"Saved {flag.key} v{created.version.number}.")
            return redirect("flags:version", key=flag.key, number=created.version.number)
    return render_page(request, "flags/version_new.html", {"flag": flag, "form": form})


def _rendered_request(content: dict[str, Any]) -> dict[str, Any]:
    """What services will send for this content, with secret references left as placeholders."""
    try:
        rendered = render_request(content, secrets=lambda name: "<secret:" + name + ">")
    except RenderError as error:
        return {"error": str(error)}
    return {"json": pretty_json(rendered.kwargs), "beta": rendered.beta}


@login_required
def version_detail(request: HttpRequest, key: str, number: int) -> HttpResponse:
    flag = get_flag(key)
    version = get_version(flag, number)
    context = {
        "flag": flag,
        "version": version,
        "content_json": pretty_json(version.content),
        "rendered": _rendered_request(version.content),
        "serving_in": FlagState.objects.filter(serving_version=version).select_related("environment"),
        "preconditions": preconditions.describe(flag=flag, version=version),
        "can_write": can_write(request, flag),
    }
    return render(request, "flags/version.html", context)
