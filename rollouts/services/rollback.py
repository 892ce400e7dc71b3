"""Rollback in one motion: whatever a flag's candidate is doing in an environment, take it off
traffic now.

Every entry point calls `roll_back` (the Roll back buttons on the flag and rollout pages,
`POST /api/v1/flags/{key}/environments/{env}/rollback/`, `manage.py rollback`, the client's
`Flagstaff.rollback`, and rollback rehearsals), and the analysis tick's rollback calls its
rollout motion (`roll_back_rollout`), so each leaves the same audit entry, `flag.rolled_back`,
beside the entries of the motion itself. What the motion is depends on
what the environment serves (`plan_rollback`, which the pages also show in words):

- a running or paused rollout: rolled back through the rollout's state machine
  (lifecycle.rollback_rollout), which clears its split;
- a running or paused experiment: aborted, its split ended;
- a split set by hand (no rollout or experiment behind it): cleared;
- none of these, but the serving version came from a rollout's full promotion: the rollout's
  baseline published again (the previous serving version restored).

Each motion bumps the environment's revision exactly once, opens an incident and queues the
signed `rollout-rolled-back` webhook. No approval, no gate verdict and no analysis is waited
on: restoring a version the environment served before passes the gate's check by itself
(evals.services.gate.check_serving). Nothing to take back is a 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db import transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags.models import Environment, Flag, FlagState, Split
from flags.services import approvals
from flags.services.guards import lock_flag, lock_state, writable_state
from flags.services.publishing import publish_version
from flags.services.splits import clear_split
from rollouts.models import ON_TRAFFIC_STATES, Experiment, ExperimentState, Rollout, RolloutState
from rollouts.services import experiments, lifecycle
from telemetry.models.incidents import Incident, IncidentKind, WebhookEvent
from telemetry.services.incidents import open_incident
from telemetry.services.webhooks import enqueue_event


class Motion(StrEnum):
    ROLLOUT = "rollout_rolled_back"
    EXPERIMENT = "experiment_ended"
    SPLIT = "split_cleared"
    PROMOTION = "promotion_reverted"


@dataclass(frozen=True, slots=True)
class RollbackPlan:
    """What rolling back would do now, in words a product owner reads before confirming."""

    motion: Motion
    summary: str
    rollout: Rollout | None = None
    experiment: Experiment | None = None
    split: Split | None = None


@dataclass(frozen=True, slots=True)
class RolledBack:
    """What a rollback did: the API's answer, the audit entry's changes."""

    flag: str
    environment: str
    motion: str
    summary: str
    serving_version: int | None
    rollout: int | None
    experiment: int | None
    split: str | None
    candidate: int | None
    revision_before: int
    revision_after: int
    incident: int | None
    rehearsal: bool

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def nothing_to_roll_back(flag: Flag, environment: Environment, serving: int | None) -> Conflict:
    serves = f"serves v{serving} to everyone" if serving is not None else "serves nothing"
    return Conflict(
        f"Nothing to roll back: '{environment.key}' {serves} of '{flag.key}', with no rollout, "
        "experiment or split on traffic, and that version did not come from a rollout's "
        "promotion. To serve another version, publish it.",
        code="nothing_to_roll_back",
    )


def _rollout_plan(rollout: Rollout) -> RollbackPlan:
    return RollbackPlan(
        Motion.ROLLOUT,
        f"Stop serving v{rollout.candidate.number} (rollout {rollout.pk}); everyone in "
        f"'{rollout.environment.key}' gets v{rollout.baseline.number} again.",
        rollout=rollout,
    )


def plan_rollback(flag: Flag, environment: Environment) -> RollbackPlan | None:
    """What `roll_back` would do now (None: nothing to roll back). Reads only."""
    state = (
        FlagState.objects.select_related("serving_version").filter(flag=flag, environment=environment).first()
    )
    serving = state.serving_version if state else None
    rollout = (
        Rollout.objects.select_related("flag", "environment", "baseline", "candidate")
        .filter(flag=flag, environment=environment, state__in=ON_TRAFFIC_STATES)
        .first()
    )
    if rollout is not None:
        return _rollout_plan(rollout)
    experiment = (
        Experiment.objects.select_related("flag", "environment", "baseline")
        .filter(
            flag=flag, environment=environment, state__in=(ExperimentState.RUNNING, ExperimentState.PAUSED)
        )
        .first()
    )
    if experiment is not None:
        return RollbackPlan(
            Motion.EXPERIMENT,
            f"End experiment {experiment.pk}; everyone in '{environment.key}' gets "
            f"v{experiment.baseline.number} again.",
            experiment=experiment,
        )
    split = Split.objects.active_for(flag, environment)
    if split is not None and serving is not None:
        share = f"{split.weight / 100:g} % of units" if split.candidate else "the experiment's arms"
        return RollbackPlan(
            Motion.SPLIT,
            f"Clear the split ({share}); everyone in '{environment.key}' gets v{serving.number} again.",
            split=split,
        )
    if serving is None:
        return None
    promoted = (
        Rollout.objects.select_related("flag", "environment", "baseline", "candidate")
        .filter(flag=flag, environment=environment, state=RolloutState.PROMOTED)
        .order_by("-ended_at", "-id")
        .first()
    )
    if promoted is None or promoted.candidate_id != serving.pk:
        return None
    return RollbackPlan(
        Motion.PROMOTION,
        f"Serve v{promoted.baseline.number} again instead of v{serving.number}, which rollout "
        f"{promoted.pk} promoted to everyone in '{environment.key}'.",
        rollout=promoted,
    )


def _announce(
    *, state: FlagState, actor: Actor, reason: str, payload: dict[str, Any], rehearsal: bool
) -> int | None:
    """The incident and the webhook of a motion that has no state machine of its own to send them."""
    incident = None
    if not rehearsal:
        incident = open_incident(
            kind=IncidentKind.ROLLOUT_ROLLED_BACK,
            state=state,
            summary=f"'{state.flag.key}' rolled back in '{state.environment.key}': {reason}",
            evidence=payload,
            actor=actor,
        )
    enqueue_event(event=WebhookEvent.ROLLOUT_ROLLED_BACK, payload=payload)
    return incident.pk if incident else None


@transaction.atomic
def roll_back(
    *, flag: Flag, environment: Environment, actor: Actor, reason: str, rehearsal: bool = False
) -> RolledBack:
    """Take the candidate of `flag` off traffic in `environment` in one motion (see the module
    docstring). `rehearsal`: a rollback rehearsal's own canary, so no incident is opened (the
    rehearsal opens one if it fails) and the webhook says `"rehearsal": true`."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput(
            "Say why you are rolling back: the reason goes to the audit log and the incident.",
            code="reason_required",
            errors=[{"path": "reason", "message": "Required."}],
        )
    revision_before = _revision(environment)
    plan = plan_rollback(flag, environment)
    if plan is not None and plan.motion is Motion.ROLLOUT:
        assert plan.rollout is not None
        return roll_back_rollout(rollout=plan.rollout, actor=actor, reason=reason, rehearsal=rehearsal)
    if plan is None or plan.motion in (Motion.SPLIT, Motion.PROMOTION):
        # Under the flag's row lock, then looked at again: two people rolling back a promotion
        # at once restore the baseline once. The flag's rollouts and experiments are locked
        # first: every lifecycle verb takes its rollout's (or experiment's) row before the
        # flag's, so a start racing this rollback waits for it or it for the start, never both
        # for each other.
        locked = _lock_moving(flag, environment)
        state = writable_state(flag, environment)
        plan = plan_rollback(flag, environment)
        if plan is None:
            serving = state.serving_version.number if state.serving_version else None
            raise nothing_to_roll_back(flag, environment, serving)
        moving = plan.rollout if plan.motion is Motion.ROLLOUT else plan.experiment
        if plan.motion in (Motion.ROLLOUT, Motion.EXPERIMENT) and moving not in locked:
            raise Conflict(
                f"A rollout or an experiment of '{flag.key}' started in '{environment.key}' while "
                "rolling back; nothing was applied. Roll back again.",
                code="rollback_raced",
            )
        if plan.motion is Motion.ROLLOUT:
            assert plan.rollout is not None
            return roll_back_rollout(rollout=plan.rollout, actor=actor, reason=reason, rehearsal=rehearsal)
    base: dict[str, Any] = {
        "flag": flag.key,
        "environment": environment.key,
        "motion": plan.motion.value,
        "reason": reason,
        "rehearsal": rehearsal,
    }
    state = FlagState.objects.select_related("flag", "environment").get(flag=flag, environment=environment)
    incident: int | None = None
    candidate: int | None = None
    split_id: str | None = None
    if plan.motion is Motion.EXPERIMENT:
        assert plan.experiment is not None
        split_id = f"split-{plan.experiment.split_id}" if plan.experiment.split_id else None
        experiments.abort_experiment(experiment=plan.experiment, actor=actor, reason=reason)
        incident = _announce(
            state=state,
            actor=actor,
            reason=reason,
            payload={**base, "experiment": plan.experiment.pk, "split": split_id},
            rehearsal=rehearsal,
        )
    elif plan.motion is Motion.SPLIT:
        assert plan.split is not None
        split_id = plan.split.split_id
        candidate = plan.split.candidate.number if plan.split.candidate else None
        clear_split(flag=flag, environment=environment, actor=actor, reason=reason)
        incident = _announce(
            state=state,
            actor=actor,
            reason=reason,
            payload={**base, "split": split_id, "candidate": candidate},
            rehearsal=rehearsal,
        )
    else:
        assert plan.rollout is not None
        candidate = plan.rollout.candidate.number
        with approvals.not_needed("rollback"):
            publish_version(
                flag=flag,
                environment=environment,
                number=plan.rollout.baseline.number,
                actor=actor,
                reason=f"rollback of rollout {plan.rollout.pk}'s promotion: {reason}",
            )
        incident = _announce(
            state=state,
            actor=actor,
            reason=reason,
            payload={
                **base,
                "rollout": plan.rollout.pk,
                "candidate": candidate,
                "restored": plan.rollout.baseline.number,
            },
            rehearsal=rehearsal,
        )
    return _record(
        plan,
        flag=flag,
        environment=environment,
        actor=actor,
        reason=reason,
        revision_before=revision_before,
        split_id=split_id,
        candidate=candidate,
        incident=incident,
        rehearsal=rehearsal,
    )


