"""Rollouts: a candidate version moved onto a flag's traffic in stages, its guardrails, and the
decision of every analysis tick.

A rollout owns no bucketing: it moves the flag's `Split` (flags/services/splits.py), whose seed
is drawn once when the split is created and kept while its weight changes, so the stages are
nested (a unit in the 1 % stays in at 10 %). Every change of `state` or `stage_index` goes
through rollouts/services/lifecycle.py, which compares and sets `version`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models
from django.db.models import F, Q

from flagstaff.engine import BUCKETS
from rollouts.analysis import Action, Direction, Kind, OnInconclusive, Source

if TYPE_CHECKING:
    from flags.models import Environment, Flag


class RolloutState(models.TextChoices):
    DRAFT = "draft", "Draft (waiting for the candidate's gate)"
    READY = "ready", "Ready"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    PROMOTED = "promoted", "Promoted"
    ROLLED_BACK = "rolled_back", "Rolled back"
    ABORTED = "aborted", "Aborted"
    SUPERSEDED = "superseded", "Superseded"


# The states in which a rollout holds its flag × environment: at most one such rollout each.
ACTIVE_STATES = (RolloutState.DRAFT, RolloutState.READY, RolloutState.RUNNING, RolloutState.PAUSED)
TERMINAL_STATES = (
    RolloutState.PROMOTED,
    RolloutState.ROLLED_BACK,
    RolloutState.ABORTED,
    RolloutState.SUPERSEDED,
)


class PauseReason(models.TextChoices):
    """Why a rollout is paused, as Argo Rollouts' PauseReason names them."""

    MANUAL = "manual", "Paused by hand"
    AWAITING_APPROVAL = "awaiting_approval", "The stage passed and waits for an Approver"
    INCONCLUSIVE = "inconclusive", "The stage ended inconclusive"
    HEALTH_CHECK_FAILED = "health_check_failed", "Sample-ratio mismatch"
    SCORER_ERRORS = "scorer_errors", "Too many scorer errors"


class StageGate(models.TextChoices):
    AUTO = "auto", "Promote automatically"
    APPROVAL = "approval", "Wait for an Approver"


class StageState(models.TextChoices):
    PENDING = "pending", "Pending"
    ANALYZING = "analyzing", "Analyzing"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive"
    ERRORED = "errored", "Errored"


class RolloutQuerySet(models.QuerySet["Rollout"]):
    def active(self) -> RolloutQuerySet:
        return self.filter(state__in=ACTIVE_STATES)

    def due_for_tick(self, now: object) -> RolloutQuerySet:
        return self.filter(state=RolloutState.RUNNING, next_tick_at__lte=now)


