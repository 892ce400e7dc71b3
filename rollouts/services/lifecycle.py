"""A rollout's life: creation, and every transition of its state machine.

    Draft -> Ready -> Running(stage k) <-> Paused -> Promoted | RolledBack | Aborted | Superseded

Every transition goes through `_transition`, which is an `UPDATE ... WHERE version = <read>`
that bumps the version: when it changes no row, someone else (a person, or a tick on another
worker) moved the rollout since it was read, and the caller's transition is refused rather than
applied a second time. The traffic side effects (the flag's split, publishing the candidate)
run after the compare-and-set in the same transaction, so a refused transition changes nothing.

Every verb takes a reason and is idempotent: asking for the state the rollout is already in
answers it as it stands. Rollback never waits on an analysis or a gate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags.models import ConfigVersion, Environment, Flag, FlagState, Split
from flags.services import preconditions
from flags.services.approvals import require_approval
from flags.services.guards import require_reason, writable_state
from flags.services.publishing import publish_version
from flags.services.splits import clear_split, set_split
from flagstaff.engine import BUCKETS
from rollouts import plans
from rollouts.analysis import Source
from rollouts.models import (
    TERMINAL_STATES,
    Experiment,
    Guardrail,
    PauseReason,
    ReplayPolicy,
    Rollout,
    RolloutState,
    Stage,
    StageState,
)
from rollouts.services.approvals import promote_change, start_change
from rollouts.services.checklist import require_checklist
from telemetry.budgets import LATENCY_KEYS
from telemetry.models.incidents import IncidentKind, WebhookEvent
from telemetry.services.incidents import budgets_for, open_incident
from telemetry.services.webhooks import enqueue_event

logger = logging.getLogger(__name__)

S = RolloutState
# (from, to) pairs the state machine allows; Running -> Running is a stage advancing.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        (S.DRAFT, S.READY),
        (S.DRAFT, S.ABORTED),
        (S.DRAFT, S.SUPERSEDED),
        (S.READY, S.RUNNING),
        (S.READY, S.ABORTED),
        (S.READY, S.SUPERSEDED),
        (S.RUNNING, S.RUNNING),
        (S.RUNNING, S.PAUSED),
        (S.RUNNING, S.PROMOTED),
        (S.RUNNING, S.ROLLED_BACK),
        (S.RUNNING, S.ABORTED),
        (S.RUNNING, S.SUPERSEDED),
        (S.PAUSED, S.RUNNING),
        (S.PAUSED, S.PROMOTED),
        (S.PAUSED, S.ROLLED_BACK),
        (S.PAUSED, S.ABORTED),
        (S.PAUSED, S.SUPERSEDED),
    }
)


# What `compare_and_set` moves: both keep a state, a version column and the same timestamps.
Transitioned = TypeVar("Transitioned", Rollout, Experiment)


class RolloutMoved(Conflict):
    """The compare-and-set found another version: someone else moved the rollout first."""

    code = "rollout_moved"


def rollout_payload(rollout: Rollout) -> dict[str, Any]:
    """What webhooks and the audit log say about a rollout."""
    return {
        "id": rollout.pk,
        "flag": rollout.flag.key,
        "environment": rollout.environment.key,
        "baseline": rollout.baseline.number,
        "candidate": rollout.candidate.number,
        "state": rollout.state,
        "pause_reason": rollout.pause_reason,
        "stage": rollout.stage_index,
        "version": rollout.version,
    }


def _refuse(rollout: Rollout, verb: str) -> Conflict:
    return Conflict(
        f"Rollout {rollout.pk} is {rollout.get_state_display().lower()}; it cannot {verb}.",
        code="invalid_transition",
        extra={"state": rollout.state},
    )


def _transition(
    rollout: Rollout,
    *,
    to: str,
    expected_version: int,
    actor: Actor,
    action: str,
    reason: str,
    changes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Rollout:
    """Move `rollout` to `to` if its version is still `expected_version`; audit it.

    The one place a rollout's state, stage or version changes. RolloutMoved when the version
    moved (0 rows updated): the caller's view of the rollout is stale.
    """
    if (rollout.state, to) not in ALLOWED:
        raise _refuse(rollout, action.rsplit(".", 1)[-1])
    return compare_and_set(
        rollout,
        to=to,
        expected_version=expected_version,
        terminal_states=TERMINAL_STATES,
        moved=RolloutMoved,
        actor=actor,
        action=action,
        reason=reason,
        changes=changes,
        **fields,
    )


def compare_and_set(
    target: Transitioned,
    *,
    to: str,
    expected_version: int,
    terminal_states: Iterable[str],
    moved: type[Conflict],
    actor: Actor,
    action: str,
    reason: str,
    changes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Transitioned:
    """Move a rollout or an experiment to `to` if its version is still `expected_version`, and
    audit it; `moved` (0 rows updated) when the caller's view of it is stale."""
    now = timezone.now()
    update: dict[str, Any] = {"state": to, "version": expected_version + 1, "updated_at": now, **fields}
    update.setdefault("pause_reason", "")
    if to in terminal_states:
        update["ended_at"] = now
        update["next_tick_at"] = None
    if type(target).objects.filter(pk=target.pk, version=expected_version).update(**update) != 1:
        raise moved(
            f"{type(target).__name__} {target.pk} changed since it was read (version {expected_version}); "
            "nothing was applied. Read it again.",
            extra={"expected_version": expected_version},
        )
    before = target.state
    for name, value in update.items():
        setattr(target, name, value)
    audit.record(
        actor=actor,
        action=action,
        target=target,
        changes={"state": {"before": before, "after": to}, "version": target.version, **(changes or {})},
        reason=reason,
        flag_key=target.flag.key,
        environment_key=target.environment.key,
    )
    return target


