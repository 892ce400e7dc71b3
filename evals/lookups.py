"""Lookups by key that raise the API's 404 error; used by every evals API and UI view."""

from controlplane.errors import NotFound
from evals.models import EvalSet, EvalSetVersion


def get_eval_set(key: str) -> EvalSet:
    try:
        return EvalSet.objects.select_related("flag").get(key=key)
    except EvalSet.DoesNotExist:
        raise NotFound(f"No eval set with key '{key}'.") from None


def get_eval_set_version(eval_set: EvalSet, number: int) -> EvalSetVersion:
    try:
        return EvalSetVersion.objects.select_related("eval_set").get(eval_set=eval_set, number=number)
    except EvalSetVersion.DoesNotExist:
        raise NotFound(f"Eval set '{eval_set.key}' has no version {number}.") from None