@transaction.atomic
def roll_back_rollout(
    *,
    rollout: Rollout,
    actor: Actor,
    reason: str,
    expected_version: int | None = None,
    evidence: dict[str, Any] | None = None,
    rehearsal: bool = False,
) -> RolledBack:
    """The rollout's motion of `roll_back`, and what the analysis tick applies when it decides to
    roll back (from the version it read at its claim, its decision as the evidence): either way
    the rollout is rolled back through its state machine, which locks the rollout's row before
    the flag's as every lifecycle verb does, and the `flag.rolled_back` entry is the same."""
    revision_before = _revision(rollout.environment)
    rollout = lifecycle.rollback_rollout(
        rollout=rollout,
        actor=actor,
        reason=reason,
        expected_version=expected_version,
        evidence=evidence,
        rehearsal=rehearsal,
    )
    return _record(
        _rollout_plan(rollout),
        flag=rollout.flag,
        environment=rollout.environment,
        actor=actor,
        reason=reason,
        revision_before=revision_before,
        split_id=f"split-{rollout.split_id}" if rollout.split_id else None,
        candidate=rollout.candidate.number,
        incident=None if rehearsal else rollout_incident(rollout),
        rehearsal=rehearsal,
    )


def _lock_moving(flag: Flag, environment: Environment) -> list[Rollout | Experiment]:
    """Lock the rollouts and experiments of `flag` in `environment` that have not ended."""
    rollouts = Rollout.objects.active().filter(flag=flag, environment=environment)
    trials = Experiment.objects.active().filter(flag=flag, environment=environment)
    return [
        *rollouts.select_for_update().order_by("pk"),
        *trials.select_for_update().order_by("pk"),
    ]


