"""Rollouts: a candidate version moved onto a flag's traffic in stages, its guardrails, and the
decision of every analysis tick.

A rollout owns no bucketing: it moves the flag's `Split` (flags/services/splits.py), whose seed
is drawn once when the split is created and kept while its weight changes, so the stages are
nested (a unit in the 1 % stays in at 10 %). Every change of `state` or `stage_index` goes
through rollouts/services/lifecycle.py, which compares and sets `version`.

The tables, by module:
- `rollouts`: Rollout, its Stages, Guardrails and the Decision of every tick.
- `experiments`: Experiment, its ExperimentArms and ExperimentDecisions.
- `checklist`: ChecklistPolicy per environment and the ChecklistSignoffs people sign.
- `rehearsals`: RehearsalSchedule and RollbackRehearsal.
- `scheduling`: ScheduledChange.
- `checkpoints`: the tick's AggregateCheckpoint.
- `paired_replay`: ReplayPolicy, PairedReplay, ReplaySpend and PairedReplayRollup.
"""

from rollouts.models.checklist import (
    ChecklistPolicy,
    ChecklistSignoff,
    SignoffKind,
)
from rollouts.models.checkpoints import (
    AggregateCheckpoint,
)
from rollouts.models.experiments import (
    EXPERIMENT_ACTIVE_STATES,
    EXPERIMENT_TERMINAL_STATES,
    Experiment,
    ExperimentArm,
    ExperimentDecision,
    ExperimentQuerySet,
    ExperimentState,
)
from rollouts.models.paired_replay import (
    PairedReplay,
    PairedReplayRollup,
    ReplayPolicy,
    ReplaySpend,
    ReplayState,
)
from rollouts.models.rehearsals import (
    REHEARSAL_ACTIVE_STATES,
    REHEARSAL_FINISHED_STATES,
    RehearsalSchedule,
    RehearsalScheduleQuerySet,
    RehearsalState,
    RehearsalTrigger,
    RollbackRehearsal,
    RollbackRehearsalQuerySet,
)
from rollouts.models.rollouts import (
    ACTIVE_STATES,
    ON_TRAFFIC_STATES,
    TERMINAL_STATES,
    Decision,
    Guardrail,
    PauseReason,
    Rollout,
    RolloutQuerySet,
    RolloutState,
    Stage,
    StageGate,
    StageState,
)
from rollouts.models.scheduling import (
    ScheduledChange,
    ScheduledChangeKind,
    ScheduledChangeQuerySet,
    ScheduledChangeState,
)

__all__ = [
    "ACTIVE_STATES",
    "EXPERIMENT_ACTIVE_STATES",
    "EXPERIMENT_TERMINAL_STATES",
    "ON_TRAFFIC_STATES",
    "REHEARSAL_ACTIVE_STATES",
    "REHEARSAL_FINISHED_STATES",
    "TERMINAL_STATES",
    "AggregateCheckpoint",
    "ChecklistPolicy",
    "ChecklistSignoff",
    "Decision",
    "Experiment",
    "ExperimentArm",
    "ExperimentDecision",
    "ExperimentQuerySet",
    "ExperimentState",
    "Guardrail",
    "PairedReplay",
    "PairedReplayRollup",
    "PauseReason",
    "RehearsalSchedule",
    "RehearsalScheduleQuerySet",
    "RehearsalState",
    "RehearsalTrigger",
    "ReplayPolicy",
    "ReplaySpend",
    "ReplayState",
    "RollbackRehearsal",
    "RollbackRehearsalQuerySet",
    "Rollout",
    "RolloutQuerySet",
    "RolloutState",
    "ScheduledChange",
    "ScheduledChangeKind",
    "ScheduledChangeQuerySet",
    "ScheduledChangeState",
    "SignoffKind",
    "Stage",
    "StageGate",
    "StageState",
]