class Rollout(models.Model):
    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rollouts")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="rollouts")
    baseline = models.ForeignKey(
        "flags.ConfigVersion", on_delete=models.PROTECT, related_name="+", help_text="The serving version"
    )
    candidate = models.ForeignKey("flags.ConfigVersion", on_delete=models.PROTECT, related_name="+")
    # The split the rollout moves (its seed is the rollout's seed), set when it starts.
    split = models.ForeignKey(
        "flags.Split", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=16, choices=RolloutState.choices, default=RolloutState.DRAFT)
    pause_reason = models.CharField(max_length=32, choices=PauseReason.choices, blank=True)
    stage_index = models.PositiveSmallIntegerField(default=0)
    # Optimistic lock: every transition is `UPDATE ... WHERE version = <read>`, bumping it.
    version = models.PositiveIntegerField(default=0)
    tick_interval_seconds = models.PositiveIntegerField()
    # The tick's due work: a rollout is due when running and next_tick_at has passed; a claim
    # pushes it a lease ahead, and the tick's decision sets it one interval ahead.
    next_tick_at = models.DateTimeField(null=True, blank=True)
    ticks_done = models.PositiveIntegerField(default=0)
    tick_state = models.JSONField(default=dict, blank=True, help_text="What the last tick hands the next")
    alpha = models.FloatField(default=0.05)
    alpha_critical = models.FloatField(default=0.005)
    created_by_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=ACTIVE_STATES),
                name="rollout_one_active_per_flag_environment",
            ),
            models.CheckConstraint(
                condition=~Q(candidate=F("baseline")), name="rollout_candidate_not_baseline"
            ),
            models.CheckConstraint(
                condition=Q(state=RolloutState.PAUSED) | Q(pause_reason=""),
                name="rollout_pause_reason_only_when_paused",
            ),
            models.CheckConstraint(
                condition=Q(state__in=TERMINAL_STATES) | Q(ended_at__isnull=True),
                name="rollout_ended_only_when_terminal",
            ),
            models.CheckConstraint(
                condition=Q(tick_interval_seconds__gte=1), name="rollout_tick_interval_positive"
            ),
            models.CheckConstraint(
                condition=Q(alpha__gt=0, alpha__lt=1, alpha_critical__gt=0, alpha_critical__lt=1),
                name="rollout_alphas_in_unit_interval",
            ),
        ]
        indexes = [
            models.Index(fields=["next_tick_at"], condition=Q(state="running"), name="rollout_due_idx"),
            models.Index(fields=["flag", "environment", "-created_at"], name="rollout_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk}: v{self.baseline_id} -> v{self.candidate_id}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class Stage(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="stages")
    index = models.PositiveSmallIntegerField()
    weight = models.PositiveIntegerField(help_text="Basis points of units served the candidate (100 = 1 %)")
    min_duration_seconds = models.PositiveIntegerField()
    max_duration_seconds = models.PositiveIntegerField()
    min_units_per_arm = models.PositiveIntegerField()
    min_judged_per_arm = models.PositiveIntegerField()
    gate = models.CharField(max_length=16, choices=StageGate.choices, default=StageGate.AUTO)
    on_inconclusive = models.CharField(
        max_length=16,
        choices=[(choice.value, choice.value) for choice in OnInconclusive],
        default=OnInconclusive.PAUSE.value,
    )
    state = models.CharField(max_length=16, choices=StageState.choices, default=StageState.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "index"], name="stage_unique_index"),
            models.CheckConstraint(
                condition=Q(weight__gte=1, weight__lte=BUCKETS), name="stage_weight_in_range"
            ),
            models.CheckConstraint(
                condition=Q(min_duration_seconds__lte=F("max_duration_seconds")),
                name="stage_min_duration_lte_max",
            ),
        ]

    def __str__(self) -> str:
        return f"stage {self.index} of rollout {self.rollout_id}: {self.weight} bp"


