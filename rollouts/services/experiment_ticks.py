"""The analysis tick of a running experiment: claim it, read every arm's aggregates, decide,
keep the decision, act through the experiment's state machine.

The same three steps as a rollout's tick (ticks.py), so one decision per tick however many
workers run: a claim by conditional UPDATE of `next_tick_at` (a lease), the decision taken
holding no lock, then in one transaction the conditional UPDATE of `ticks_done`, the action as a
compare-and-set of the version read at the claim, and the unique (experiment, tick) decision.
A person who moved the experiment meanwhile wins, and the decision says the action was refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.audit import Actor
from controlplane.errors import DomainError
from flags.models import FlagState, Split
from rollouts.experiment_analysis import ExperimentAction
from rollouts.experiment_reads import Analysed, analyse_experiment
from rollouts.models import Experiment, PauseReason
from rollouts.services import experiments

logger = logging.getLogger(__name__)

TICK_ACTOR = Actor.system("celery:tick_experiments")
SWEEP_LIMIT = 200


@dataclass(frozen=True)
class ExperimentTickResult:
    experiment_id: int
    tick: int
    action: str
    applied: bool
    outcome: str


def claim_tick(*, experiment_id: int, now: datetime) -> Experiment | None:
    """Claim the due tick of a running experiment for one lease; None when not due or taken."""
    lease = timedelta(seconds=settings.FLAGSTAFF_ROLLOUT_TICK_LEASE_SECONDS)
    with transaction.atomic():
        claimed = (
            Experiment.objects.due_for_tick(now).filter(pk=experiment_id).update(next_tick_at=now + lease)
        )
        if claimed != 1:
            return None
        return experiments.fresh(experiment_id)


def _traffic_moved(experiment: Experiment) -> str:
    """Why the experiment's arms are no longer served as it names them ('' when they are)."""
    state = FlagState.objects.current(experiment.flag, experiment.environment)
    if state is None or state.serving_version_id != experiment.baseline_id:
        return f"'{experiment.environment.key}' no longer serves v{experiment.baseline.number}"
    active = Split.objects.active_for(experiment.flag, experiment.environment)
    if active is None or active.pk != experiment.split_id:
        return "the experiment's split was cleared or replaced by hand"
    return ""


def tick_experiment(*, experiment_id: int, now: datetime | None = None) -> ExperimentTickResult | None:
    """Run one tick of an experiment if it is due and this worker claims it; None otherwise.

    Idempotency key: (experiment, tick number), held by the conditional UPDATE of `ticks_done`
    and the unique decision per tick.
    """
    now = now or timezone.now()
    experiment = claim_tick(experiment_id=experiment_id, now=now)
    if experiment is None:
        return None
    version, tick = experiment.version, experiment.ticks_done + 1
    moved = _traffic_moved(experiment)
    if moved:
        try:
            experiments.supersede_experiment(
                experiment=experiment, actor=TICK_ACTOR, reason=moved, expected_version=version
            )
        except DomainError as refused:
            return ExperimentTickResult(experiment.pk, tick, "supersede", False, refused.detail)
        return ExperimentTickResult(experiment.pk, tick, "supersede", True, moved)
    analysed = analyse_experiment(experiment=experiment, now=now)
    action = analysed.tick.action
    with transaction.atomic():
        interval = timedelta(seconds=experiment.tick_interval_seconds)
        Experiment.objects.filter(pk=experiment.pk, version=version).update(next_tick_at=now + interval)
        try:
            with transaction.atomic():
                outcome, applied = _act(analysed, version), True
        except DomainError as refused:
            outcome, applied = f"refused: {refused.detail}", False
        decision = experiments.record_decision(analysed, applied=applied, outcome=outcome)
        if decision is None:
            transaction.set_rollback(True)  # another worker decided this tick after our lease ran out
            return None
    logger.info(
        "experiment tick",
        extra={"experiment": experiment.pk, "tick": tick, "action": action.value, "applied": applied},
    )
    return ExperimentTickResult(experiment.pk, tick, action.value, applied, outcome)


def _act(analysed: Analysed, version: int) -> str:
    tick = analysed.tick
    if tick.action is ExperimentAction.CONCLUDE:
        experiments.apply_conclusion(
            analysed, actor=TICK_ACTOR, reason=tick.explanation, expected_version=version
        )
        return f"concluded; winner {tick.conclusion.cheapest_passing or 'none'}"
    if tick.action is ExperimentAction.PAUSE:
        experiments.pause_experiment(
            experiment=analysed.experiment,
            actor=TICK_ACTOR,
            reason=tick.explanation,
            pause_reason=PauseReason.HEALTH_CHECK_FAILED,
            expected_version=version,
        )
        return f"paused ({PauseReason.HEALTH_CHECK_FAILED})"
    return ""


def tick_due_experiments(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Tick every running experiment that is due; the number of ticks this worker decided."""
    now = now or timezone.now()
    due = list(
        Experiment.objects.due_for_tick(now).order_by("next_tick_at").values_list("pk", flat=True)[:limit]
    )
    return sum(1 for pk in due if tick_experiment(experiment_id=pk, now=now) is not None)
