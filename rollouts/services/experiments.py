"""An experiment's life: creation, its state machine, its conclusion and the winner's canary.

    Draft -> Running <-> Paused -> Concluded | Aborted | Superseded

As with rollouts (lifecycle.py), every transition is an `UPDATE ... WHERE version = <read>`
that bumps the version, so two workers, or a worker and a person, never apply two transitions
from the same state; the traffic side effects (the flag's experiment split) follow the
compare-and-set in the same transaction. Every verb takes a reason and is idempotent: asking for
the state the experiment is already in answers it as it stands.

A flag × environment holds at most one active rollout or experiment: each table has its partial
unique index, and both creations lock the flag's row and look in both tables before inserting
(a rollout's creation checks for an active experiment, `ensure_no_active_change`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags.models import Environment, Flag, Split
from flags.services.approvals import require_approval
from flags.services.guards import require_reason, writable_state
from flags.services.splits import ArmSpec, check_experiment_arms, clear_split, set_experiment_split
from rollouts import analysis, decision_records, plans
from rollouts.experiment_analysis import BASELINE
from rollouts.experiment_reads import Analysed, analyse_experiment, arms_json, arms_of
from rollouts.models import (
    EXPERIMENT_TERMINAL_STATES,
    Experiment,
    ExperimentArm,
    ExperimentDecision,
    ExperimentState,
    PauseReason,
    Rollout,
)
from rollouts.services import lifecycle
from rollouts.services.approvals import experiment_start_change
from rollouts.services.checklist import require_checklist
from rollouts.services.experiment_events import announce
from telemetry.budgets import TOTAL_P95_MS, TTFT_P95_MS
from telemetry.services.incidents import budgets_for

E = ExperimentState
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        (E.DRAFT, E.RUNNING),
        (E.DRAFT, E.ABORTED),
        (E.RUNNING, E.PAUSED),
        (E.RUNNING, E.CONCLUDED),
        (E.RUNNING, E.ABORTED),
        (E.RUNNING, E.SUPERSEDED),
        (E.PAUSED, E.RUNNING),
        (E.PAUSED, E.CONCLUDED),
        (E.PAUSED, E.ABORTED),
        (E.PAUSED, E.SUPERSEDED),
    }
)
# The latency guardrail metric -> the surface budget its p95 must stay within.
LATENCY_BUDGET_KEYS = {"ttft_p95": TTFT_P95_MS, "latency_p95": TOTAL_P95_MS}


class ExperimentMoved(Conflict):
    """The compare-and-set found another version: someone else moved the experiment first."""

    code = "experiment_moved"


def ensure_no_active_change(flag: Flag, environment: Environment) -> None:
    """Refuse when the flag already has an active rollout or experiment in the environment.

    Callers hold the flag's row lock (`writable_state`), so two creations are serialised.
    """
    rollout = Rollout.objects.active().filter(flag=flag, environment=environment).first()
    if rollout is not None:
        raise Conflict(
            f"Flag '{flag.key}' already has an active rollout in '{environment.key}' "
            f"(rollout {rollout.pk}, {rollout.state}).",
            code="rollout_active",
            extra={"rollout": rollout.pk},
        )
    experiment = Experiment.objects.active().filter(flag=flag, environment=environment).first()
    if experiment is not None:
        raise Conflict(
            f"Flag '{flag.key}' already has an active experiment in '{environment.key}' "
            f"(experiment {experiment.pk}, {experiment.state}).",
            code="experiment_active",
            extra={"experiment": experiment.pk},
        )


def _refuse(experiment: Experiment, verb: str) -> Conflict:
    return Conflict(
        f"Experiment {experiment.pk} is {experiment.get_state_display().lower()}; it cannot {verb}.",
        code="invalid_transition",
        extra={"state": experiment.state},
    )


def _transition(
    experiment: Experiment,
    *,
    to: str,
    expected_version: int,
    actor: Actor,
    action: str,
    reason: str,
    changes: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Experiment:
    """Move `experiment` to `to` if its version is still `expected_version`; audit it, and queue
    the webhook event of a pause or an end."""
    if (experiment.state, to) not in ALLOWED:
        raise _refuse(experiment, action.rsplit(".", 1)[-1])
    moved = lifecycle.compare_and_set(
        experiment,
        to=to,
        expected_version=expected_version,
        terminal_states=EXPERIMENT_TERMINAL_STATES,
        moved=ExperimentMoved,
        actor=actor,
        action=action,
        reason=reason,
        changes=changes,
        **fields,
    )
    announce(moved, reason=reason)
    return moved


def fresh(experiment: Experiment | int) -> Experiment:
    pk = experiment if isinstance(experiment, int) else experiment.pk
    return Experiment.objects.select_related("flag", "environment", "baseline", "split", "canary").get(pk=pk)


# Creation


def _whole(value: Any, path: str, *, low: int, code: str = "invalid_end") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInput(
            f"{path} is a whole number of at least {low}.",
            code=code,
            errors=[{"path": path, "message": f"must be a whole number of at least {low}"}],
        )
    return value


def _policy(flag: Flag, policy: Sequence[Mapping[str, Any]] | None) -> list[plans.GuardrailSpec]:
    if policy is None:
        budgets = budgets_for(flag)
        return plans.default_guardrails(
            latency_budgets_ms={key: budgets.latency(key) for key in LATENCY_BUDGET_KEYS.values()},
            scorers=lifecycle._live_scorer_keys(flag),
        )
    guardrails, problems = plans.clean_guardrails(policy)
    if problems:
        raise InvalidInput("The policy is not valid.", code="invalid_policy", errors=problems)
    return guardrails


def _goals(goals: Sequence[Mapping[str, Any]]) -> list[plans.GuardrailSpec]:
    """Goal metrics: read like guardrails (no margin: they are two-sided tests of no difference)."""
    if not goals:
        return []
    specs, problems = plans.clean_guardrails([{"margin": 0.0, **goal} for goal in goals])
    problems = [{**p, "path": p["path"].replace("policy", "goals", 1)} for p in problems]
    problems += [
        {
            "path": f"goals[{index}].metric",
            "message": "a goal is a rate or a mean; a quantile has no two-sided test here",
        }
        for index, spec in enumerate(specs)
        if spec.kind == analysis.Kind.QUANTILE.value
    ]
    if problems:
        raise InvalidInput("The goal metrics are not valid.", code="invalid_goals", errors=problems)
    return specs


@transaction.atomic
def create_experiment(
    *,
    flag: Flag,
    environment: Environment,
    candidates: Sequence[Mapping[str, Any]],
    baseline_weight: int,
    actor: Actor,
    window_seconds: int | None = None,
    required_units_per_arm: int | None = None,
    policy: Sequence[Mapping[str, Any]] | None = None,
    goals: Sequence[Mapping[str, Any]] = (),
    tick_interval_seconds: int | None = None,
    reason: str = "",
) -> Experiment:
    """An experiment of up to three candidate versions (`[{version, weight, name?}]`, weights in
    basis points) against what `environment` serves, weighted `baseline_weight`; the weights add
    up to 10000. It ends after `window_seconds`, or once every arm has `required_units_per_arm`
    units, whichever is given first. Draft until started. In a protected environment it needs a
    reason, as every change to what it serves does."""
    require_reason(environment, reason)
    state = writable_state(flag, environment)
    if state.serving_version is None:
        raise Conflict(
            f"Flag '{flag.key}' has no published version in '{environment.key}'; publish one first.",
            code="nothing_published",
        )
    specs = [ArmSpec(BASELINE, state.serving_version.number, baseline_weight)] + [
        ArmSpec(str(c.get("name") or f"v{c.get('version')}"), c.get("version"), c.get("weight"))  # type: ignore[arg-type]
        for c in candidates
    ]
    versions = check_experiment_arms(flag=flag, serving=state.serving_version, arms=specs)
    if window_seconds is None and required_units_per_arm is None:
        raise InvalidInput(
            "An experiment ends after a fixed window or at a required sample size; give one.",
            code="invalid_end",
            errors=[{"path": "window_seconds", "message": "give window_seconds or required_units_per_arm"}],
        )
    if window_seconds is not None:
        _whole(window_seconds, "window_seconds", low=60)
    if required_units_per_arm is not None:
        _whole(required_units_per_arm, "required_units_per_arm", low=2)
    interval = _whole(
        settings.FLAGSTAFF_ROLLOUT_TICK_SECONDS if tick_interval_seconds is None else tick_interval_seconds,
        "tick_interval_seconds",
        low=1,
        code="invalid",
    )
    guardrails = _policy(flag, policy)
    goal_specs = _goals(goals)
    ensure_no_active_change(flag, environment)
    budgets = budgets_for(flag)
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                flag=flag,
                environment=environment,
                baseline=state.serving_version,
                window_seconds=window_seconds,
                required_units_per_arm=required_units_per_arm,
                guardrails=[plans.guardrail_fields(g) for g in guardrails],
                goals=[plans.guardrail_fields(g) for g in goal_specs],
                latency_budgets_ms={
                    metric: budgets.latency(key) for metric, key in LATENCY_BUDGET_KEYS.items()
                },
                tick_interval_seconds=interval,
                created_by_name=actor.name,
            )
    except IntegrityError:
        ensure_no_active_change(flag, environment)
        raise
    ExperimentArm.objects.bulk_create(
        ExperimentArm(experiment=experiment, index=index, name=spec.name, version=version, weight=spec.weight)
        for index, (spec, version) in enumerate(zip(specs, versions, strict=True))
    )
    audit.record(
        actor=actor,
        action="experiment.created",
        target=experiment,
        changes={
            "arms": [dataclasses.asdict(spec) for spec in specs],
            "window_seconds": window_seconds,
            "required_units_per_arm": required_units_per_arm,
            "policy": experiment.guardrails,
            "goals": experiment.goals,
            "tick_interval_seconds": interval,
        },
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return experiment


# Verbs


@transaction.atomic
def start_experiment(*, experiment: Experiment, actor: Actor, reason: str = "") -> Experiment:
    """Share the units between the arms (an experiment split with its own seed): needs the
    baseline still serving, no other split, and each candidate's gate."""
    experiment = fresh(experiment)
    if experiment.state in (E.RUNNING, E.PAUSED):
        return experiment
    if experiment.state != E.DRAFT:
        raise _refuse(experiment, "start")
    arms = arms_of(experiment)
    state = writable_state(experiment.flag, experiment.environment)
    if state.serving_version_id != experiment.baseline_id:
        raise Conflict(
            f"'{experiment.environment.key}' no longer serves v{experiment.baseline.number}; "
            "create a new experiment.",
            code="baseline_changed",
        )
    require_checklist(experiment)
    require_approval(change=experiment_start_change(experiment, reason), actor=actor)
    now = timezone.now()
    _transition(
        experiment,
        to=E.RUNNING,
        expected_version=experiment.version,
        actor=actor,
        action="experiment.started",
        reason=reason,
        started_at=now,
        next_tick_at=now,
    )
    split = set_experiment_split(
        flag=experiment.flag,
        environment=experiment.environment,
        arms=[ArmSpec(arm.name, arm.version.number, arm.weight) for arm in arms],
        actor=actor,
        reason=reason or f"experiment {experiment.pk} started",
    )
    Experiment.objects.filter(pk=experiment.pk).update(split=split)
    experiment.split = split
    return experiment


