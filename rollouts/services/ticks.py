"""The analysis tick of a running rollout: claim it, read the stage's aggregates, decide, keep
the Decision, act through the state machine.

One decision per tick, however many workers run and wherever one is killed:
1. claim: `UPDATE ... SET next_tick_at = now + lease WHERE state = running AND next_tick_at
   <= now` (0 rows: another worker has it, or it is not due). The claim reads the rollout's
   version and tick count in the same transaction. A worker killed after claiming leaves the
   tick due again when the lease runs out, and the next claim decides the same tick number.
2. decide, holding no lock (the statistics are pure: rollouts/analysis.py).
3. record and act in one transaction: `UPDATE ... SET ticks_done = n WHERE ticks_done = n - 1`
   (0 rows: another worker decided this tick: roll back), the Decision row (unique per rollout
   and tick), then the action as a transition that compares and sets the version read at the
   claim. A person who moved the rollout meanwhile (a manual rollback) wins: the transition is
   refused and the Decision says so.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from controlplane.audit import Actor
from controlplane.errors import DomainError
from evals.live_scores import scoring_versions, scoring_versions_of
from flags.models import FlagState, Split
from rollouts import analysis, decision_records, stats
from rollouts.arm_aggregates import StageAggregates, Window, read_many_stage_aggregates, read_stage_aggregates
from rollouts.models import Decision, Guardrail, PauseReason, Rollout, Stage, StageGate
from rollouts.services import lifecycle, rollback

logger = logging.getLogger(__name__)

TICK_ACTOR = Actor.system("celery:tick_rollouts")
SWEEP_LIMIT = 200
# The analysis code's version, kept with every decision: the same inputs under the same code
# give the same decision.
ANALYSIS_VERSION = hashlib.sha256(
    (inspect.getsource(analysis) + inspect.getsource(stats)).encode()
).hexdigest()[:16]
# The deployed control plane's version (the package's), beside the analysis' own.
CODE_VERSION = importlib.metadata.version("flagstaff-controlplane")


@dataclass(frozen=True)
class TickResult:
    rollout_id: int
    tick: int
    action: str
    applied: bool
    outcome: str


def policy_of(rollout: Rollout, guardrails: list[Guardrail]) -> analysis.Policy:
    return analysis.Policy(
        guardrails=tuple(
            analysis.Guardrail(
                name=g.name,
                label=g.label,
                kind=analysis.Kind(g.kind),
                direction=analysis.Direction(g.direction),
                margin=g.margin,
                relative_margin=g.relative_margin,
                critical=g.critical,
                may_act=g.may_act,
                source=analysis.Source(g.source),
                quantile=g.quantile,
                cache_sensitive=g.cache_sensitive,
                unit=g.unit,
            )
            for g in guardrails
        ),
        alpha=rollout.alpha,
        alpha_critical=rollout.alpha_critical,
    )


def stage_of(stage: Stage) -> analysis.Stage:
    # Every analysed stage weighs at most 50 %, so its control band is as wide as the canary.
    return analysis.Stage(
        weight=stage.weight / 10_000,
        min_duration_seconds=stage.min_duration_seconds,
        max_duration_seconds=stage.max_duration_seconds,
        min_units_per_arm=stage.min_units_per_arm,
        min_judged_per_arm=stage.min_judged_per_arm,
        on_inconclusive=analysis.OnInconclusive(stage.on_inconclusive),
    )


def claim_tick(*, rollout_id: int, now: datetime) -> Rollout | None:
    """Claim the due tick of a running rollout for one lease; None when not due or taken."""
    lease = timedelta(seconds=settings.FLAGSTAFF_ROLLOUT_TICK_LEASE_SECONDS)
    with transaction.atomic():
        claimed = Rollout.objects.due_for_tick(now).filter(pk=rollout_id).update(next_tick_at=now + lease)
        if claimed != 1:
            return None
        return Rollout.objects.select_related("flag", "environment", "baseline", "candidate").get(
            pk=rollout_id
        )


def _traffic_moved(rollout: Rollout) -> str:
    """Why the rollout's traffic is no longer what it names ('' when it still is)."""
    state = FlagState.objects.current(rollout.flag, rollout.environment)
    active = Split.objects.active_for(rollout.flag, rollout.environment)
    return _moved(rollout, state.serving_version_id if state else None, active.pk if active else None)


