"""Where each rollout and experiment stands, in words: the stage bar of a rollout, the health of
a rollout or an experiment read from its state and latest decision, the list of the active
ones, and the words the flag pages add to a split's percentages ("canary, stage 2 of 4").

Reads only; a fixed number of queries whatever the number of rollouts (the latest decision and
the current stage come in as subqueries).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, OuterRef, Subquery
from django.urls import reverse

from controlplane.models import AuditEntry
from flags.models import Split
from flagstaff.engine import BUCKETS
from rollouts.models import (
    ON_TRAFFIC_STATES,
    TERMINAL_STATES,
    Decision,
    Experiment,
    ExperimentDecision,
    ExperimentState,
    PauseReason,
    Rollout,
    RolloutState,
    Stage,
    StageState,
)

GOOD, WATCH, BAD, DONE = "good", "watch", "bad", "done"


def percent(weight: int) -> str:
    return f"{weight * 100 / BUCKETS:g} %"


@dataclass(frozen=True)
class Health:
    """A badge's level (good, watch, bad, done) and what it means, in words."""

    level: str
    words: str


@dataclass(frozen=True)
class StageStep:
    number: int  # 1-based, as people count
    percent: str
    state: str
    state_label: str
    current: bool
    started_at: datetime | None

    @property
    def position(self) -> str:
        """done, now or next: how the bar draws the step."""
        if self.current:
            return "now"
        return "done" if self.state in (StageState.PASSED, StageState.FAILED) else "next"


@dataclass(frozen=True)
class StageBar:
    steps: list[StageStep]
    summary: str  # "Stage 2 of 3: 10 % of units get v2."
    percent_done: int  # of the stages, for the <progress> fallback


def stage_bar(rollout: Rollout, stages: Iterable[Stage]) -> StageBar:
    stages = list(stages)
    active = rollout.is_on_traffic
    steps = [
        StageStep(
            number=stage.index + 1,
            percent=percent(stage.weight),
            state=stage.state,
            state_label=stage.get_state_display(),
            current=active and stage.index == rollout.stage_index,
            started_at=stage.started_at,
        )
        for stage in stages
    ]
    total = len(steps)
    passed = sum(1 for stage in stages if stage.state == StageState.PASSED)
    candidate = f"v{rollout.candidate.number}"
    if active and rollout.stage_index < total:
        weight = percent(stages[rollout.stage_index].weight)
        summary = f"Stage {rollout.stage_index + 1} of {total}: {weight} of units get {candidate}."
    elif rollout.state == RolloutState.PROMOTED:
        summary = f"Promoted: every unit gets {candidate}."
    elif rollout.state in (RolloutState.DRAFT, RolloutState.READY):
        summary = f"Not started: {total} stages planned, none of the traffic gets {candidate} yet."
    else:
        summary = f"Ended ({rollout.get_state_display().lower()}) after {passed} of {total} stages passed."
    return StageBar(steps=steps, summary=summary, percent_done=round(passed * 100 / total) if total else 0)


def last_move(rollout: Rollout) -> str | None:
    """Who brought a paused or ended rollout where it is, when and why, from its audit entry:
    a person's Roll back is the current decision, whatever the last analysis said."""
    if rollout.state not in (*TERMINAL_STATES, RolloutState.PAUSED):
        return None
    entry = (
        AuditEntry.objects.filter(
            target_type="rollouts.rollout", target_id=str(rollout.pk), action=f"rollout.{rollout.state}"
        )
        .order_by("-id")
        .first()
    )
    if entry is None:
        return None
    words = f"{rollout.get_state_display()} by {entry.actor_name} at {entry.created_at:%Y-%m-%d %H:%M:%S} UTC"
    return f"{words}: {entry.reason}" if entry.reason else words


ROLLOUT_ACTION_HEALTH = {
    "promote": (GOOD, "healthy: the last stage passed"),
    "hold": (GOOD, "watching: no regression so far"),
    "extend": (WATCH, "waiting for enough data"),
    "inconclusive": (WATCH, "inconclusive: the stage ended without proof either way"),
    "pause": (WATCH, "paused by the analysis"),
    "rollback": (BAD, "regressed: rolled back"),
}
# A hold is not always "nothing seen": by its reason code (rollouts.analysis.Reason).
ROLLOUT_HOLD_HEALTH = {
    "regression_unconfirmed": (WATCH, "watching: a regression seen on one tick, the next must confirm it"),
    "srm_suspected": (WATCH, "watching: the traffic split looks off, nothing is promoted until it clears"),
}


def rollout_health(
    state: str, pause_reason: str, latest_action: str | None, latest_reason: str = ""
) -> Health:
    """A rollout's health from its state and its latest decision's action and reason."""
    if state == RolloutState.ROLLED_BACK:
        return Health(BAD, "rolled back: the candidate is off traffic")
    if state == RolloutState.PROMOTED:
        return Health(DONE, "promoted: the candidate serves everyone")
    if state in (RolloutState.ABORTED, RolloutState.SUPERSEDED):
        return Health(DONE, f"{RolloutState(state).label.lower()}: the candidate is off traffic")
    if state == RolloutState.DRAFT:
        return Health(WATCH, "waiting for the candidate's eval gate")
    if state == RolloutState.READY:
        return Health(WATCH, "ready: not started")
    if state == RolloutState.PAUSED:
        return Health(
            BAD if pause_reason == PauseReason.HEALTH_CHECK_FAILED else WATCH,
            f"paused: {PauseReason(pause_reason).label.lower()}" if pause_reason else "paused",
        )
    if latest_action is None:
        return Health(WATCH, "running: no analysis yet")
    if latest_action == "hold" and latest_reason in ROLLOUT_HOLD_HEALTH:
        level, words = ROLLOUT_HOLD_HEALTH[latest_reason]
    else:
        level, words = ROLLOUT_ACTION_HEALTH.get(latest_action, (WATCH, latest_action))
    return Health(level, words)


