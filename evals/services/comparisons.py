"""The comparison's two writes: run every version that lacks a run on one eval set version, and
judge every candidate with a finished run against the gate. Each run and each verdict writes its
own audit entry (through the run and gate services), all in one transaction: either every
missing run is queued, or none is."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from controlplane.audit import Actor
from controlplane.errors import Conflict
from evals.models import EvalRun, EvalSetVersion, GateVerdict, RunState
from evals.services import gate, runs
from flags.models import ConfigVersion, Environment, Flag


@transaction.atomic
def start_missing_runs(
    *,
    flag: Flag,
    eval_set_version: EvalSetVersion,
    versions: Sequence[ConfigVersion],
    mode: str,
    actor: Actor,
) -> list[EvalRun]:
    """Queue a run of each version on `eval_set_version`; 409 when every one has a run already."""
    if not versions:
        raise Conflict(
            "Every version compared already has a finished or running run on "
            f"eval set '{eval_set_version.eval_set.key}' v{eval_set_version.number}.",
            code="nothing_to_run",
        )
    return [
        runs.start_run(
            flag=flag, eval_set_version=eval_set_version, config_version=version, mode=mode, actor=actor
        )
        for version in versions
    ]


@transaction.atomic
def judge_candidates(
    *,
    flag: Flag,
    eval_set_version: EvalSetVersion,
    versions: Sequence[ConfigVersion],
    environment: Environment | None,
    actor: Actor,
) -> list[GateVerdict]:
    """Judge each version that has a finished run on `eval_set_version`, against what
    `environment` serves; 409 when none has one."""
    finished = [
        version
        for version in versions
        if EvalRun.objects.filter(
            config_version=version, eval_set_version=eval_set_version, state=RunState.SUCCEEDED
        ).exists()
    ]
    if not finished:
        raise Conflict("No version compared has a finished run to judge yet.", code="run_required")
    return [
        gate.evaluate_gate(flag=flag, version=version, environment=environment, actor=actor)
        for version in finished
    ]