def _moved(rollout: Rollout, serving_version_id: int | None, active_split_id: int | None) -> str:
    if serving_version_id != rollout.baseline_id:
        return f"'{rollout.environment.key}' no longer serves v{rollout.baseline.number}"
    if active_split_id != rollout.split_id:
        return "the rollout's split was cleared or replaced by hand"
    return ""


def _traffic_moved_of(rollouts: list[Rollout]) -> dict[int, str]:
    """`_traffic_moved` of many rollouts, with one query for the serving versions and one for
    the active splits."""
    flags = {rollout.flag_id for rollout in rollouts}
    environments = {rollout.environment_id for rollout in rollouts}
    serving = {
        (flag, environment): version
        for flag, environment, version in FlagState.objects.filter(
            flag_id__in=flags, environment_id__in=environments
        ).values_list("flag_id", "environment_id", "serving_version_id")
    }
    splits = {
        (flag, environment): split
        for flag, environment, split in Split.objects.active()
        .filter(flag_id__in=flags, environment_id__in=environments)
        .values_list("flag_id", "environment_id", "pk")
    }
    return {
        rollout.pk: _moved(
            rollout,
            serving.get((rollout.flag_id, rollout.environment_id)),
            splits.get((rollout.flag_id, rollout.environment_id)),
        )
        for rollout in rollouts
    }


def _effective_action(decision: analysis.Decision) -> analysis.Action:
    """The action to apply: an inconclusive stage does what the stage's `on_inconclusive` says."""
    if decision.action is not analysis.Action.INCONCLUSIVE:
        return decision.action
    return {
        analysis.OnInconclusive.PAUSE: analysis.Action.PAUSE,
        analysis.OnInconclusive.EXTEND: analysis.Action.HOLD,
        analysis.OnInconclusive.ADVANCE: analysis.Action.PROMOTE,
    }[decision.on_inconclusive]


def _act(rollout: Rollout, stage: Stage, decision: analysis.Decision, version: int) -> str:
    """Apply the decision as a transition from `version`; what was done, '' for nothing."""
    evidence = {"reason": decision.reason.value, "explanation": decision.explanation}
    action = _effective_action(decision)
    if action is analysis.Action.PROMOTE and stage.gate == StageGate.APPROVAL:
        lifecycle.pause_rollout(
            rollout=rollout,
            actor=TICK_ACTOR,
            reason=decision.explanation,
            pause_reason=PauseReason.AWAITING_APPROVAL,
            expected_version=version,
            changes=evidence,
        )
        return "paused for approval"
    if action is analysis.Action.PROMOTE:
        lifecycle.promote_rollout(
            rollout=rollout,
            actor=TICK_ACTOR,
            reason=decision.explanation,
            stage=stage.index,
            expected_version=version,
            changes=evidence,
        )
        return "promoted"
    if action is analysis.Action.ROLLBACK:
        # The one-motion rollback's path, so that its `flag.rolled_back` entry is the same as
        # a person's.
        rollback.roll_back_rollout(
            rollout=rollout,
            actor=TICK_ACTOR,
            reason=decision.explanation,
            expected_version=version,
            evidence=evidence,
        )
        return "rolled back"
    if action is analysis.Action.PAUSE:
        pause_reason = {
            analysis.Reason.HEALTH_CHECK_FAILED: PauseReason.HEALTH_CHECK_FAILED,
            analysis.Reason.SCORER_ERRORS: PauseReason.SCORER_ERRORS,
        }.get(decision.reason, PauseReason.INCONCLUSIVE)
        lifecycle.pause_rollout(
            rollout=rollout,
            actor=TICK_ACTOR,
            reason=decision.explanation,
            pause_reason=pause_reason,
            expected_version=version,
            changes=evidence,
        )
        return f"paused ({pause_reason})"
    return ""


def tick_rollout(*, rollout_id: int, now: datetime | None = None) -> TickResult | None:
    """Run one tick of a rollout if it is due and this worker claims it; None otherwise.

    Idempotency key: (rollout, tick number) — the conditional UPDATE of `ticks_done` and the
    unique Decision make a second worker's decision of the same tick roll back.
    """
    now = now or timezone.now()
    rollout = claim_tick(rollout_id=rollout_id, now=now)
    return None if rollout is None else decide_tick(rollout=rollout, now=now)


