"""Lookups by key that raise the API's 404 error; used by every evals API and UI view."""

from controlplane.errors import InvalidInput, NotFound
from evals.models import EvalRun, EvalSet, EvalSetVersion
from flags.lookups import get_flag
from flags.models import Flag, Surface


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


def get_judge(key: str) -> Flag:
    """The judge flag of that key: 404 when there is none, 400 when the flag is not a judge."""
    flag = get_flag(key)
    if flag.surface != Surface.JUDGE:
        raise InvalidInput(f"Flag '{key}' is not a judge (surface 'judge').", code="not_a_judge")
    return flag


def find_eval_set_version(key: str, number: int | None = None) -> EvalSetVersion:
    """The eval set's version `number`, or its latest when none is given."""
    eval_set = get_eval_set(key)
    if number is not None:
        return get_eval_set_version(eval_set, number)
    latest = (
        EvalSetVersion.objects.select_related("eval_set")
        .filter(eval_set=eval_set)
        .order_by("-number")
        .first()
    )
    if latest is None:
        raise NotFound(f"Eval set '{key}' has no version yet.")
    return latest


def get_run(run_id: int) -> EvalRun:
    run = (
        EvalRun.objects.select_related("flag", "config_version", "eval_set_version__eval_set")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFound(f"No eval run with id {run_id}.")
    return run