@transaction.atomic
def pause_experiment(
    *,
    experiment: Experiment,
    actor: Actor,
    reason: str = "",
    pause_reason: str = PauseReason.MANUAL,
    expected_version: int | None = None,
) -> Experiment:
    """Stop the ticks; the arms keep being served, and counted, until resumed or concluded."""
    experiment = fresh(experiment)
    if experiment.state == E.PAUSED and expected_version is None:
        return experiment
    return _transition(
        experiment,
        to=E.PAUSED,
        expected_version=experiment.version if expected_version is None else expected_version,
        actor=actor,
        action="experiment.paused",
        reason=reason,
        changes={"pause_reason": pause_reason},
        pause_reason=pause_reason,
    )


@transaction.atomic
def resume_experiment(*, experiment: Experiment, actor: Actor, reason: str = "") -> Experiment:
    experiment = fresh(experiment)
    if experiment.state == E.RUNNING:
        return experiment
    if experiment.state != E.PAUSED:
        raise _refuse(experiment, "resume")
    return _transition(
        experiment,
        to=E.RUNNING,
        expected_version=experiment.version,
        actor=actor,
        action="experiment.resumed",
        reason=reason,
        next_tick_at=timezone.now(),
    )


def _our_split(experiment: Experiment) -> Split | None:
    active = Split.objects.active_for(experiment.flag, experiment.environment)
    return active if active is not None and active.pk == experiment.split_id else None


