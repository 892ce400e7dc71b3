"""Four eyes on the rollout verbs: a rollout start, a manual promote and an experiment start,
as flags/services/approvals.py files, approves and applies them.

The changes are built here (the verbs ask `require_approval` with them); `register_actions`,
run from the app's ready(), tells flags how to apply each, which evidence to record (the gate
verdict, the deploy checklist, the latest decision, as they stand at that moment) and who else
counts as the change's author (whoever created the rollout or experiment).
"""

from __future__ import annotations

from typing import Any

from controlplane.audit import Actor
from evals.services.gate import gate_status
from flags.models import Approval, ApprovalAction
from flags.services import approvals
from flags.services.approvals import Change, Registration
from rollouts.checklist import board_for
from rollouts.models import Experiment, Rollout


def start_change(rollout: Rollout, reason: str) -> Change:
    return Change(
        action=ApprovalAction.ROLLOUT_START,
        flag=rollout.flag,
        environment=rollout.environment,
        subject=f"rollout:{rollout.pk}",
        summary=(
            f"starting rollout {rollout.pk} of '{rollout.flag.key}' in '{rollout.environment.key}' "
            f"(v{rollout.baseline.number} → v{rollout.candidate.number})"
        ),
        reason=reason,
        params={"rollout": rollout.pk},
    )


def promote_change(rollout: Rollout, stage: int, reason: str) -> Change:
    return Change(
        action=ApprovalAction.ROLLOUT_PROMOTE,
        flag=rollout.flag,
        environment=rollout.environment,
        subject=f"rollout:{rollout.pk}:stage:{stage}",
        summary=(
            f"promoting rollout {rollout.pk} of '{rollout.flag.key}' in '{rollout.environment.key}' "
            f"from stage {stage}"
        ),
        reason=reason,
        params={"rollout": rollout.pk, "stage": stage},
    )


def experiment_start_change(experiment: Experiment, reason: str) -> Change:
    return Change(
        action=ApprovalAction.EXPERIMENT_START,
        flag=experiment.flag,
        environment=experiment.environment,
        subject=f"experiment:{experiment.pk}",
        summary=(
            f"starting experiment {experiment.pk} of '{experiment.flag.key}' in "
            f"'{experiment.environment.key}'"
        ),
        reason=reason,
        params={"experiment": experiment.pk},
    )


def _rollout(approval: Approval) -> Rollout:
    return Rollout.objects.select_related("flag", "environment", "baseline", "candidate").get(
        pk=approval.params["rollout"]
    )


def _experiment(approval: Approval) -> Experiment:
    return Experiment.objects.select_related("flag", "environment", "baseline").get(
        pk=approval.params["experiment"]
    )


def _gate(rollout_or_experiment: Rollout | Experiment, versions: list[Any]) -> list[dict[str, Any]]:
    verdicts = []
    for version in versions:
        status = gate_status(
            flag=rollout_or_experiment.flag, version=version, environment=rollout_or_experiment.environment
        )
        verdicts.append(
            {
                "version": version.number,
                "summary": status.summary,
                "detail": status.detail,
                "verdict": status.verdict.pk if status.verdict else None,
            }
        )
    return verdicts


def _decision(found: Any) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        "tick": found.tick,
        "action": found.action,
        "reason": found.reason,
        "explanation": found.explanation,
        "at": found.created_at.isoformat(),
    }


def rollout_evidence(approval: Approval) -> dict[str, Any]:
    rollout = _rollout(approval)
    return {
        "rollout": rollout.pk,
        "state": rollout.state,
        "stage": rollout.stage_index,
        "gate": _gate(rollout, [rollout.candidate]),
        "checklist": board_for(rollout=rollout).as_dict(),
        "latest_decision": _decision(rollout.decisions.order_by("-tick").first()),
    }


def experiment_evidence(approval: Approval) -> dict[str, Any]:
    experiment = _experiment(approval)
    candidates = [arm.version for arm in experiment.arms.select_related("version").order_by("index")[1:]]
    return {
        "experiment": experiment.pk,
        "state": experiment.state,
        "gate": _gate(experiment, candidates),
        "checklist": board_for(experiment=experiment).as_dict(),
        "latest_decision": _decision(experiment.decisions.order_by("-tick").first()),
    }


def _apply_start(approval: Approval, author: Actor) -> None:
    from rollouts.services.lifecycle import start_rollout

    start_rollout(rollout=_rollout(approval), actor=author, reason=approval.reason)


def _apply_promote(approval: Approval, author: Actor) -> None:
    from rollouts.services.lifecycle import promote_rollout

    promote_rollout(
        rollout=_rollout(approval), actor=author, reason=approval.reason, stage=int(approval.params["stage"])
    )


def _apply_experiment_start(approval: Approval, author: Actor) -> None:
    from rollouts.services.experiments import start_experiment

    start_experiment(experiment=_experiment(approval), actor=author, reason=approval.reason)


def register_actions() -> None:
    rollout_authors = lambda approval: {_rollout(approval).created_by_name}  # noqa: E731
    approvals.register(
        ApprovalAction.ROLLOUT_START,
        Registration(apply=_apply_start, evidence=rollout_evidence, authors=rollout_authors),
    )
    approvals.register(
        ApprovalAction.ROLLOUT_PROMOTE,
        Registration(apply=_apply_promote, evidence=rollout_evidence, authors=rollout_authors),
    )
    approvals.register(
        ApprovalAction.EXPERIMENT_START,
        Registration(
            apply=_apply_experiment_start,
            evidence=experiment_evidence,
            authors=lambda approval: {_experiment(approval).created_by_name},
        ),
    )