class Guardrail(models.Model):
    """One metric of a rollout's policy (rollouts.analysis.Guardrail, kept with the rollout)."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="guardrails")
    name = models.CharField(max_length=64)
    label = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=[(k.value, k.value) for k in Kind])
    direction = models.CharField(max_length=16, choices=[(d.value, d.value) for d in Direction])
    margin = models.FloatField()
    relative_margin = models.BooleanField(default=False)
    critical = models.BooleanField(default=False)
    source = models.CharField(max_length=16, choices=[(s.value, s.value) for s in Source])
    may_act = models.BooleanField(default=True, help_text="False: advisory, shown and never acting")
    metric = models.CharField(
        max_length=64, help_text="What the aggregates read (rollouts/arm_aggregates.py)"
    )
    scorer = models.CharField(
        max_length=64, blank=True, help_text="The live scorer's key (live_score source)"
    )
    quantile = models.FloatField(default=0.95)
    cache_sensitive = models.BooleanField(default=False)
    unit = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["rollout", "id"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "name"], name="guardrail_unique_name"),
            models.CheckConstraint(condition=Q(margin__gte=0), name="guardrail_margin_non_negative"),
            models.CheckConstraint(
                condition=Q(quantile__gt=0, quantile__lt=1), name="guardrail_quantile_open"
            ),
            models.CheckConstraint(
                condition=~Q(source=Source.LIVE_SCORE.value) | ~Q(scorer=""),
                name="guardrail_live_score_names_scorer",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} of rollout {self.rollout_id}"


class Decision(models.Model):
    """What one analysis tick decided, on what numbers, and what became of it. Kept for good."""

    rollout = models.ForeignKey(Rollout, on_delete=models.PROTECT, related_name="decisions")
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="decisions")
    tick = models.PositiveIntegerField(help_text="The rollout's tick number: one decision per tick")
    action = models.CharField(max_length=16, choices=[(a.value, a.value) for a in Action])
    reason = models.CharField(max_length=32, help_text="Stable reason code (rollouts.analysis.Reason)")
    explanation = models.TextField()
    inputs = models.JSONField(help_text="Per-arm aggregates, window, stage, code and scorer versions")
    inputs_hash = models.CharField(max_length=64)
    metrics = models.JSONField(help_text="Per metric: status, estimates, bounds, p-value, margin")
    srm_p_value = models.FloatField(null=True, blank=True)
    alpha = models.FloatField()
    alpha_critical = models.FloatField()
    # What the state machine made of the action: applied, or refused because the rollout moved
    # (a manual rollback during the tick wins).
    applied = models.BooleanField()
    outcome = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rollout", "-tick"]
        constraints = [models.UniqueConstraint(fields=["rollout", "tick"], name="decision_one_per_tick")]

    def __str__(self) -> str:
        return f"tick {self.tick} of rollout {self.rollout_id}: {self.action} ({self.reason})"


# -- Experiments ---------------------------------------------------------------------------------


class ExperimentState(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    CONCLUDED = "concluded", "Concluded"
    ABORTED = "aborted", "Aborted"
    SUPERSEDED = "superseded", "Superseded"


EXPERIMENT_ACTIVE_STATES = (ExperimentState.DRAFT, ExperimentState.RUNNING, ExperimentState.PAUSED)
EXPERIMENT_TERMINAL_STATES = (
    ExperimentState.CONCLUDED,
    ExperimentState.ABORTED,
    ExperimentState.SUPERSEDED,
)


class ExperimentQuerySet(models.QuerySet["Experiment"]):
    def active(self) -> ExperimentQuerySet:
        return self.filter(state__in=EXPERIMENT_ACTIVE_STATES)

    def due_for_tick(self, now: object) -> ExperimentQuerySet:
        return self.filter(state=ExperimentState.RUNNING, next_tick_at__lte=now)


class Experiment(models.Model):
    """An A/B test of up to three candidate versions against the serving one (the baseline) on
    a flag × environment, for a fixed window or until every arm has a required sample size.

    Its arms are served through an experiment split of the flag (flags.Split, its own seed);
    each tick checks the split's health and, at the end, `conclude_experiment` names the arms
    that pass every guardrail and the cheapest of them. Every change of `state` goes through
    rollouts/services/experiments.py, which compares and sets `version`.
    """

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="experiments")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="experiments")
    baseline = models.ForeignKey(
        "flags.ConfigVersion", on_delete=models.PROTECT, related_name="+", help_text="The serving version"
    )
    split = models.ForeignKey(
        "flags.Split", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(max_length=16, choices=ExperimentState.choices, default=ExperimentState.DRAFT)
    pause_reason = models.CharField(max_length=32, choices=PauseReason.choices, blank=True)
    # Optimistic lock: every transition is `UPDATE ... WHERE version = <read>`, bumping it.
    version = models.PositiveIntegerField(default=0)
    window_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="A fixed window")
    required_units_per_arm = models.PositiveIntegerField(
        null=True, blank=True, help_text="Or: end when every arm has this many units"
    )
    guardrails = models.JSONField(help_text="The guardrail policy (rollouts.plans.GuardrailSpec fields)")
    goals = models.JSONField(default=list, blank=True, help_text="Goal metrics, two-sided, BH-corrected")
    latency_budgets_ms = models.JSONField(
        default=dict, blank=True, help_text="The surface's p95 budgets an arm must stay within"
    )
    alpha = models.FloatField(default=0.05)
    tick_interval_seconds = models.PositiveIntegerField()
    next_tick_at = models.DateTimeField(null=True, blank=True)
    ticks_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    winner = models.CharField(max_length=32, blank=True, help_text="The cheapest arm that passes")
    canary = models.ForeignKey(
        Rollout,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The winner's canary",
    )
    created_by_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=EXPERIMENT_ACTIVE_STATES),
                name="experiment_one_active_per_flag_environment",
            ),
            models.CheckConstraint(
                condition=Q(window_seconds__isnull=False) | Q(required_units_per_arm__isnull=False),
                name="experiment_has_an_end",
            ),
            models.CheckConstraint(
                condition=Q(state=ExperimentState.PAUSED) | Q(pause_reason=""),
                name="experiment_pause_reason_only_when_paused",
            ),
            models.CheckConstraint(
                condition=Q(state__in=EXPERIMENT_TERMINAL_STATES) | Q(ended_at__isnull=True),
                name="experiment_ended_only_when_terminal",
            ),
            models.CheckConstraint(
                condition=Q(tick_interval_seconds__gte=1), name="experiment_tick_interval_positive"
            ),
            models.CheckConstraint(
                condition=Q(alpha__gt=0, alpha__lt=1), name="experiment_alpha_in_unit_interval"
            ),
        ]
        indexes = [
            models.Index(fields=["next_tick_at"], condition=Q(state="running"), name="experiment_due_idx"),
            models.Index(fields=["flag", "environment", "-created_at"], name="experiment_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"experiment {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.state in EXPERIMENT_ACTIVE_STATES


class ExperimentArm(models.Model):
    """One arm: the baseline (index 0, named `baseline`) or a candidate, with its weight."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    index = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=32)
    version = models.ForeignKey("flags.ConfigVersion", on_delete=models.PROTECT, related_name="+")
    weight = models.PositiveIntegerField(help_text="Basis points of units (100 = 1 %)")

    class Meta:
        ordering = ["experiment", "index"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "index"], name="experiment_arm_unique_index"),
            models.UniqueConstraint(fields=["experiment", "name"], name="experiment_arm_unique_name"),
            models.UniqueConstraint(fields=["experiment", "version"], name="experiment_arm_unique_version"),
            models.CheckConstraint(
                condition=Q(weight__gte=1, weight__lte=BUCKETS), name="experiment_arm_weight_in_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} of experiment {self.experiment_id}"


class ExperimentDecision(models.Model):
    """What one tick of an experiment decided (hold, pause, conclude), or its conclusion by
    hand, on what numbers: per arm the guardrails' bounds, cost per call and goals. Kept for good."""

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="decisions")
    tick = models.PositiveIntegerField(help_text="The experiment's tick number: one decision per tick")
    action = models.CharField(max_length=16)
    reason = models.CharField(max_length=32)
    explanation = models.TextField()
    inputs = models.JSONField(help_text="Per-arm aggregates, window, code version")
    inputs_hash = models.CharField(max_length=64)
    arms = models.JSONField(help_text="Per arm: passes, failing guardrails, bounds, cost per call, goals")
    cheapest_passing = models.CharField(max_length=32, blank=True)
    evidence = models.TextField(blank=True)
    srm_p_value = models.FloatField(null=True, blank=True)
    alpha = models.FloatField()
    applied = models.BooleanField()
    outcome = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["experiment", "-tick"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "tick"], name="experiment_decision_one_per_tick")
        ]

    def __str__(self) -> str:
        return f"tick {self.tick} of experiment {self.experiment_id}: {self.action} ({self.reason})"


