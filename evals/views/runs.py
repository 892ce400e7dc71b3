"""Eval run pages: the list, a run with live progress (htmx polling) and its cases, one case in full."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh

from controlplane.errors import DomainError, NotFound
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.views import HtmxHttpRequest, render_page, require_scope, ui_actor
from evals.forms import StartRunForm
from evals.lookups import get_run
from evals.models import EvalRun, EvalSetVersion, RunCase, RunState
from evals.run_progress import run_progress
from evals.services import runs
from flags.lookups import get_flag, get_version

PAGE_SIZE = 50
POLL_SECONDS = 2


@login_required
def run_list(request: HtmxHttpRequest) -> HttpResponse:
    found = EvalRun.objects.select_related("flag", "config_version", "eval_set_version__eval_set")
    if flag := request.GET.get("flag", "").strip():
        found = found.filter(flag__key=flag)
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    return render_page(request, "evals/runs.html", {"page": page, "flag": flag})


@login_required
def run_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    run = get_run(pk)
    if request.htmx and request.htmx.target == "run_progress" and run.is_finished:
        # The poll that sees the run finish reloads the whole page: its cases and actions were
        # drawn while it ran, and only the progress card is polled.
        return HttpResponseClientRefresh()
    cases = RunCase.objects.filter(run=run).select_related("case", "output").order_by("case__position")
    context = {
        "run": run,
        "progress": run_progress(run, now=timezone.now()),
        "poll_seconds": POLL_SECONDS,
        "page": Paginator(cases, PAGE_SIZE).get_page(request.GET.get("page")),
        "can_write": Scope.WRITE in scopes_for_user(request.user),
        "can_cancel": run.state in (RunState.QUEUED, RunState.RUNNING, RunState.PAUSED),
        "can_resume": run.state == RunState.PAUSED,
    }
    return render_page(request, "evals/run.html", context)


@login_required
def run_case(request: HttpRequest, pk: int, position: int) -> HttpResponse:
    run = get_run(pk)
    row = (
        RunCase.objects.filter(run=run, case__position=position)
        .select_related("case", "output")
        .prefetch_related("output__scores")
        .first()
    )
    if row is None:
        raise NotFound(f"Run {pk} has no case {position}.")
    versions = run.scorer_versions or {}
    scores = (
        [s for s in row.output.scores.all() if versions.get(s.scorer) == s.scorer_version]
        if row.output
        else []
    )
    return render(request, "evals/run_case.html", {"run": run, "row": row, "scores": scores})


@login_required
@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    try:
        runs.cancel_run(run=get_run(pk), actor=ui_actor(request))
        messages.success(request, "Run cancelled: no new case is sent; answers in flight are kept.")
    except DomainError as error:
        messages.error(request, error.detail)
    return redirect("evals:run", pk=pk)


@login_required
@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    try:
        runs.resume_run(run=get_run(pk), actor=ui_actor(request))
        messages.success(request, "Run resumed: cases already answered are not paid for again.")
    except DomainError as error:
        messages.error(request, error.detail)
    return redirect("evals:run", pk=pk)


@login_required
@require_POST
def run_start(request: HttpRequest) -> HttpResponse:
    """Start a run from a form (the version page's eval panel, an eval set's page)."""
    require_scope(request, Scope.WRITE)
    form = StartRunForm(request.POST, eval_set_versions=EvalSetVersion.objects.select_related("eval_set"))
    back = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = ""
    if not form.is_valid():
        messages.error(request, "Choose a flag, a version, an eval set version and how to run it.")
        return redirect(back or "evals:runs")
    flag = get_flag(form.cleaned_data["flag"])
    try:
        run = runs.start_run(
            flag=flag,
            eval_set_version=EvalSetVersion.objects.get(pk=form.cleaned_data["eval_set_version"]),
            config_version=get_version(flag, form.cleaned_data["version"]),
            mode=form.cleaned_data["mode"],
            actor=ui_actor(request),
        )
    except DomainError as error:
        messages.error(request, error.detail)
        return redirect(back or "evals:runs")
    messages.success(request, f"Run #{run.pk} started: {run.cases_total} cases.")
    return redirect("evals:run", pk=run.pk)