def decide_tick(
    *,
    rollout: Rollout,
    now: datetime,
    aggregates: StageAggregates | None = None,
    moved: str | None = None,
    live_scoring: dict[str, Any] | None = None,
) -> TickResult | None:
    """Decide and act on the tick `claim_tick` gave this worker (`rollout` as read at the claim;
    `aggregates`, `moved` and `live_scoring`, when given, already read for it by a sweep).

    None when another worker decided this tick first (its lease ran out on this one).
    """
    version, tick = rollout.version, rollout.ticks_done + 1
    if moved is None:
        moved = _traffic_moved(rollout)
    if moved:
        try:
            lifecycle.supersede_rollout(
                rollout=rollout, actor=TICK_ACTOR, reason=moved, expected_version=version
            )
        except DomainError as refused:
            return TickResult(rollout.pk, tick, "supersede", False, refused.detail)
        return TickResult(rollout.pk, tick, "supersede", True, moved)
    return record_tick(
        analyse_tick(rollout=rollout, now=now, aggregates=aggregates, live_scoring=live_scoring)
    )


@dataclass(frozen=True)
class Analysed:
    """A tick's decision before it is recorded, with what it was decided on."""

    rollout: Rollout
    stage: Stage
    decision: analysis.Decision
    inputs: dict[str, Any]
    now: datetime


def _stage_and_guardrails(rollout: Rollout) -> tuple[Stage, list[Guardrail]]:
    """The current stage and the policy, from `prefetch_related` when the caller made it."""
    stage = next(s for s in rollout.stages.all() if s.index == rollout.stage_index)
    return stage, sorted(rollout.guardrails.all(), key=lambda guardrail: guardrail.pk)


def _window(rollout: Rollout, now: datetime) -> Window:
    stage, guardrails = _stage_and_guardrails(rollout)
    return Window.of_rollout(rollout, guardrails, stage.started_at or now, now)


def analyse_tick(
    *,
    rollout: Rollout,
    now: datetime,
    aggregates: StageAggregates | None = None,
    live_scoring: dict[str, Any] | None = None,
) -> Analysed:
    """Read the stage's aggregates and what live scoring judges with (unless given) and decide;
    holds no lock and writes nothing but the aggregates' checkpoint."""
    stage, guardrails = _stage_and_guardrails(rollout)
    scorers = {g.scorer for g in guardrails if g.scorer}
    started = stage.started_at or now
    if aggregates is None:
        aggregates = read_stage_aggregates(rollout=rollout, guardrails=guardrails, since=started, until=now)
    if scorers and live_scoring is None:
        live_scoring = scoring_versions(rollout.flag, rollout.environment)
    decision = analysis.decide(
        policy=policy_of(rollout, guardrails),
        stage=stage_of(stage),
        canary=aggregates.canary,
        control=aggregates.control,
        elapsed_seconds=(now - started).total_seconds(),
        previous=decision_records.tick_state_from_json(rollout.tick_state or {}),
    )
    inputs = {
        "window": {"since": started.isoformat(), "until": now.isoformat()},
        "stage": {"index": stage.index, "weight": stage.weight, "gate": stage.gate},
        "baseline": rollout.baseline.number,
        "candidate": rollout.candidate.number,
        "rollout_version": rollout.version,
        "analysis_version": ANALYSIS_VERSION,
        "code_version": CODE_VERSION,
        "scorers": sorted(scorers),
        "live_scoring": live_scoring if scorers else None,
        "counters": aggregates.counters,
        "canary": decision_records.arm_json(aggregates.canary),
        "control": decision_records.arm_json(aggregates.control),
    }
    return Analysed(rollout, stage, decision, inputs, now)