def _end_traffic(experiment: Experiment, actor: Actor, why: str) -> str | None:
    """Everyone back on the baseline: clear the experiment's split if it is still the active one."""
    if _our_split(experiment) is None:
        return None
    cleared = clear_split(flag=experiment.flag, environment=experiment.environment, actor=actor, reason=why)
    return cleared.split_id if cleared else None


@transaction.atomic
def abort_experiment(*, experiment: Experiment, actor: Actor, reason: str = "") -> Experiment:
    """Give the experiment up without a conclusion; everyone gets the baseline again."""
    experiment = fresh(experiment)
    if experiment.state == E.ABORTED:
        return experiment
    _transition(
        experiment,
        to=E.ABORTED,
        expected_version=experiment.version,
        actor=actor,
        action="experiment.aborted",
        reason=reason,
    )
    _end_traffic(experiment, actor, f"experiment {experiment.pk} aborted")
    return experiment


@transaction.atomic
def supersede_experiment(
    *, experiment: Experiment, actor: Actor, reason: str, expected_version: int
) -> Experiment:
    """End an experiment whose traffic was changed under it (its split cleared, or another
    version published): its arms no longer serve what it names, so its split, if still on,
    ends too."""
    experiment = fresh(experiment)
    _transition(
        experiment,
        to=E.SUPERSEDED,
        expected_version=expected_version,
        actor=actor,
        action="experiment.superseded",
        reason=reason,
    )
    _end_traffic(experiment, actor, f"experiment {experiment.pk} superseded: {reason}")
    return experiment


