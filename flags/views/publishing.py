"""Publishing from a flag's page: publishing a version in an environment, enabling or disabling it there."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.web import ui_actor
from flags import services
from flags.forms import PublishForm
from flags.lookups import get_environment
from flags.models import Approval, Environment
from flags.services import approvals
from flags.views.access import writable_flag
from flags.views.protected import confirmation, reason_of


@login_required
@require_POST
def publish(request: HttpRequest, key: str, env: str) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    form = PublishForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a version to publish.")
        return redirect("flags:detail", key=flag.key)
    number = form.cleaned_data["version"]
    if page := confirmation(request, flag, environment, f"Publish v{number}"):
        return page
    actor, reason = ui_actor(request), reason_of(request)
    try:
        answer = approvals.apply_or_ask(
            actor=actor,
            call=lambda: services.publish_version(
                flag=flag, environment=environment, number=number, actor=actor, reason=reason
            ),
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, published_or_waiting(answer, environment, number))
    return redirect("flags:detail", key=flag.key)


@login_required
@require_POST
def set_enabled(request: HttpRequest, key: str, env: str, enabled: bool) -> HttpResponse:
    flag, environment = writable_flag(request, key), get_environment(env)
    if page := confirmation(request, flag, environment, "Enable the flag" if enabled else "Disable the flag"):
        return page
    try:
        services.set_flag_enabled(
            flag=flag,
            environment=environment,
            enabled=enabled,
            actor=ui_actor(request),
            reason=reason_of(request),
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(
            request, f"'{flag.key}' is {'enabled' if enabled else 'disabled'} in '{environment.key}'."
        )
    return redirect("flags:detail", key=flag.key)


def published_or_waiting(answer: object, environment: Environment, number: int) -> str:
    """What a person is told after asking to publish: done, or waiting for an Approver."""
    if isinstance(answer, Approval):
        return (
            f"'{environment.key}' needs four eyes: publishing v{number} waits for an Approver "
            f"other than you (approval #{answer.pk}, listed under Approvals)."
        )
    return f"'{environment.key}' now serves v{number}."
