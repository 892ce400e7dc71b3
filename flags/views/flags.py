"""Flags and environments: the list, a flag's page, publishing a version and enabling a flag."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, add_domain_error, render_page, require_scope, ui_actor
from flags import services, split_owners
from flags.forms import EnvironmentForm, FlagEditForm, FlagForm
from flags.lookups import get_flag
from flags.models import ConfigVersion, Environment, Flag, Split
from flags.services import preconditions
from flags.views import outcomes
from flags.views.access import can_write, writable_flag
from flags.views.targeting import targeting_sections


def _list_page(
    request: HtmxHttpRequest,
    flag_form: FlagForm | None = None,
    environment_form: EnvironmentForm | None = None,
) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    flags = list(Flag.objects.active().search(query).with_states())
    sentences = outcomes.for_flags(flags)
    context = {
        "query": query,
        "flags": [(flag, sentences[flag.pk]) for flag in flags],
        "environments": Environment.objects.by_key(),
        "flag_form": flag_form or FlagForm(),
        "environment_form": environment_form or EnvironmentForm(),
        "can_write": can_write(request),
    }
    return render_page(request, "flags/list.html", context)


@login_required
def flag_list(request: HtmxHttpRequest) -> HttpResponse:
    form = FlagForm(request.POST or None)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                flag = services.create_flag(actor=ui_actor(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Created flag '{flag.key}'. Write its first version next.")
                return redirect("flags:detail", key=flag.key)
    return _list_page(request, flag_form=form)


@login_required
@require_POST
def environment_create(request: HtmxHttpRequest) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    form = EnvironmentForm(request.POST)
    if form.is_valid():
        try:
            environment = services.create_environment(actor=ui_actor(request), **form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, f"Created environment '{environment.key}'.")
            return redirect("flags:list")
    return _list_page(request, environment_form=form)


@login_required
def flag_detail(request: HttpRequest, key: str) -> HttpResponse:
    flag = get_flag(key)
    states = {state.environment_id: state for state in flag.states.select_related("serving_version")}
    versions = list(ConfigVersion.objects.for_flag(flag).defer("content"))
    environments = list(Environment.objects.by_key())
    splits = {
        split.environment_id: split
        for split in Split.objects.active().filter(flag=flag).select_related("candidate")
    }
    segments = outcomes.all_segments()
    owners = split_owners.describe(list(splits.values()))
    context = {
        "flag": flag,
        "environments": [(env, states.get(env.pk)) for env in environments],
        "users_get": [
            outcomes.what_users_get(
                flag=flag,
                environment=env,
                state=states.get(env.pk),
                split=splits.get(env.pk),
                segments=segments,
                split_owner=owners.get(splits[env.pk].pk, "") if env.pk in splits else "",
            )
            for env in environments
        ],
        "versions": versions,
        "version_rows": [
            (version, preconditions.describe(flag=flag, version=version)) for version in versions
        ],
        "can_write": can_write(request, flag),
        "can_read_audit": Scope.AUDIT in scopes_for_user(request.user),
        "targeting": targeting_sections(flag, states),
    }
    return render(request, "flags/detail.html", context)


@login_required
def flag_edit(request: HttpRequest, key: str) -> HttpResponse:
    """The flag's details (name, surface, owner, stickiness, description) to change in place."""
    flag = writable_flag(request, key)
    initial = {
        field: getattr(flag, field) for field in ("name", "surface", "owner", "stickiness", "description")
    }
    form = FlagEditForm(request.POST or None, initial=initial)
    if form.is_valid():
        changes = {name: value for name, value in form.cleaned_data.items() if name != "reason"}
        try:
            services.update_flag(
                flag=flag, changes=changes, actor=ui_actor(request), reason=form.cleaned_data["reason"]
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, f"Saved the details of '{flag.key}'.")
            return redirect("flags:detail", key=flag.key)
    return render(request, "flags/flag_edit.html", {"flag": flag, "form": form})
