"""The deploy checklist block of the rollout and experiment pages: attesting an item, an
Approver's waiver, and the start it gates (which, where four eyes are required, files the start
for an Approver).

Each form posts to its own URL; with htmx the block (`#checklist`) is swapped in place with
what happened said in words (a start that happened reloads the page, all of which changes),
without JavaScript the page is reloaded with a message.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRefresh

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.web import HtmxHttpRequest, require_scope, ui_actor
from flags.models import Approval
from flags.services import approvals
from flags.views.protected import missing_reason, reason_of
from rollouts.checklist import board_of
from rollouts.lookups import SUBJECT_PAGES, Subject, get_subject, kind_of
from rollouts.models import ExperimentState, Rollout, RolloutState
from rollouts.services import checklist, experiments, lifecycle


def _startable(subject: Subject) -> bool:
    if isinstance(subject, Rollout):
        return subject.state in (RolloutState.DRAFT, RolloutState.READY)
    return subject.state == ExperimentState.DRAFT


def checklist_context(
    request: HtmxHttpRequest, subject: Subject, notice: str = "", error: bool = False
) -> dict[str, Any]:
    """The one context key (`checklist`) the block `rollouts/_checklist.html` reads."""
    kind = kind_of(subject)
    scopes = scopes_for_user(request.user)
    pending = Approval.objects.pending().filter(
        flag=subject.flag, environment=subject.environment, subject__startswith=f"{kind}:{subject.pk}"
    )
    return {
        "kind": kind,
        "subject": subject,
        "board": board_of(subject),
        "startable": _startable(subject),
        "can_write": Scope.WRITE in scopes,
        "can_approve": Scope.APPROVE in scopes,
        "pending": list(pending),
        "notice": notice,
        "notice_is_error": error,
        "protected": subject.environment.protected,
        "four_eyes": subject.environment.requires_approval,
    }


def _answer(request: HtmxHttpRequest, kind: str, pk: int, notice: str, error: bool = False) -> HttpResponse:
    if request.htmx:
        subject = get_subject(kind, pk)
        context = {"checklist": checklist_context(request, subject, notice, error)}
        return render(request, "rollouts/_checklist.html", context)
    (messages.error if error else messages.success)(request, notice)
    return redirect(SUBJECT_PAGES[kind], pk=pk)


def _attest(request: HtmxHttpRequest, kind: str, pk: int, item: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    subject = get_subject(kind, pk)
    try:
        signoff = checklist.attest_item(
            subject=subject, item=item, note=request.POST.get("note", ""), actor=ui_actor(request)
        )
    except DomainError as refused:
        return _answer(request, kind, pk, refused.detail, error=True)
    return _answer(request, kind, pk, f"Attested “{signoff.item}” as {signoff.actor_name}.")


def _waive(request: HtmxHttpRequest, kind: str, pk: int, item: str) -> HttpResponse:
    require_scope(request, Scope.APPROVE)
    subject = get_subject(kind, pk)
    try:
        signoff = checklist.waive_item(
            subject=subject, item=item, reason=request.POST.get("reason", ""), actor=ui_actor(request)
        )
    except DomainError as refused:
        return _answer(request, kind, pk, refused.detail, error=True)
    return _answer(request, kind, pk, f"Waived “{signoff.item}”: {signoff.note}")


def _start(request: HtmxHttpRequest, kind: str, pk: int) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    subject = get_subject(kind, pk)
    reason = reason_of(request)
    refusal = missing_reason(subject.environment, reason, "start it")
    if refusal:
        return _answer(request, kind, pk, refusal, error=True)
    actor = ui_actor(request)

    def verb() -> Any:
        if kind == "rollout":
            return lifecycle.start_rollout(rollout=subject, actor=actor, reason=reason)
        return experiments.start_experiment(experiment=subject, actor=actor, reason=reason)

    try:
        answer = approvals.apply_or_ask(actor=actor, call=verb)
    except DomainError as refused:
        return _answer(request, kind, pk, refused.detail, error=True)
    if isinstance(answer, Approval):
        return _answer(
            request,
            kind,
            pk,
            f"'{subject.environment.key}' needs four eyes: the start waits for an Approver other than "
            f"you (approval #{answer.pk}).",
        )
    notice = f"Started: the {kind} is running."
    if request.htmx:
        # The whole page changes (state, controls, the checklist folded into a record): reload it.
        messages.success(request, notice)
        return HttpResponseClientRefresh()
    return _answer(request, kind, pk, notice)


# The pages of a rollout and of an experiment share these views; the URLconf names the `kind`.


@login_required
@require_POST
def attest(request: HtmxHttpRequest, pk: int, item: str, kind: str) -> HttpResponse:
    return _attest(request, kind, pk, item)


@login_required
@require_POST
def waive(request: HtmxHttpRequest, pk: int, item: str, kind: str) -> HttpResponse:
    return _waive(request, kind, pk, item)


@login_required
@require_POST
def start(request: HtmxHttpRequest, pk: int, kind: str) -> HttpResponse:
    return _start(request, kind, pk)