def _revision(environment: Environment) -> int:
    return Environment.objects.values_list("revision", flat=True).get(pk=environment.pk)


def _record(
    plan: RollbackPlan,
    *,
    flag: Flag,
    environment: Environment,
    actor: Actor,
    reason: str,
    revision_before: int,
    split_id: str | None,
    candidate: int | None,
    incident: int | None,
    rehearsal: bool,
) -> RolledBack:
    """What the motion did, kept as the `flag.rolled_back` audit entry every entry point leaves.
    The flag's row is locked without the archived check of other writes: a rollback (the tick's
    among them) still goes through on a flag archived while its canary ran."""
    state = lock_state(lock_flag(flag), environment)
    done = RolledBack(
        flag=flag.key,
        environment=environment.key,
        motion=plan.motion.value,
        summary=plan.summary,
        serving_version=state.serving_version.number if state.serving_version else None,
        rollout=plan.rollout.pk if plan.rollout else None,
        experiment=plan.experiment.pk if plan.experiment else None,
        split=split_id,
        candidate=candidate,
        revision_before=revision_before,
        revision_after=_revision(environment),
        incident=incident,
        rehearsal=rehearsal,
    )
    audit.record(
        actor=actor,
        action="flag.rolled_back",
        target=state,
        changes={key: value for key, value in done.as_dict().items() if key not in ("flag", "environment")},
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return done


def rollout_incident(rollout: Rollout) -> int | None:
    """The open rollback incident of the rollout's flag × environment (its rollback opened it, or
    one already open absorbed it)."""
    return (
        Incident.objects.open()
        .filter(kind=IncidentKind.ROLLOUT_ROLLED_BACK, flag=rollout.flag, environment=rollout.environment)
        .values_list("pk", flat=True)
        .first()
    )
