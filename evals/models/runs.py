"""Eval runs: a run's progress per case, and the paid outputs and scores that runs share.

A CaseOutput is keyed by (config content hash, case hash), not by run: a re-run of an
unchanged config finds the output and never calls the API again. A RunCase is the per-run
claim on a case, so that a worker killed mid-run resumes without requesting a stored case twice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q

from evals.models.base import SCORE_OR_ERROR, SCORE_RANGE


class RunMode(models.TextChoices):
    MESSAGES = "messages", "Messages API"
    BATCH = "batch", "Message Batches API"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_RUN_STATES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})


class EvalRun(models.Model):
    """A config version (or an unsaved draft) run against one eval set version."""

    flag = models.ForeignKey("flags.Flag", on_delete=models.PROTECT, related_name="eval_runs")
    config_version = models.ForeignKey(
        "flags.ConfigVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="eval_runs"
    )
    draft_content = models.JSONField(null=True, blank=True)
    content_hash = models.CharField(max_length=64, help_text="SHA-256 of the canonical config content")
    eval_set_version = models.ForeignKey(
        "evals.EvalSetVersion", on_delete=models.PROTECT, related_name="runs"
    )
    scorer_versions = models.JSONField(default=dict, blank=True, help_text="{scorer name: version}")
    mode = models.CharField(max_length=16, choices=RunMode.choices, default=RunMode.MESSAGES)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    reason = models.TextField(blank=True, help_text="Why the run is paused or failed, in words")
    batch_id = models.CharField(max_length=200, blank=True)
    concurrency = models.PositiveIntegerField(default=8)
    cases_total = models.PositiveIntegerField(default=0)
    cases_done = models.PositiveIntegerField(default=0)
    cases_reused = models.PositiveIntegerField(default=0)
    cost_micro_usd = models.BigIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lock_version = models.PositiveIntegerField(default=0, help_text="Optimistic locking of state changes")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["flag", "-created_at"], name="eval_run_flag_created_idx"),
            models.Index(fields=["state"], name="eval_run_state_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(config_version__isnull=False) & Q(draft_content__isnull=True))
                | (Q(config_version__isnull=True) & Q(draft_content__isnull=False)),
                name="eval_run_version_xor_draft",
            ),
            models.CheckConstraint(condition=Q(concurrency__gte=1), name="eval_run_concurrency_gte_1"),
            models.CheckConstraint(
                condition=Q(cases_done__lte=F("cases_total")), name="eval_run_done_lte_total"
            ),
            models.CheckConstraint(
                condition=Q(cases_reused__lte=F("cases_done")), name="eval_run_reused_lte_done"
            ),
            models.CheckConstraint(condition=Q(cost_micro_usd__gte=0), name="eval_run_cost_non_negative"),
            models.CheckConstraint(
                condition=~Q(mode=RunMode.MESSAGES) | Q(batch_id=""), name="eval_run_batch_id_only_in_batch"
            ),
            models.CheckConstraint(
                condition=Q(finished_at__isnull=True) | Q(state__in=sorted(FINISHED_RUN_STATES)),
                name="eval_run_finished_only_when_final",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES


class CaseOutput(models.Model):
    """The paid part: one answer of one config content to one case, reused by every later run."""

    content_hash = models.CharField(max_length=64)
    case_hash = models.CharField(max_length=64)
    output = models.JSONField(help_text="The response's content blocks")
    text = models.TextField(blank=True, help_text="The text blocks joined, for text scorers")
    stop_reason = models.CharField(max_length=64, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    iterations = models.PositiveIntegerField(default=1, help_text="Agent loop iterations the answer took")
    cost_micro_usd = models.BigIntegerField(null=True, blank=True, help_text="Null when a price is unknown")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    model = models.CharField(max_length=100)
    request_id = models.CharField(max_length=200, blank=True)
    mode = models.CharField(max_length=16, choices=RunMode.choices, default=RunMode.MESSAGES)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["content_hash", "case_hash"], name="case_output_unique_pair"),
            models.CheckConstraint(
                condition=Q(cost_micro_usd__isnull=True) | Q(cost_micro_usd__gte=0),
                name="case_output_cost_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"output {self.content_hash[:8]} x {self.case_hash[:8]}"


class CaseScore(models.Model):
    """One scorer's result on one output; an error is not a failure (score and passed stay null)."""

    output = models.ForeignKey(CaseOutput, on_delete=models.CASCADE, related_name="scores")
    scorer = models.CharField(max_length=64, help_text="Scorer name in the registry")
    scorer_version = models.PositiveIntegerField()
    params_hash = models.CharField(
        max_length=64, help_text="SHA-256 of the canonical params (a judge's resolved version included)"
    )
    score = models.FloatField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)
    error = models.TextField(blank=True)
    explanation = models.TextField(blank=True)
    judge_version = models.ForeignKey(
        "flags.ConfigVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    usage = models.JSONField(null=True, blank=True, help_text="A judge's own usage")
    cost_micro_usd = models.BigIntegerField(default=0, help_text="A judge's own cost")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["output", "scorer", "scorer_version", "params_hash"], name="case_score_unique_scorer"
            ),
            models.CheckConstraint(condition=SCORE_OR_ERROR, name="case_score_result_or_error"),
            models.CheckConstraint(condition=Q(cost_micro_usd__gte=0), name="case_score_cost_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.scorer} v{self.scorer_version} on {self.output_id}"


class RunCaseState(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed"
    DONE = "done", "Done"
    ERROR = "error", "Error"


class RunCase(models.Model):
    """A case's progress in one run, and the claim a worker takes before paying for it."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="run_cases")
    case = models.ForeignKey("evals.EvalCase", on_delete=models.PROTECT, related_name="run_cases")
    state = models.CharField(max_length=16, choices=RunCaseState.choices, default=RunCaseState.PENDING)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    output = models.ForeignKey(
        CaseOutput, null=True, blank=True, on_delete=models.PROTECT, related_name="run_cases"
    )
    reused = models.BooleanField(default=False)
    passed = models.BooleanField(null=True, blank=True, help_text="Every required scorer passed")
    score = models.FloatField(null=True, blank=True, help_text="Weighted mean of the scorers' scores")
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "case__position"]
        indexes = [models.Index(fields=["run", "state"], name="run_case_run_state_idx")]
        constraints = [
            models.UniqueConstraint(fields=["run", "case"], name="run_case_unique_case"),
            models.CheckConstraint(
                condition=~Q(state=RunCaseState.DONE) | Q(output__isnull=False),
                name="run_case_done_has_output",
            ),
            models.CheckConstraint(
                condition=~Q(state=RunCaseState.CLAIMED) | Q(claimed_at__isnull=False),
                name="run_case_claim_has_time",
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | SCORE_RANGE, name="run_case_score_range"
            ),
            models.CheckConstraint(
                condition=~Q(reused=True) | Q(output__isnull=False), name="run_case_reused_has_output"
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} case {self.case_id}: {self.state}"