# -- The deploy checklist ------------------------------------------------------------------------


class ChecklistPolicy(models.Model):
    """Which checklist items an environment requires before a rollout or experiment starts.

    Without a row the default holds (rollouts/checklist: every item where the environment is
    protected, the computed ones elsewhere); an Admin writes a row to change it.
    """

    environment = models.OneToOneField(
        "flags.Environment", on_delete=models.CASCADE, related_name="checklist_policy"
    )
    required = models.JSONField(default=list, help_text="The keys of the required items")
    updated_by_name = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"checklist policy of {self.environment_id}"


class SignoffKind(models.TextChoices):
    ATTESTED = "attested", "Attested"
    WAIVED = "waived", "Waived"


class ChecklistSignoff(models.Model):
    """A person's word on one checklist item of a rollout or an experiment, kept for good: an
    attestation of an item no data can show (with a note), or an Approver's waiver of an item
    that is red (with a reason)."""

    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="signoffs"
    )
    experiment = models.ForeignKey(
        Experiment, null=True, blank=True, on_delete=models.PROTECT, related_name="signoffs"
    )
    item = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=SignoffKind.choices)
    note = models.TextField(help_text="The attestation's note, or the waiver's reason")
    actor_kind = models.CharField(max_length=16)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(rollout__isnull=False) & Q(experiment__isnull=True))
                | (Q(rollout__isnull=True) & Q(experiment__isnull=False)),
                name="signoff_one_subject",
            ),
            models.CheckConstraint(condition=~Q(note=""), name="signoff_note_not_empty"),
            models.UniqueConstraint(
                fields=["rollout", "item", "kind"],
                condition=Q(rollout__isnull=False),
                name="signoff_one_per_rollout_item_kind",
            ),
            models.UniqueConstraint(
                fields=["experiment", "item", "kind"],
                condition=Q(experiment__isnull=False),
                name="signoff_one_per_experiment_item_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.item} by {self.actor_name}"


# -- Rollback rehearsals -------------------------------------------------------------------------


class RehearsalState(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not run"


REHEARSAL_ACTIVE_STATES = (RehearsalState.PENDING, RehearsalState.RUNNING)
REHEARSAL_FINISHED_STATES = (RehearsalState.PASSED, RehearsalState.FAILED, RehearsalState.SKIPPED)


class RehearsalTrigger(models.TextChoices):
    MANUAL = "manual", "On demand"
    SCHEDULE = "schedule", "On its schedule"


class RehearsalScheduleQuerySet(models.QuerySet["RehearsalSchedule"]):
    def due(self, now: object) -> RehearsalScheduleQuerySet:
        return self.filter(enabled=True, next_run_at__lte=now)


class RehearsalSchedule(models.Model):
    """A flag × environment rehearsed every `interval_seconds`: the due row is the work, taken by
    one beat sweep only (a conditional UPDATE of `next_run_at`)."""

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rehearsal_schedules")
    environment = models.ForeignKey(
        "flags.Environment", on_delete=models.PROTECT, related_name="rehearsal_schedules"
    )
    interval_seconds = models.PositiveIntegerField(help_text="e.g. 604800: weekly")
    next_run_at = models.DateTimeField()
    enabled = models.BooleanField(default=True)
    created_by_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RehearsalScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["flag", "environment"]
        constraints = [
            models.UniqueConstraint(fields=["flag", "environment"], name="rehearsal_schedule_one_per_pair"),
            models.CheckConstraint(
                condition=Q(interval_seconds__gte=1), name="rehearsal_schedule_interval_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["next_run_at"], condition=Q(enabled=True), name="rehearsal_schedule_due_idx")
        ]

    def __str__(self) -> str:
        return f"rehearsal of {self.flag_id} in {self.environment_id} every {self.interval_seconds} s"


class RollbackRehearsalQuerySet(models.QuerySet["RollbackRehearsal"]):
    def active(self) -> RollbackRehearsalQuerySet:
        return self.filter(state__in=REHEARSAL_ACTIVE_STATES)

    def for_pair(self, flag: Flag, environment: Environment) -> RollbackRehearsalQuerySet:
        return self.filter(flag=flag, environment=environment)


class RollbackRehearsal(models.Model):
    """One rehearsal of the one-motion rollback: a small canary of a no-op candidate (the serving
    content as a new version), rolled back, and the propagation of the rollback measured three
    ways (rollouts/services/rehearsals.py). Kept for good; the deploy checklist reads the latest."""

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="rehearsals")
    environment = models.ForeignKey("flags.Environment", on_delete=models.PROTECT, related_name="rehearsals")
    schedule = models.ForeignKey(
        RehearsalSchedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="rehearsals"
    )
    trigger = models.CharField(max_length=16, choices=RehearsalTrigger.choices)
    state = models.CharField(max_length=16, choices=RehearsalState.choices, default=RehearsalState.PENDING)
    started_by = models.CharField(max_length=200, help_text="The person, token or schedule that started it")
    reason = models.TextField(blank=True)
    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Its canary"
    )
    candidate = models.ForeignKey(
        "flags.ConfigVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    threshold_seconds = models.FloatField(help_text="Slower than this (any of the three times) fails")
    snapshot_seconds = models.FloatField(
        null=True, blank=True, help_text="Rollback to the API's snapshot serving the new revision"
    )
    stream_seconds = models.FloatField(
        null=True, blank=True, help_text="Rollback to every connected change stream having it"
    )
    probe_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="Rollback to the probe client resolving the baseline for canary units",
    )
    clients_connected = models.PositiveIntegerField(null=True, blank=True)
    clients_reached = models.PositiveIntegerField(null=True, blank=True)
    steps = models.JSONField(default=list, blank=True, help_text="[{step, at, detail}] in order")
    failures = models.JSONField(default=list, blank=True, help_text="What went wrong, in words")
    outcome = models.TextField(blank=True, help_text="One sentence: the result and the three times")
    incident = models.ForeignKey(
        "telemetry.Incident", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RollbackRehearsalQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"],
                condition=Q(state__in=REHEARSAL_ACTIVE_STATES),
                name="rehearsal_one_active_per_flag_environment",
            ),
            models.CheckConstraint(
                condition=Q(state__in=REHEARSAL_FINISHED_STATES) | Q(finished_at__isnull=True),
                name="rehearsal_finished_only_when_done",
            ),
            models.CheckConstraint(condition=Q(threshold_seconds__gt=0), name="rehearsal_threshold_positive"),
        ]
        indexes = [
            models.Index(fields=["flag", "environment", "-requested_at"], name="rehearsal_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"rehearsal {self.pk}: {self.state}"

    @property
    def is_active(self) -> bool:
        return self.state in REHEARSAL_ACTIVE_STATES


# -- Scheduled changes ---------------------------------------------------------------------------


class ScheduledChangeKind(models.TextChoices):
    PUBLISH = "publish", "Publish a version"
    ENABLE = "enable", "Enable the flag"
    DISABLE = "disable", "Disable the flag"
    START_ROLLOUT = "start_rollout", "Start a rollout"
    SPLIT = "split", "Change the split"


class ScheduledChangeState(models.TextChoices):
    PENDING = "pending", "Waiting for its time"
    APPLIED = "applied", "Applied"
    SKIPPED = "skipped", "Skipped (its preconditions no longer held)"
    CANCELLED = "cancelled", "Cancelled"


class ScheduledChangeQuerySet(models.QuerySet["ScheduledChange"]):
    def pending(self) -> ScheduledChangeQuerySet:
        return self.filter(state=ScheduledChangeState.PENDING)

    def due(self, now: object) -> ScheduledChangeQuerySet:
        return self.pending().filter(run_at__lte=now)


class ScheduledChange(models.Model):
    """A change to a flag in an environment, stored until its time and then applied once.

    The row is the due work (beat only nudges the sweep); its `state` leaves `pending` by one
    conditional UPDATE in the transaction that applies it (rollouts/services/scheduling.py).
    Who scheduled it is kept as plain values, like the audit log, and the change is applied in
    their name so that what their own request would need (a reason, an approval) applies.
    """

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="scheduled_changes")
    environment = models.ForeignKey(
        "flags.Environment", on_delete=models.PROTECT, related_name="scheduled_changes"
    )
    kind = models.CharField(max_length=16, choices=ScheduledChangeKind.choices)
    version_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="publish: the version; split: the candidate"
    )
    weight = models.PositiveIntegerField(null=True, blank=True, help_text="split: basis points (100 = 1 %)")
    rollout = models.ForeignKey(
        Rollout, null=True, blank=True, on_delete=models.PROTECT, related_name="scheduled_changes"
    )
    run_at = models.DateTimeField()
    reason = models.TextField(blank=True)
    state = models.CharField(
        max_length=16, choices=ScheduledChangeState.choices, default=ScheduledChangeState.PENDING
    )
    outcome_code = models.CharField(max_length=64, blank=True)
    outcome = models.TextField(blank=True, help_text="What applying it did, or why it was skipped")
    created_by_kind = models.CharField(max_length=8)
    created_by_id = models.BigIntegerField(null=True, blank=True)
    created_by_name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by_name = models.CharField(max_length=200, blank=True)

    objects = ScheduledChangeQuerySet.as_manager()

    class Meta:
        ordering = ["run_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind=ScheduledChangeKind.PUBLISH, version_number__isnull=False)
                    | Q(kind=ScheduledChangeKind.SPLIT, version_number__isnull=False, weight__isnull=False)
                    | Q(kind=ScheduledChangeKind.START_ROLLOUT, rollout__isnull=False)
                    | Q(kind__in=[ScheduledChangeKind.ENABLE, ScheduledChangeKind.DISABLE])
                ),
                name="scheduled_change_has_its_arguments",
            ),
            models.CheckConstraint(
                condition=Q(state=ScheduledChangeState.PENDING) | Q(ended_at__isnull=False),
                name="scheduled_change_ended_unless_pending",
            ),
            models.CheckConstraint(
                condition=Q(weight__isnull=True) | Q(weight__lte=BUCKETS),
                name="scheduled_change_weight_in_range",
            ),
        ]
        indexes = [
            models.Index(fields=["run_at"], condition=Q(state="pending"), name="scheduled_change_due_idx"),
            models.Index(fields=["flag", "environment", "run_at"], name="scheduled_change_flag_env_idx"),
        ]

    def __str__(self) -> str:
        return f"scheduled change {self.pk}: {self.describe()}"

    def describe(self) -> str:
        """What the change does, in words."""
        where = f"'{self.flag.key}' in '{self.environment.key}'"
        if self.kind == ScheduledChangeKind.PUBLISH:
            return f"publish v{self.version_number} of {where}"
        if self.kind == ScheduledChangeKind.SPLIT:
            share = (self.weight or 0) / 100
            return f"serve v{self.version_number} to {share:g} % of {where}"
        if self.kind == ScheduledChangeKind.START_ROLLOUT:
            return f"start rollout {self.rollout_id} of {where}"
        return f"{self.kind} {where}"


