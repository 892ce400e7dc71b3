"""Lookups by key or id that raise the API's 404 error; used by every evals API and UI view."""

from __future__ import annotations

from controlplane.errors import NotFound
from evals.models import EvalRun, EvalSetVersion


def get_run(run_id: int) -> EvalRun:
    run = (
        EvalRun.objects.select_related("flag", "config_version", "eval_set_version__eval_set")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFound(f"No eval run with id {run_id}.")
    return run


def get_eval_set_version(key: str, number: int | None = None) -> EvalSetVersion:
    """The eval set's version `number`, or its latest when none is given."""
    versions = EvalSetVersion.objects.filter(eval_set__key=key).select_related("eval_set")
    version = (
        versions.filter(number=number).first() if number is not None else versions.order_by("-number").first()
    )
    if version is None:
        which = f"version {number}" if number is not None else "a version"
        raise NotFound(f"Eval set '{key}' has no {which}.")
    return version
