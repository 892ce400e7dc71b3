"""Eval set pages: the list, one set with its versions and cases, import, edit, and sampled calls."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from controlplane.errors import DomainError
from controlplane.models import Scope
from controlplane.roles import scopes_for_user
from controlplane.views import HtmxHttpRequest, add_domain_error, render_page, require_scope, ui_actor
from evals import case_files
from evals.api.eval_sets import export_response, guess_format, parse_scorers
from evals.eval_set_reads import eval_sets_with_latest, recent_samples
from evals.forms import EvalSetForm, ImportForm, SamplesForm, StartRunForm, VersionEditForm
from evals.lookups import get_eval_set, get_eval_set_version
from evals.models import EvalSet, EvalSetVersion, VersionSource
from evals.services import eval_sets
from flags.models import Flag, Surface

CASES_PER_PAGE = 50


def _can_write(request: HtmxHttpRequest) -> bool:
    return Scope.WRITE in scopes_for_user(request.user)


@login_required
def eval_set_list(request: HtmxHttpRequest) -> HttpResponse:
    form = EvalSetForm(request.POST or None)
    if request.method == "POST":
        require_scope(request, Scope.WRITE)
        if form.is_valid():
            try:
                eval_set = eval_sets.create_eval_set(actor=ui_actor(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                messages.success(request, f"Created eval set '{eval_set.key}'. Import its first cases next.")
                return redirect("evals:detail", key=eval_set.key)
    context = {"eval_sets": eval_sets_with_latest(), "form": form, "can_write": _can_write(request)}
    return render_page(request, "evals/eval_sets.html", context)


def _detail_page(
    request: HtmxHttpRequest,
    eval_set: EvalSet,
    *,
    import_form: ImportForm | None = None,
    errors: list[Mapping[str, Any]] | None = None,
) -> HttpResponse:
    versions = list(EvalSetVersion.objects.for_set(eval_set).select_related("parent"))
    selected = None
    if versions:
        wanted = request.GET.get("version")
        selected = next((v for v in versions if str(v.number) == wanted), versions[0])
    page = None
    if selected is not None:
        page = Paginator(selected.cases.order_by("position"), CASES_PER_PAGE).get_page(
            request.GET.get("page")
        )
    context = {
        "eval_set": eval_set,
        "versions": versions,
        "selected": selected,
        "page": page,
        "import_form": import_form or ImportForm(),
        "run_form": StartRunForm(
            initial={
                "flag": eval_set.flag.key if eval_set.flag else "",
                "eval_set_version": selected.pk if selected else None,
            },
            eval_set_versions=versions,
        ),
        "run_flags": Flag.objects.active().exclude(surface=Surface.JUDGE).order_by("key"),
        "errors": errors or [],
        "can_write": _can_write(request),
    }
    return render_page(request, "evals/eval_set.html", context)


@login_required
def eval_set_detail(request: HtmxHttpRequest, key: str) -> HttpResponse:
    return _detail_page(request, get_eval_set(key))


@login_required
def eval_set_import(request: HtmxHttpRequest, key: str) -> HttpResponse:
    require_scope(request, Scope.WRITE)
    eval_set = get_eval_set(key)
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            version = eval_sets.import_eval_set_version(
                eval_set=eval_set,
                data=upload.read(),
                file_format=form.cleaned_data["format"] or guess_format(upload.name),
                scorers=parse_scorers(form.cleaned_data["scorers"]),
                message=form.cleaned_data["message"],
                actor=ui_actor(request),
            )
        except DomainError as error:
            return _detail_page(request, eval_set, import_form=form, errors=_errors(error))
        messages.success(request, f"Imported {version.case_count} cases as version {version.number}.")
        return redirect("evals:detail", key=eval_set.key)
    return _detail_page(request, eval_set, import_form=form)


def _errors(error: DomainError) -> list[Mapping[str, Any]]:
    return error.errors or [{"path": "", "message": error.detail}]


@login_required
def eval_set_export(request: HtmxHttpRequest, key: str, number: int) -> HttpResponse:
    version = get_eval_set_version(get_eval_set(key), number)
    return export_response(version, request.GET.get("format") or case_files.JSONL)


@login_required
def version_edit(request: HtmxHttpRequest, key: str, number: int) -> HttpResponse:
    """Edit a version's cases and scorers as text; saving creates the next version."""
    require_scope(request, Scope.WRITE)
    version = get_eval_set_version(get_eval_set(key), number)
    initial = {
        "cases": case_files.to_jsonl([case.as_case_dict() for case in version.cases.order_by("position")]),
        "scorers": json.dumps(version.scorers, indent=2),
    }
    form = VersionEditForm(request.POST or None, initial=initial)
    errors: list[Mapping[str, Any]] = []
    if request.method == "POST" and form.is_valid():
        try:
            created = eval_sets.import_eval_set_version(
                eval_set=version.eval_set,
                data=form.cleaned_data["cases"].encode(),
                file_format=case_files.JSONL,
                scorers=parse_scorers(form.cleaned_data["scorers"]) or [],
                message=form.cleaned_data["message"],
                parent=version,
                source=VersionSource.EDITOR,
                actor=ui_actor(request),
            )
        except DomainError as error:
            errors = _errors(error)
        else:
            messages.success(request, f"Saved as version {created.number}.")
            return redirect(f"{_detail_url(version.eval_set)}?version={created.number}")
    context = {"version": version, "eval_set": version.eval_set, "form": form, "errors": errors}
    return render_page(request, "evals/version_edit.html", context)


def _detail_url(eval_set: EvalSet) -> str:
    return reverse("evals:detail", kwargs={"key": eval_set.key})


@login_required
def eval_set_samples(request: HtmxHttpRequest, key: str) -> HttpResponse:
    """Choose sampled production calls to add as cases of a new version."""
    require_scope(request, Scope.WRITE)
    eval_set = get_eval_set(key)
    samples = recent_samples(eval_set.flag)
    form = SamplesForm(request.POST or None, sample_ids=[s.id for s in samples])
    errors: list[Mapping[str, Any]] = []
    if request.method == "POST" and form.is_valid():
        try:
            version = eval_sets.create_version_from_samples(
                eval_set=eval_set,
                sample_ids=form.cleaned_data["samples"],
                with_reference=form.cleaned_data["with_reference"],
                message=form.cleaned_data["message"],
                actor=ui_actor(request),
            )
        except DomainError as error:
            errors = _errors(error)
        else:
            messages.success(
                request, f"Version {version.number} adds {len(form.cleaned_data['samples'])} case(s)."
            )
            return redirect(f"{_detail_url(eval_set)}?version={version.number}")
    context = {"eval_set": eval_set, "samples": samples, "form": form, "errors": errors}
    return render_page(request, "evals/samples.html", context)