class AggregateCheckpoint(models.Model):
    """The per-arm sums of a flag × environment's analysis window up to a settled minute, so that
    a tick reads these plus only the rollup rows after them (rollouts/aggregate_checkpoints.py).

    One row per flag × environment (at most one rollout or experiment is active there): a
    window that differs from the one the sums were made for (another stage start, arms,
    versions or metric sources) starts from its first minute again and replaces the row.
    """

    flag = models.ForeignKey("flags.Flag", on_delete=models.CASCADE, related_name="+")
    environment = models.ForeignKey("flags.Environment", on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField(help_text="The window's first minute")
    arms = models.JSONField(help_text="Arm name -> the version number it serves")
    sources = models.JSONField(help_text="The histogram metrics and scorers summed, sorted")
    settled_until = models.DateTimeField(help_text="The sums hold the rows of the minutes before this one")
    sums = models.JSONField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment"], name="aggregate_checkpoint_unique_window"
            ),
        ]

    def __str__(self) -> str:
        return f"checkpoint of flag {self.flag_id} in {self.environment_id} until {self.settled_until:%H:%M}"


# -- Paired replay (shadow) ----------------------------------------------------------------------


class ReplayPolicy(models.Model):
    """A rollout's opt-in to paired replay: the share of control-arm samples re-run through the
    candidate (never served), and the replay's own daily budget (rollouts/services/paired_replay.py)."""

    rollout = models.OneToOneField(Rollout, on_delete=models.CASCADE, related_name="replay_policy")
    enabled = models.BooleanField(default=True)
    sample_rate = models.FloatField(default=1.0, help_text="Share of control-arm samples replayed")
    daily_call_budget = models.PositiveIntegerField(default=500, help_text="Replays per UTC day")
    daily_budget_micro_usd = models.BigIntegerField(
        default=5_000_000, help_text="Replay and judge spend per UTC day, micro-USD"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(sample_rate__gte=0, sample_rate__lte=1), name="replay_policy_rate_share"
            ),
            models.CheckConstraint(
                condition=Q(daily_budget_micro_usd__gte=0), name="replay_policy_budget_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"paired replay of rollout {self.rollout_id}"


class ReplayState(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Paired"
    SKIPPED = "skipped", "Not sampled"
    ERROR = "error", "Errored"


class PairedReplay(models.Model):
    """One control-arm sample replayed through a rollout's candidate: the claim that makes it
    replayed once, then the pair's scores. A stale claim (a killed worker) may be retaken."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="replays")
    sample = models.ForeignKey("telemetry.Sample", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=ReplayState.choices, default=ReplayState.CLAIMED)
    worker = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # Per live scorer key: {"control": passed, "candidate": passed, "error": ""}.
    scores = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cost_micro_usd = models.BigIntegerField(default=0)
    request_id = models.CharField(max_length=200, blank=True, help_text="The replay call's request id")

    class Meta:
        indexes = [models.Index(fields=["state", "claimed_at"], name="paired_replay_state_idx")]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "sample"], name="paired_replay_once_per_sample"),
        ]

    def __str__(self) -> str:
        return f"replay of sample {self.sample_id} for rollout {self.rollout_id}: {self.state}"


class ReplaySpend(models.Model):
    """What one rollout's paired replay spent on one UTC day (the budget's counters)."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    calls = models.BigIntegerField(default=0)
    micro_usd = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["rollout", "day"], name="replay_spend_unique_day"),
        ]

    def __str__(self) -> str:
        return f"replay spend of rollout {self.rollout_id} on {self.day}"


class PairedReplayRollup(models.Model):
    """Per minute (of the control call) × environment × flag × baseline × candidate × scorer:
    the pairs' n, Σd and Σd² of d = candidate − control passed, and errored pairs. The analysis
    tick reads them like the other rollups (rollouts/arm_aggregates.py)."""

    bucket = models.DateTimeField(help_text="Start of the minute (UTC) of the control call")
    environment = models.ForeignKey("flags.Environment", on_delete=models.CASCADE, related_name="+")
    flag = models.ForeignKey("flags.Flag", on_delete=models.CASCADE, related_name="+", db_index=False)
    baseline_version = models.PositiveIntegerField()
    candidate_version = models.PositiveIntegerField()
    scorer = models.CharField(max_length=64)
    n = models.BigIntegerField(default=0, help_text="Pairs scored (errors excluded)")
    d_sum = models.BigIntegerField(default=0)
    d_sq_sum = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["bucket"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment", "candidate_version", "baseline_version", "scorer", "bucket"],
                name="paired_rollup_unique_key",
            ),
        ]

    def __str__(self) -> str:
        return f"paired rollup {self.flag_id}/{self.environment_id} {self.bucket}"