def record_tick(analysed: Analysed) -> TickResult | None:
    """Keep the tick's Decision and act on it from the version read at the claim; None when
    another worker decided this tick first."""
    rollout, stage, decision, inputs, now = (
        analysed.rollout,
        analysed.stage,
        analysed.decision,
        analysed.inputs,
        analysed.now,
    )
    version, tick = rollout.version, rollout.ticks_done + 1
    with transaction.atomic():
        recorded = Rollout.objects.filter(pk=rollout.pk, ticks_done=tick - 1).update(
            ticks_done=F("ticks_done") + 1,
            tick_state=decision_records.tick_state_json(decision.state),
            next_tick_at=now + timedelta(seconds=rollout.tick_interval_seconds),
        )
        if recorded != 1:
            return None  # another worker decided this tick after our lease ran out
        if _effective_action(decision) in (analysis.Action.HOLD, analysis.Action.EXTEND):
            outcome, applied = "", True  # nothing to apply (and no savepoint to pay for)
        else:
            try:
                with transaction.atomic():
                    outcome, applied = _act(rollout, stage, decision, version), True
            except DomainError as refused:
                outcome, applied = f"refused: {refused.detail}", False
        Decision.objects.create(
            rollout=rollout,
            stage=stage,
            tick=tick,
            action=decision.action.value,
            reason=decision.reason.value,
            explanation=decision.explanation,
            inputs=inputs,
            inputs_hash=decision_records.inputs_hash(inputs),
            metrics=decision_records.decision_metrics_json(decision),
            srm_p_value=decision_records.finite(decision.srm_p_value),
            alpha=decision.alpha,
            alpha_critical=decision.alpha_critical,
            applied=applied,
            outcome=outcome[:200],
        )
    logger.info(
        "rollout tick",
        extra={"rollout": rollout.pk, "tick": tick, "action": decision.action.value, "applied": applied},
    )
    return TickResult(rollout.pk, tick, decision.action.value, applied, outcome)


def claim_due_ticks(*, now: datetime, limit: int = SWEEP_LIMIT) -> list[Rollout]:
    """Claim the due ticks of up to `limit` running rollouts for one lease, at once: what
    `claim_tick` does for one. Rows another worker is claiming are skipped (SKIP LOCKED on
    PostgreSQL; SQLite's transactions are serialised), and the update repeats the due test."""
    lease = timedelta(seconds=settings.FLAGSTAFF_ROLLOUT_TICK_LEASE_SECONDS)
    with transaction.atomic():
        due = list(
            Rollout.objects.due_for_tick(now)
            .order_by("next_tick_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        Rollout.objects.due_for_tick(now).filter(pk__in=due).update(next_tick_at=now + lease)
    return list(
        Rollout.objects.select_related("flag", "environment", "baseline", "candidate")
        .prefetch_related("stages", "guardrails")
        .filter(pk__in=due)
        .order_by("pk")
    )


def tick_due_rollouts(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Tick every running rollout that is due; the number of ticks this worker decided.

    Claimed together, and their aggregates and live scoring versions read together (one query
    per table for them all), so that a sweep's cost grows with the number of rollouts, not
    queries per rollout; then each is decided and recorded in its own transaction, as `tick_rollout` does."""
    now = now or timezone.now()
    claimed = claim_due_ticks(now=now, limit=limit)
    done: set[int] = set()
    try:
        aggregates = read_many_stage_aggregates([_window(rollout, now) for rollout in claimed])
        moved = _traffic_moved_of(claimed)
        live_scoring = scoring_versions_of([(rollout.flag, rollout.environment) for rollout in claimed])
        decided = 0
        for rollout in claimed:
            key = (rollout.flag_id, rollout.environment_id)
            result = decide_tick(
                rollout=rollout,
                now=now,
                aggregates=aggregates[key],
                moved=moved[rollout.pk],
                live_scoring=live_scoring[key],
            )
            done.add(rollout.pk)
            decided += result is not None
    except Exception:
        _release_claims([rollout.pk for rollout in claimed if rollout.pk not in done], now=now)
        raise
    return decided


def _release_claims(rollout_ids: list[int], *, now: datetime) -> None:
    """Hand back the leases of ticks a failed sweep did not decide, so that the next sweep
    (seconds later) retries them instead of waiting out the lease: a transient error (a locked
    SQLite file, a dropped connection) must not hold a rollback back for minutes. The lease is
    for a worker that dies, which can hand back nothing. Conditional on the lease still being
    this sweep's; best effort, as the database may be what failed."""
    lease = timedelta(seconds=settings.FLAGSTAFF_ROLLOUT_TICK_LEASE_SECONDS)
    try:
        Rollout.objects.filter(pk__in=rollout_ids, next_tick_at=now + lease).update(next_tick_at=now)
    except Exception:
        logger.exception("could not hand back the tick leases of rollouts %s", rollout_ids)