def record_decision(analysed: Analysed, *, applied: bool, outcome: str) -> ExperimentDecision | None:
    """Keep the decision under the next tick number; None when another worker took that number."""
    experiment, tick = analysed.experiment, analysed.tick
    number = experiment.ticks_done + 1
    taken = Experiment.objects.filter(pk=experiment.pk, ticks_done=number - 1).update(
        ticks_done=F("ticks_done") + 1
    )
    if taken != 1:
        return None
    experiment.ticks_done = number
    return ExperimentDecision.objects.create(
        experiment=experiment,
        tick=number,
        action=tick.action.value,
        reason=tick.reason.value,
        explanation=tick.explanation,
        inputs=decision_records.json_ready(analysed.inputs),
        inputs_hash=decision_records.inputs_hash(analysed.inputs),
        arms=arms_json(tick, analysed.arms),
        cheapest_passing=tick.conclusion.cheapest_passing or "",
        evidence=tick.conclusion.evidence,
        srm_p_value=decision_records.finite(tick.conclusion.srm_p_value),
        alpha=experiment.alpha,
        applied=applied,
        outcome=outcome[:200],
    )


def apply_conclusion(analysed: Analysed, *, actor: Actor, reason: str, expected_version: int) -> Experiment:
    """Conclude from `expected_version`: the winner kept, everyone back on the baseline."""
    experiment, tick = analysed.experiment, analysed.tick
    winner = tick.conclusion.cheapest_passing or ""
    _transition(
        experiment,
        to=E.CONCLUDED,
        expected_version=expected_version,
        actor=actor,
        action="experiment.concluded",
        reason=reason,
        changes={
            "winner": winner or None,
            "explanation": tick.explanation,
            "evidence": tick.conclusion.evidence,
        },
        winner=winner,
    )
    _end_traffic(experiment, actor, f"experiment {experiment.pk} concluded")
    return experiment


@transaction.atomic
def conclude_experiment(*, experiment: Experiment, actor: Actor, reason: str = "") -> Experiment:
    """End the experiment now on the data so far: the arms that pass, the cheapest marked,
    a decision kept with its numbers, everyone back on the baseline."""
    experiment = fresh(experiment)
    if experiment.state == E.CONCLUDED:
        return experiment
    if experiment.state not in (E.RUNNING, E.PAUSED):
        raise _refuse(experiment, "be concluded")
    version = experiment.version
    analysed = analyse_experiment(experiment=experiment, now=timezone.now(), by_hand=True)
    apply_conclusion(analysed, actor=actor, reason=reason, expected_version=version)
    if record_decision(analysed, applied=True, outcome=f"concluded by {actor.name}") is None:
        raise ExperimentMoved(f"Experiment {experiment.pk} was decided by a tick meanwhile; read it again.")
    return experiment


@transaction.atomic
def start_canary(
    *,
    experiment: Experiment,
    actor: Actor,
    reason: str = "",
    stages: Sequence[Mapping[str, Any]] | None = None,
) -> Rollout:
    """One action from a concluded experiment to a running canary of its winner: a rollout
    with the experiment's guardrails, started (the winner's gate applies as to any rollout).
    Repeating it answers the canary already started."""
    experiment = fresh(experiment)
    if experiment.canary is not None:
        return experiment.canary
    if experiment.state != E.CONCLUDED:
        raise _refuse(experiment, "start a canary before it is concluded")
    if not experiment.winner:
        raise Conflict(
            f"Experiment {experiment.pk} has no arm that passed; there is nothing to canary.",
            code="no_winner",
        )
    winner = experiment.arms.select_related("version").get(name=experiment.winner)
    rollout = lifecycle.create_rollout(
        flag=experiment.flag,
        environment=experiment.environment,
        candidate=winner.version.number,
        actor=actor,
        stages=stages,
        policy=experiment.guardrails,
        reason=reason or f"canary of experiment {experiment.pk}'s winner",
    )
    rollout = lifecycle.start_rollout(rollout=rollout, actor=actor, reason=reason)
    Experiment.objects.filter(pk=experiment.pk).update(canary=rollout)
    audit.record(
        actor=actor,
        action="experiment.canary_started",
        target=experiment,
        changes={"rollout": rollout.pk, "candidate": winner.version.number, "arm": winner.name},
        reason=reason,
        flag_key=experiment.flag.key,
        environment_key=experiment.environment.key,
    )
    return rollout
