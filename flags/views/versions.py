"""Versions: the editor that writes a new one, and a version's page with the request it renders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from controlplane.errors import DomainError, NotFound
from controlplane.web import HtmxHttpRequest, add_domain_error, render_page, ui_actor
from flags import services
from flags.forms import VersionForm, starter_content
from flags.lookups import get_flag, get_version
from flags.models import ConfigVersion, Flag, FlagState
from flags.services import preconditions
from flags.views.access import can_write, writable_flag
from flags.views.catalog import editor_models
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


def secret_references(content: object) -> Iterator[str]:
    """The secret names a config's MCP servers reference, its subagents' included."""
    stack = [content]
    while stack:
        config = stack.pop()
        if not isinstance(config, dict):
            continue
        for server in config.get("mcp_servers") or []:
            if isinstance(server, dict) and isinstance(server.get("authorization_secret"), str):
                yield server["authorization_secret"]
        stack.extend(
            subagent.get("config") for subagent in config.get("subagents") or [] if isinstance(subagent, dict)
        )


def known_secrets() -> list[dict[str, Any]]:
    """Secret names the saved versions already reference, each with the flags that use it."""
    flags_using: defaultdict[str, set[str]] = defaultdict(set)
    versions = ConfigVersion.objects.filter(content__icontains="authorization_secret")
    for flag_key, content in versions.values_list("flag__key", "content").iterator():
        for name in secret_references(content):
            flags_using[name].add(flag_key)
    return [{"name": name, "flags": sorted(keys)} for name, keys in sorted(flags_using.items())]


def _editor_references() -> dict[str, Any]:
    """What the structured editor offers to pick from: the model catalog and the secret names."""
    return {"models": editor_models(timezone.now().date()), "secrets": known_secrets()}


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
    context = {"flag": flag, "form": form}
    if not request.htmx:
        context["references"] = _editor_references()
    return render_page(request, "flags/version_new.html", context)


def _rendered_request(content: dict[str, Any]) -> dict[str, Any]:
    """What services will send for this content, with secret references left as placeholders."""
    try:
        rendered = render_request(content, secrets=lambda name: "<secret:" + name + ">")
    except RenderError as error:
        return {"error": str(error)}
    return {"json": pretty_json(rendered.kwargs), "beta": rendered.beta}


def _system_blocks(system: object) -> list[dict[str, Any]]:
    """The system prompt as text blocks, to show with its line breaks instead of JSON escapes."""
    if isinstance(system, str):
        return [{"text": system, "cached": False}]
    blocks = system if isinstance(system, list) else []
    return [{"text": block.get("text", ""), "cached": "cache_control" in block} for block in blocks]


@login_required
def version_detail(request: HttpRequest, key: str, number: int) -> HttpResponse:
    flag = get_flag(key)
    version = get_version(flag, number)
    context = {
        "flag": flag,
        "version": version,
        "content_json": pretty_json(version.content),
        "system_blocks": _system_blocks(version.content.get("system")),
        "rendered": _rendered_request(version.content),
        "serving_in": FlagState.objects.filter(serving_version=version).select_related("environment"),
        "preconditions": preconditions.describe(flag=flag, version=version),
        "can_write": can_write(request, flag),
    }
    return render(request, "flags/version.html", context)
