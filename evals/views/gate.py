"""A version's evals, shown inside its page: where it stands with the gate in each environment,
its runs, a form to start one, and the button that judges it against what an environment serves."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.views import HtmxHttpRequest, render_page, require_scope, ui_actor
from evals.forms import StartRunForm
from evals.models import EvalRun, EvalSetVersion, GatePolicy
from evals.services import gate
from evals.views.runs import POLL_SECONDS
from flags.lookups import get_environment, get_flag, get_version
from flags.models import Environment

RUNS_SHOWN = 10
EVAL_SET_VERSIONS_OFFERED = 50


@login_required
def version_evals(request: HtmxHttpRequest, key: str, number: int) -> HttpResponse:
    flag = get_flag(key)
    version = get_version(flag, number)
    policy = GatePolicy.objects.select_related("eval_set", "pinned_version").filter(flag=flag).first()
    gate_version = gate.gate_eval_set_version(policy) if policy else None
    offered = EvalSetVersion.objects.select_related("eval_set").order_by("eval_set__key", "-number")
    runs = list(
        EvalRun.objects.filter(config_version=version).select_related("eval_set_version__eval_set")[
            :RUNS_SHOWN
        ]
    )
    context = {
        "flag": flag,
        "version": version,
        "policy": policy,
        "statuses": [
            (environment, gate.gate_status(flag=flag, version=version, environment=environment))
            for environment in Environment.objects.by_key()
        ],
        "runs": runs,
        "polling": any(not run.is_finished for run in runs),
        "poll_seconds": POLL_SECONDS,
        "form": StartRunForm(
            initial={
                "flag": flag.key,
                "version": version.number,
                "eval_set_version": gate_version.pk if gate_version else None,
            },
            eval_set_versions=offered[:EVAL_SET_VERSIONS_OFFERED],
        ),
        "can_write": Scope.WRITE in scopes_for_user(request.user),
    }
    return render_page(request, "evals/version_evals.html", context)


@login_required
@require_POST
def version_judge(request: HttpRequest, key: str, number: int, env: str) -> HttpResponse:
    """Judge the version against the gate and what `env` serves; the verdict shows on its page."""
    require_scope(request, Scope.WRITE)
    flag = get_flag(key)
    version = get_version(flag, number)
    try:
        verdict = gate.evaluate_gate(
            flag=flag, version=version, environment=get_environment(env), actor=ui_actor(request)
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        explanation = verdict.evidence.get("explanation", "")
        (messages.success if verdict.passed else messages.warning)(request, explanation)
    return redirect("flags:version", key=flag.key, number=version.number)