def experiment_health(state: str, pause_reason: str, latest_action: str | None) -> Health:
    if state == ExperimentState.CONCLUDED:
        return Health(DONE, "ended: its split is over, everyone gets the baseline")
    if state in (ExperimentState.ABORTED, ExperimentState.SUPERSEDED):
        return Health(DONE, ExperimentState(state).label.lower())
    if state == ExperimentState.DRAFT:
        return Health(WATCH, "not started")
    if state == ExperimentState.PAUSED:
        reason = PauseReason(pause_reason).label.lower() if pause_reason else "by hand"
        return Health(BAD if pause_reason == PauseReason.HEALTH_CHECK_FAILED else WATCH, f"paused: {reason}")
    if latest_action is None:
        return Health(WATCH, "running: no analysis yet")
    return Health(GOOD, "collecting: arms healthy so far")


@dataclass(frozen=True)
class ActiveChange:
    """One row of the list of what is moving traffic now."""

    kind: str  # "rollout" or "experiment"
    pk: int
    url: str
    flag: str
    environment: str
    what: str  # "v1 → v2" or "v1 against 3 candidates"
    state: str
    stage: str  # "stage 2 of 3 · 10 %" or "4 arms"
    percent_done: int
    health: Health
    explanation: str


def _latest(model: type[Decision] | type[ExperimentDecision], owner: str, field: str) -> Subquery:
    return Subquery(model.objects.filter(**{owner: OuterRef("pk")}).order_by("-tick").values(field)[:1])


# What every row of the list reads, besides what is particular to rollouts or experiments.
ROW_FIELDS = (
    "pk",
    "flag__key",
    "environment__key",
    "baseline__number",
    "state",
    "pause_reason",
    "latest_action",
    "latest_explanation",
)


def _change(kind: str, page: str, row: dict[str, Any], **details: Any) -> ActiveChange:
    return ActiveChange(
        kind=kind,
        pk=row["pk"],
        url=reverse(page, args=[row["pk"]]),
        flag=row["flag__key"],
        environment=row["environment__key"],
        explanation=row["latest_explanation"] or "",
        **details,
    )


def active_changes() -> list[ActiveChange]:
    """The active rollouts, then the active experiments, newest first: two queries."""
    rollouts = (
        Rollout.objects.active()
        .annotate(
            stage_count=Count("stages", distinct=True),
            current_weight=Subquery(
                Stage.objects.filter(rollout=OuterRef("pk"), index=OuterRef("stage_index")).values("weight")[
                    :1
                ]
            ),
            latest_action=_latest(Decision, "rollout", "action"),
            latest_reason=_latest(Decision, "rollout", "reason"),
            latest_explanation=_latest(Decision, "rollout", "explanation"),
        )
        .values(
            *ROW_FIELDS, "latest_reason", "candidate__number", "stage_index", "stage_count", "current_weight"
        )
    )
    changes = []
    for row in rollouts:
        started = row["state"] in ON_TRAFFIC_STATES
        count, index = row["stage_count"], row["stage_index"]
        changes.append(
            _change(
                "rollout",
                "rollouts:detail",
                row,
                what=f"v{row['baseline__number']} → v{row['candidate__number']}",
                state=RolloutState(row["state"]).label,
                stage=(
                    f"stage {index + 1} of {count} · {percent(row['current_weight'] or 0)}"
                    if started
                    else f"{count} stages planned"
                ),
                percent_done=round(index * 100 / count) if started and count else 0,
                health=rollout_health(
                    row["state"], row["pause_reason"], row["latest_action"], row["latest_reason"] or ""
                ),
            )
        )
    experiments = (
        Experiment.objects.active()
        .annotate(
            arm_count=Count("arms", distinct=True),
            latest_action=_latest(ExperimentDecision, "experiment", "action"),
            latest_explanation=_latest(ExperimentDecision, "experiment", "explanation"),
        )
        .values(*ROW_FIELDS, "arm_count")
    )
    for row in experiments:
        candidates = row["arm_count"] - 1
        changes.append(
            _change(
                "experiment",
                "rollouts:experiment",
                row,
                what=f"v{row['baseline__number']} against {candidates} candidate{'s' * (candidates != 1)}",
                state=ExperimentState(row["state"]).label,
                stage=f"{row['arm_count']} arms",
                percent_done=0,
                health=experiment_health(row["state"], row["pause_reason"], row["latest_action"]),
            )
        )
    return changes


def describe_splits(splits: Iterable[Split]) -> dict[int, str]:
    """What moves each split, in words, by split id: "canary, stage 2 of 4" for a rollout's,
    "experiment #3" for an experiment's; splits set by hand are left out. Two queries."""
    ids = [split.pk for split in splits]
    if not ids:
        return {}
    words: dict[int, str] = {}
    rollouts = (
        Rollout.objects.active()
        .filter(split_id__in=ids)
        .annotate(stage_count=Count("stages"))
        .values_list("split_id", "stage_index", "stage_count", "state")
    )
    for split_id, index, count, state in rollouts:
        paused = ", paused" if state == RolloutState.PAUSED else ""
        words[split_id] = f"canary, stage {index + 1} of {count}{paused}"
    for split_id, pk in Experiment.objects.active().filter(split_id__in=ids).values_list("split_id", "pk"):
        words[split_id] = f"experiment #{pk}"
    return words
