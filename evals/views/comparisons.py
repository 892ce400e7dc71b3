"""The cheapest-that-passes page: candidates side by side, the missing runs started in one click,
the candidates judged, and the winner published behind the gate (with a reason)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.views import HtmxHttpRequest, render_page, require_scope, ui_actor
from evals import comparisons
from evals.comparisons import ComparisonInputs, comparison_inputs
from evals.forms import ComparisonRunForm, PublishWinnerForm
from evals.services import comparisons as comparison_services
from evals.views.runs import POLL_SECONDS
from flags import services as flag_services
from flags.lookups import get_environment, get_flag
from flags.models import Flag
from flags.services import approvals
from flags.views.publishing import published_or_waiting

QUERY_FIELDS = ("eval_set", "eval_set_version", "versions", "environment")


@login_required
def flag_comparison(request: HtmxHttpRequest, key: str) -> HttpResponse:
    flag = get_flag(key)
    context: dict[str, object] = {
        "flag": flag,
        "query": {name: request.GET.get(name, "") for name in QUERY_FIELDS},
    }
    try:
        inputs = comparison_inputs(flag, request.GET)
    except DomainError as error:
        context["error"] = error.detail
        return render_page(request, "evals/comparison.html", context)
    comparison = comparisons.compare(
        flag=flag,
        eval_set_version=inputs.eval_set_version,
        versions=inputs.versions,
        environment=inputs.environment,
        now=timezone.now(),
    )
    winner = comparison.winner
    context |= {
        "comparison": comparison,
        "state_query": _query(inputs),
        "poll_seconds": POLL_SECONDS,
        "run_form": ComparisonRunForm(),
        "publish_form": PublishWinnerForm(
            initial={"version": winner.version.number, "environment": inputs.environment.key}
        )
        if winner and inputs.environment and not winner.is_serving
        else None,
        "can_write": Scope.WRITE in scopes_for_user(request.user),
    }
    return render_page(request, "evals/comparison.html", context)


def _query(inputs: ComparisonInputs) -> str:
    params = {
        "eval_set": inputs.eval_set_version.eval_set.key,
        "eval_set_version": inputs.eval_set_version.number,
        "versions": ",".join(str(version.number) for version in inputs.versions),
    }
    if inputs.environment is not None:
        params["environment"] = inputs.environment.key
    return urlencode(params)


def _back(flag: Flag, request: HttpRequest) -> str:
    return f"{reverse('evals:comparison', kwargs={'key': flag.key})}?{request.POST.get('state', '')}"


def _posted_inputs(flag: Flag, request: HttpRequest) -> ComparisonInputs:
    """The comparison the form was on: its state travels as the page's query string."""
    return comparison_inputs(flag, QueryDict(request.POST.get("state", "")))


@login_required
@require_POST
def comparison_runs(request: HttpRequest, key: str) -> HttpResponse:
    """Run every compared version (and the serving one) that lacks a run on this eval set version."""
    require_scope(request, Scope.WRITE)
    flag = get_flag(key)
    form = ComparisonRunForm(request.POST)
    try:
        inputs = _posted_inputs(flag, request)
        comparison = comparisons.compare(
            flag=flag,
            eval_set_version=inputs.eval_set_version,
            versions=inputs.versions,
            environment=inputs.environment,
            now=timezone.now(),
        )
        started = comparison_services.start_missing_runs(
            flag=flag,
            eval_set_version=inputs.eval_set_version,
            versions=comparison.needing_runs,
            mode=form.cleaned_data["mode"] if form.is_valid() else "messages",
            actor=ui_actor(request),
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        names = ", ".join(f"v{run.config_version.number}" for run in started if run.config_version)
        messages.success(
            request, f"Started {len(started)} run(s): {names}. The table fills in as they finish."
        )
    return redirect(_back(flag, request))


@login_required
@require_POST
def comparison_judge(request: HttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    flag = get_flag(key)
    try:
        inputs = _posted_inputs(flag, request)
        verdicts = comparison_services.judge_candidates(
            flag=flag,
            eval_set_version=inputs.eval_set_version,
            versions=inputs.versions,
            environment=inputs.environment,
            actor=ui_actor(request),
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        passed = sum(verdict.passed for verdict in verdicts)
        messages.success(request, f"Judged {len(verdicts)} version(s): {passed} passed the gate.")
    return redirect(_back(flag, request))


@login_required
@require_POST
def comparison_publish(request: HttpRequest, key: str) -> HttpResponse:
    """Publish the winner; the gate still decides (publishing asks it), and the reason is audited."""
    require_scope(request, Scope.WRITE)
    flag = get_flag(key)
    form = PublishWinnerForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Publishing needs a reason: say why this version, for the audit log.")
        return redirect(_back(flag, request))
    environment = get_environment(form.cleaned_data["environment"])
    number = form.cleaned_data["version"]
    actor, reason = ui_actor(request), form.cleaned_data["reason"]
    try:
        answer = approvals.apply_or_ask(
            actor=actor,
            call=lambda: flag_services.publish_version(
                flag=flag, environment=environment, number=number, actor=actor, reason=reason
            ),
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, published_or_waiting(answer, environment, number))
    return redirect(_back(flag, request))
