"""Judge calibration pages: the judges with their standing, and one judge's labels and κ."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.views import HtmxHttpRequest, render_page, require_scope, ui_actor
from evals.agreement import ACTING_MIN_KAPPA, ACTING_MIN_LABELS
from evals.calibration_status import CalibrationProgress, calibration_progress, judge_status
from evals.forms import CalibrateForm, LabelForm, LabelsImportForm
from evals.lookups import get_eval_set, get_eval_set_version, get_judge
from evals.models import EvalSet, EvalSetVersion
from evals.services import calibration
from evals.tasks import calibrate_judge
from flags.lookups import get_version
from flags.models import ConfigVersion, Flag, Surface

POLL_SECONDS = 2


@login_required
def judge_list(request: HtmxHttpRequest) -> HttpResponse:
    judges = []
    for judge in Flag.objects.active().filter(surface=Surface.JUDGE).order_by("key"):
        latest = ConfigVersion.objects.for_flag(judge).first()
        judges.append({"flag": judge, "status": judge_status(latest) if latest else None})
    return render_page(request, "evals/judges.html", {"judges": judges})


def _labelling(request: HtmxHttpRequest, judge: Flag) -> dict[str, Any]:
    """The chosen eval set version's cases with the judge's labels on them, for labelling."""
    key, number = request.GET.get("eval_set", ""), request.GET.get("version", "")
    if not key:
        return {"label_set": None, "rows": []}
    eval_set = get_eval_set(key)
    version = (
        get_eval_set_version(eval_set, int(number))
        if number.isdigit()
        else EvalSetVersion.objects.for_set(eval_set).first()
    )
    if version is None:
        return {"label_set": eval_set, "label_version": None, "rows": []}
    labels = {label.case_id: label for label in judge.judge_labels.filter(case__version=version)}
    rows = [{"case": case, "label": labels.get(case.pk)} for case in version.cases.order_by("position")[:100]]
    return {"label_set": eval_set, "label_version": version, "rows": rows}


def _calibration_page(
    request: HtmxHttpRequest,
    judge: Flag,
    *,
    import_form: LabelsImportForm | None = None,
    errors: Sequence[Mapping[str, Any]] = (),
) -> HttpResponse:
    context = {
        "judge": judge,
        "statuses": [judge_status(version) for version in ConfigVersion.objects.for_flag(judge)],
        "label_count": judge.judge_labels.count(),
        "min_kappa": ACTING_MIN_KAPPA,
        "min_labels": ACTING_MIN_LABELS,
        "eval_sets": EvalSet.objects.order_by("key"),
        "import_form": import_form or LabelsImportForm(),
        "errors": errors,
        "can_write": Scope.WRITE in scopes_for_user(request.user),
        "progress": _progress(request, judge),
        "poll_seconds": POLL_SECONDS,
        **_labelling(request, judge),
    }
    return render_page(request, "evals/calibration.html", context)


@login_required
def judge_calibration(request: HtmxHttpRequest, key: str) -> HttpResponse:
    return _calibration_page(request, get_judge(key))


@login_required
@require_POST
def judge_label(request: HtmxHttpRequest, key: str, number: int, eval_set_key: str) -> HttpResponse:
    """Label one case of an eval set version (an htmx form per case)."""
    require_scope(request, Scope.WRITE)
    judge = get_judge(key)
    version = get_eval_set_version(get_eval_set(eval_set_key), number)
    form = LabelForm(request.POST)
    back = f"{reverse('evals:calibration', kwargs={'key': key})}?eval_set={eval_set_key}&version={number}"
    if not form.is_valid():
        messages.error(request, "Give the judged answer and a verdict.")
        return redirect(back)
    case = version.cases.filter(position=form.cleaned_data["case"]).first()
    if case is None:
        messages.error(request, "That case is not in this version.")
        return redirect(back)
    try:
        calibration.set_label(
            judge=judge,
            case=case,
            response=form.cleaned_data["response"],
            human_passed=form.cleaned_data["passed"],
            actor=ui_actor(request),
        )
    except DomainError as error:
        messages.error(request, error.detail)
    else:
        messages.success(request, f"Labelled case {case.position + 1}.")
    return redirect(back)


@login_required
@require_POST
def judge_labels_import(request: HtmxHttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    judge = get_judge(key)
    form = LabelsImportForm(request.POST, request.FILES)
    eval_set_key, number = request.POST.get("eval_set", ""), request.POST.get("version", "")
    if not (form.is_valid() and eval_set_key and number.isdigit()):
        errors = [{"path": "", "message": "Choose an eval set version and a JSON Lines file."}]
        return _calibration_page(request, judge, import_form=form, errors=errors)
    version = get_eval_set_version(get_eval_set(eval_set_key), int(number))
    try:
        count = calibration.import_labels(
            judge=judge, version=version, data=form.cleaned_data["file"].read(), actor=ui_actor(request)
        )
    except DomainError as error:
        problems = error.errors or [{"path": "", "message": error.detail}]
        return _calibration_page(request, judge, import_form=form, errors=problems)
    messages.success(request, f"Imported {count} label(s).")
    return redirect("evals:calibration", key=key)


@login_required
@require_POST
def judge_calibrate(request: HtmxHttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    judge = get_judge(key)
    form = CalibrateForm(request.POST)
    if form.is_valid():
        version = get_version(judge, form.cleaned_data["version"])
        actor = ui_actor(request).name
        transaction.on_commit(partial(calibrate_judge.delay, version.pk, actor))
        messages.success(
            request, f"Calibrating v{version.number}: the judge is judging the labelled answers."
        )
        query = urlencode({"calibrating": version.number, "since": int(time.time() * 1000)})
        return redirect(f"{reverse('evals:calibration', kwargs={'key': key})}?{query}")
    return redirect("evals:calibration", key=key)


def _progress(request: HtmxHttpRequest, judge: Flag) -> CalibrationProgress | None:
    """The calibration the page was sent to watch, from its query (`calibrating`, and `since` in
    milliseconds since the epoch)."""
    number, since = request.GET.get("calibrating", ""), request.GET.get("since", "")
    if not (number.isdigit() and since.isdigit()):
        return None
    return calibration_progress(
        get_version(judge, int(number)), since=datetime.fromtimestamp(int(since) / 1000, tz=UTC)
    )