def _fresh(rollout: Rollout) -> Rollout:
    """The rollout as committed, its row locked until the caller's transaction ends.

    The lock makes a verb wait for a tick that is recording its decision, then read what the
    tick committed: a person's rollback issued while a tick promotes applies after the
    promotion instead of failing its compare-and-set against a version it never saw.
    """
    return (
        Rollout.objects.select_related("flag", "environment", "baseline", "candidate", "split")
        .select_for_update(of=("self",))
        .get(pk=rollout.pk)
    )


def _move_to(
    rollout: Rollout,
    *,
    to: str,
    actor: Actor,
    action: str,
    reason: str,
    expected_version: int | None,
    changes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[Rollout, bool]:
    """The preamble of pause, rollback and abort: read the rollout afresh; answer it as it stands
    when it already is in `to` and the caller named no version (a person repeating a verb);
    otherwise move it from `expected_version` (a tick: the version it read at its claim) or
    from the version just read. Returns the rollout and whether it moved."""
    rollout = _fresh(rollout)
    if rollout.state == to and expected_version is None:
        return rollout, False
    _transition(
        rollout,
        to=to,
        expected_version=rollout.version if expected_version is None else expected_version,
        actor=actor,
        action=action,
        reason=reason,
        changes={"stage": rollout.stage_index, **(changes or {})},
        **fields,
    )
    return rollout, True


def _stages(rollout: Rollout) -> list[Stage]:
    return list(rollout.stages.order_by("index"))


def _our_split(rollout: Rollout) -> Split | None:
    """The flag's active split when it is this rollout's (None when cleared or replaced by hand)."""
    active = Split.objects.active_for(rollout.flag, rollout.environment)
    return active if active is not None and active.pk == rollout.split_id else None


def _end_stage(rollout: Rollout, state: str) -> None:
    rollout.stages.filter(index=rollout.stage_index, ended_at__isnull=True).update(
        state=state, ended_at=timezone.now()
    )


# Creation


@dataclass(frozen=True, slots=True)
class Plan:
    stages: list[plans.StageSpec]
    guardrails: list[plans.GuardrailSpec]


def _live_scorer_keys(flag: Flag) -> list[str]:
    policy = getattr(flag, "live_scoring_policy", None)
    if policy is None or not policy.enabled:
        return []
    return [str(spec.get("key") or spec.get("name")) for spec in policy.scorers if isinstance(spec, dict)]


def _plan(
    flag: Flag, stages: Sequence[Mapping[str, Any]] | None, policy: Sequence[Mapping[str, Any]] | None
) -> Plan:
    if stages is None:
        stage_specs = list(plans.DEFAULT_STAGES)
    else:
        stage_specs, problems = plans.clean_stages(stages)
        if problems:
            raise InvalidInput("The stages are not valid.", code="invalid_stages", errors=problems)
    if policy is None:
        budgets = budgets_for(flag)
        guardrails = plans.default_guardrails(
            latency_budgets_ms={key: budgets.latency(key) for key in LATENCY_KEYS},
            scorers=_live_scorer_keys(flag),
        )
    else:
        guardrails, problems = plans.clean_guardrails(policy)
        if problems:
            uncomputable = any(p["path"].endswith((".metric", ".kind")) for p in problems)
            raise InvalidInput(
                "The policy names a metric that cannot be computed."
                if uncomputable
                else "The policy is not valid.",
                code="metric_not_computable" if uncomputable else "invalid_policy",
                errors=problems,
            )
    return Plan(stage_specs, guardrails)


def _gate_admits(flag: Flag, environment: Environment, candidate: ConfigVersion) -> bool:
    change = preconditions.ServingChange(
        flag=flag, environment=environment, version=candidate, action="split"
    )
    return all(outcome.met for outcome in preconditions.evaluate(change))


def _refuse_second(flag: Flag, environment: Environment) -> Conflict:
    active = Rollout.objects.active().filter(flag=flag, environment=environment).first()
    return Conflict(
        f"Flag '{flag.key}' already has an active rollout in '{environment.key}'"
        + (f" (rollout {active.pk}, {active.state})." if active else "."),
        code="rollout_active",
        extra={"rollout": active.pk if active else None},
    )


@transaction.atomic
def create_rollout(
    *,
    flag: Flag,
    environment: Environment,
    candidate: int,
    actor: Actor,
    stages: Sequence[Mapping[str, Any]] | None = None,
    policy: Sequence[Mapping[str, Any]] | None = None,
    tick_interval_seconds: int | None = None,
    paired_replay_scorer: str = "",
    reason: str = "",
) -> Rollout:
    """A rollout of version `candidate` against what `environment` serves: Ready when the
    candidate's gate admits it already (a passing verdict or an override), Draft otherwise.
    `paired_replay_scorer` adds a paired-replay guardrail on that live scorer to the policy.
    In a protected environment it needs a reason, as every change to what it serves does."""
    require_reason(environment, reason)
    state = writable_state(flag, environment)
    if state.serving_version is None:
        raise Conflict(
            f"Flag '{flag.key}' has no published version in '{environment.key}'; publish one first.",
            code="nothing_published",
        )
    version = ConfigVersion.objects.filter(flag=flag, number=candidate).first()
    if version is None:
        raise InvalidInput(
            f"Flag '{flag.key}' has no version {candidate}.",
            code="unknown_version",
            errors=[{"path": "candidate", "message": f"flag '{flag.key}' has no version {candidate}"}],
        )
    if version.pk == state.serving_version_id:
        raise InvalidInput(
            f"v{candidate} is what '{environment.key}' already serves; a rollout needs another version.",
            code="candidate_is_baseline",
            errors=[{"path": "candidate", "message": "must differ from the serving version"}],
        )
    interval = (
        settings.FLAGSTAFF_ROLLOUT_TICK_SECONDS if tick_interval_seconds is None else tick_interval_seconds
    )
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise InvalidInput(
            "The tick interval is a whole number of seconds, at least 1.",
            errors=[{"path": "tick_interval_seconds", "message": "must be a whole number of at least 1"}],
        )
    plan = _plan(flag, stages, policy)
    if paired_replay_scorer:
        paired = plans.paired_guardrail(paired_replay_scorer)
        if any(g.name == paired.name for g in plan.guardrails):
            raise InvalidInput(
                f"The policy already has the guardrail '{paired.name}'.",
                code="invalid_policy",
                errors=[{"path": "paired_replay_scorer", "message": "already in the policy"}],
            )
        plan = Plan(plan.stages, [*plan.guardrails, paired])
    if Rollout.objects.active().filter(flag=flag, environment=environment).exists():
        raise _refuse_second(flag, environment)
    # At most one active rollout or experiment per flag × environment: both creations hold the
    # flag's row lock (writable_state) while they look.
    experiment = Experiment.objects.active().filter(flag=flag, environment=environment).first()
    if experiment is not None:
        raise Conflict(
            f"Flag '{flag.key}' has an active experiment in '{environment.key}' "
            f"(experiment {experiment.pk}).",
            code="experiment_active",
            extra={"experiment": experiment.pk},
        )
    admitted = _gate_admits(flag, environment, version)
    try:
        # A savepoint: a concurrent creation that won the partial unique index must not poison
        # the caller's transaction.
        with transaction.atomic():
            rollout = Rollout.objects.create(
                flag=flag,
                environment=environment,
                baseline=state.serving_version,
                candidate=version,
                state=RolloutState.DRAFT,
                tick_interval_seconds=interval,
                created_by_name=actor.name,
            )
    except IntegrityError:
        raise _refuse_second(flag, environment) from None
    Stage.objects.bulk_create(
        Stage(rollout=rollout, index=index, **plans.stage_fields(spec))
        for index, spec in enumerate(plan.stages)
    )
    Guardrail.objects.bulk_create(
        Guardrail(rollout=rollout, **plans.guardrail_fields(g)) for g in plan.guardrails
    )
    if any(g.source == Source.PAIRED_REPLAY.value for g in plan.guardrails):
        # A paired guardrail needs pairs: its replay is on, at the default rate and budget,
        # until set otherwise (rollouts/services/paired_replay.py).
        ReplayPolicy.objects.create(rollout=rollout)
    audit.record(
        actor=actor,
        action="rollout.created",
        target=rollout,
        changes={
            "baseline": state.serving_version.number,
            "candidate": version.number,
            "stages": [plans.stage_fields(spec) for spec in plan.stages],
            "policy": [plans.guardrail_fields(g) for g in plan.guardrails],
            "tick_interval_seconds": interval,
        },
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    if admitted:
        _transition(
            rollout,
            to=S.READY,
            expected_version=rollout.version,
            actor=actor,
            action="rollout.ready",
            reason="the candidate's gate admits it",
        )
    return rollout


# Verbs


def _checklist_record(board: Any) -> dict[str, Any]:
    """What the start's audit entry keeps of the checklist: the items waived and attested."""
    return {
        "waived": [row.item.key for row in board.rows if row.waiver is not None],
        "attested": [row.item.key for row in board.rows if row.attestation is not None],
    }


def _baseline_still_serves(rollout: Rollout, state: FlagState) -> bool:
    return state.serving_version_id == rollout.baseline_id


@transaction.atomic
def start_rollout(*, rollout: Rollout, actor: Actor, reason: str = "") -> Rollout:
    """Serve the candidate to the first stage's share: needs the candidate's gate (a passing
    verdict or an audited override), asked again here, the baseline still serving, and, unless
    the candidate's content is the baseline's, every required checklist item green or waived
    and where the environment requires four eyes an Approver other than the author
    (flags/services/approvals.py)."""
    rollout = _fresh(rollout)
    if rollout.state in (S.RUNNING, S.PAUSED):
        return rollout
    if rollout.state not in (S.DRAFT, S.READY):
        raise _refuse(rollout, "start")
    state = writable_state(rollout.flag, rollout.environment)
    if not _baseline_still_serves(rollout, state):
        raise Conflict(
            f"'{rollout.environment.key}' no longer serves v{rollout.baseline.number}; create a new rollout.",
            code="baseline_changed",
        )
    outcomes = preconditions.require(
        preconditions.ServingChange(
            flag=rollout.flag, environment=rollout.environment, version=rollout.candidate, action="split"
        )
    )
    active = Split.objects.active_for(rollout.flag, rollout.environment)
    if active is not None and active.candidate_id != rollout.candidate_id:
        raise Conflict(
            f"Flag '{rollout.flag.key}' already splits '{rollout.environment.key}' with "
            f"{f'v{active.candidate.number}' if active.candidate else 'an experiment'}; "
            "clear that split first.",
            code="split_active",
        )
    checklist: dict[str, Any] = {"no_op": True}
    if rollout.candidate.content_hash != rollout.baseline.content_hash:
        # The checklist first: a change an Approver is asked to approve should be one that can
        # start. A candidate with the baseline's very content (a rollback rehearsal's canary)
        # changes nothing the checklist guards or an Approver would judge.
        checklist = _checklist_record(require_checklist(rollout))
        require_approval(change=start_change(rollout, reason), actor=actor)
    if rollout.state == S.DRAFT:
        _transition(
            rollout,
            to=S.READY,
            expected_version=rollout.version,
            actor=actor,
            action="rollout.ready",
            reason="the candidate's gate admits it",
            changes={"preconditions": [outcome.as_dict() for outcome in outcomes]},
        )
    first = _stages(rollout)[0]
    now = timezone.now()
    _transition(
        rollout,
        to=S.RUNNING,
        expected_version=rollout.version,
        actor=actor,
        action="rollout.started",
        reason=reason,
        changes={"stage": 0, "weight": first.weight, "checklist": checklist},
        stage_index=0,
        next_tick_at=now,
    )
    split = set_split(
        flag=rollout.flag,
        environment=rollout.environment,
        candidate=rollout.candidate.number,
        weight=first.weight,
        actor=actor,
        reason=f"rollout {rollout.pk}: stage 0",
    )
    Rollout.objects.filter(pk=rollout.pk).update(split=split)
    rollout.split = split
    Stage.objects.filter(pk=first.pk).update(state=StageState.ANALYZING, started_at=now)
    return rollout


@transaction.atomic
def pause_rollout(
    *,
    rollout: Rollout,
    actor: Actor,
    reason: str = "",
    pause_reason: str = PauseReason.MANUAL,
    expected_version: int | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Rollout:
    """Hold the rollout at its stage (traffic stays as it is); the ticks stop until resumed."""
    rollout, moved = _move_to(
        rollout,
        to=S.PAUSED,
        actor=actor,
        action="rollout.paused",
        reason=reason,
        expected_version=expected_version,
        changes={"pause_reason": pause_reason, **(changes or {})},
        pause_reason=pause_reason,
    )
    if not moved:
        return rollout
    enqueue_event(event=WebhookEvent.ROLLOUT_PAUSED, payload={**rollout_payload(rollout), "reason": reason})
    return rollout


@transaction.atomic
def resume_rollout(*, rollout: Rollout, actor: Actor, reason: str = "") -> Rollout:
    """Run the paused stage again; its analysis ticks at once, on everything since it started."""
    rollout = _fresh(rollout)
    if rollout.state == S.RUNNING:
        return rollout
    if rollout.state != S.PAUSED:
        raise _refuse(rollout, "resume")
    return _transition(
        rollout,
        to=S.RUNNING,
        expected_version=rollout.version,
        actor=actor,
        action="rollout.resumed",
        reason=reason,
        changes={"stage": rollout.stage_index},
        next_tick_at=timezone.now(),
    )


@transaction.atomic
def promote_rollout(
    *,
    rollout: Rollout,
    actor: Actor,
    reason: str = "",
    stage: int | None = None,
    expected_version: int | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Rollout:
    """Move the candidate to the next stage's weight (same split, same seed: nested), or, from
    the last analysed stage, make it the serving version, which clears the split.

    `stage` names the stage being promoted from: repeating a promotion of a stage already
    left answers the rollout as it stands instead of promoting twice.
    """
    rollout = _fresh(rollout)
    from_stage = rollout.stage_index if stage is None else stage
    already = rollout.state == S.PROMOTED or (
        rollout.state in (S.RUNNING, S.PAUSED) and from_stage < rollout.stage_index
    )
    if already and expected_version is None:
        return rollout
    if rollout.state not in (S.RUNNING, S.PAUSED):
        raise _refuse(rollout, "be promoted")
    if from_stage != rollout.stage_index:
        raise InvalidInput(
            f"Rollout {rollout.pk} is at stage {rollout.stage_index}, not {from_stage}.",
            code="wrong_stage",
            errors=[{"path": "stage", "message": f"the rollout is at stage {rollout.stage_index}"}],
        )
    # A person's promotion needs four eyes where the environment asks for them; the analysis's
    # own promotions (a system actor) belong to the rollout that was approved when it started.
    require_approval(change=promote_change(rollout, from_stage, reason), actor=actor)
    version = rollout.version if expected_version is None else expected_version
    stages = _stages(rollout)
    following = stages[rollout.stage_index + 1] if rollout.stage_index + 1 < len(stages) else None
    now = timezone.now()
    if following is None or following.weight == BUCKETS:
        _transition(
            rollout,
            to=S.PROMOTED,
            expected_version=version,
            actor=actor,
            action="rollout.promoted",
            reason=reason,
            changes={"from_stage": rollout.stage_index, **(changes or {})},
        )
        _end_stage(rollout, StageState.PASSED)
        if following is not None:
            Stage.objects.filter(pk=following.pk).update(
                state=StageState.PASSED, started_at=now, ended_at=now
            )
        publish_version(
            flag=rollout.flag,
            environment=rollout.environment,
            number=rollout.candidate.number,
            actor=actor,
            reason=f"rollout {rollout.pk} promoted",
        )
        enqueue_event(
            event=WebhookEvent.ROLLOUT_PROMOTED, payload={**rollout_payload(rollout), "reason": reason}
        )
        return rollout
    left = rollout.stage_index
    _transition(
        rollout,
        to=S.RUNNING,
        expected_version=version,
        actor=actor,
        action="rollout.stage_advanced",
        reason=reason,
        changes={
            "from_stage": left,
            "to_stage": following.index,
            "weight": following.weight,
            **(changes or {}),
        },
        stage_index=following.index,
        tick_state={},
        next_tick_at=now,
    )
    Stage.objects.filter(rollout=rollout, index=left).update(state=StageState.PASSED, ended_at=now)
    Stage.objects.filter(pk=following.pk).update(state=StageState.ANALYZING, started_at=now)
    set_split(
        flag=rollout.flag,
        environment=rollout.environment,
        candidate=rollout.candidate.number,
        weight=following.weight,
        actor=actor,
        reason=f"rollout {rollout.pk}: stage {following.index}",
    )
    enqueue_event(
        event=WebhookEvent.ROLLOUT_STEP_COMPLETED,
        payload={**rollout_payload(rollout), "completed_stage": left, "reason": reason},
    )
    return rollout


def _take_candidate_off(rollout: Rollout, actor: Actor, why: str) -> str | None:
    """Clear the rollout's split if it is still the flag's active one; its id, or None."""
    if _our_split(rollout) is None:
        return None
    cleared = clear_split(flag=rollout.flag, environment=rollout.environment, actor=actor, reason=why)
    return cleared.split_id if cleared else None


@transaction.atomic
def rollback_rollout(
    *,
    rollout: Rollout,
    actor: Actor,
    reason: str = "",
    expected_version: int | None = None,
    evidence: Mapping[str, Any] | None = None,
    rehearsal: bool = False,
) -> Rollout:
    """Take the candidate off traffic in one motion: the split cleared (one revision bump), an
    incident opened, the webhook queued. Waits on no analysis and no gate. People and services
    reach it through rollouts.services.rollback.roll_back; `rehearsal` (a rollback rehearsal's
    own canary) opens no incident and marks the webhook."""
    rollout, moved = _move_to(
        rollout,
        to=S.ROLLED_BACK,
        actor=actor,
        action="rollout.rolled_back",
        reason=reason,
        expected_version=expected_version,
        changes={"evidence": dict(evidence)} if evidence else None,
    )
    if not moved:
        return rollout
    _end_stage(rollout, StageState.FAILED)
    split_id = _take_candidate_off(rollout, actor, f"rollout {rollout.pk} rolled back")
    state = FlagState.objects.get(flag=rollout.flag, environment=rollout.environment)
    payload = {
        **rollout_payload(rollout),
        "reason": reason,
        "split_cleared": split_id,
        "rehearsal": rehearsal,
    }
    if not rehearsal:
        open_incident(
            kind=IncidentKind.ROLLOUT_ROLLED_BACK,
            state=state,
            summary=f"Rollout {rollout.pk} of v{rollout.candidate.number} rolled back: {reason}",
            evidence={**payload, **({"decision": dict(evidence)} if evidence else {})},
            actor=actor,
        )
    enqueue_event(event=WebhookEvent.ROLLOUT_ROLLED_BACK, payload=payload)
    return rollout


@transaction.atomic
def abort_rollout(*, rollout: Rollout, actor: Actor, reason: str = "") -> Rollout:
    """Give the rollout up: the candidate off traffic if it was on, no incident."""
    rollout, moved = _move_to(
        rollout, to=S.ABORTED, actor=actor, action="rollout.aborted", reason=reason, expected_version=None
    )
    if not moved:
        return rollout
    if rollout.split_id is not None:
        _end_stage(rollout, StageState.INCONCLUSIVE)
    split_id = _take_candidate_off(rollout, actor, f"rollout {rollout.pk} aborted")
    enqueue_event(
        event=WebhookEvent.ROLLOUT_ABORTED,
        payload={**rollout_payload(rollout), "reason": reason, "split_cleared": split_id},
    )
    return rollout


@transaction.atomic
def supersede_rollout(*, rollout: Rollout, actor: Actor, reason: str, expected_version: int) -> Rollout:
    """End a rollout whose traffic was changed under it (its split cleared or replaced, or
    another version published by hand): its analysis no longer compares what it names."""
    rollout = _fresh(rollout)
    return _transition(
        rollout,
        to=S.SUPERSEDED,
        expected_version=expected_version,
        actor=actor,
        action="rollout.superseded",
        reason=reason,
    )
