"""Background work of the evals app; each task is thin and names its idempotency key."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from controlplane.audit import Actor
from evals.services import calibration, live_scoring, runs
from flags.models import ConfigVersion


@shared_task(name="evals.calibrate_judge", acks_late=True, time_limit=3600, soft_time_limit=3540)
def calibrate_judge(judge_version_id: int, actor_name: str) -> int:
    """Judge every label the version has not judged, then store its calibration.

    Idempotency key: (judge version, label), unique on JudgeVerdict; a rerun pays only for
    labels without a verdict and stores one more calibration row computed from the same data.
    """
    version = ConfigVersion.objects.select_related("flag").get(pk=judge_version_id)
    result = calibration.judge_labels(judge_version=version, actor=Actor.system(actor_name))
    return result.pk


@shared_task(
    name="evals.execute_run",
    acks_late=True,
    time_limit=settings.FLAGSTAFF_EVAL_SLICE_SECONDS + 120,
    soft_time_limit=settings.FLAGSTAFF_EVAL_SLICE_SECONDS + 90,
)
def execute_run(run_id: int, part: int | None = None) -> str:
    """Do one slice of an eval run (Messages; of one of its parts when it has several), or one
    step of it (Batches).

    Idempotency key: (run id, case). Each case is claimed by a conditional UPDATE of its RunCase
    and stored with its answer in one transaction, keyed by (content hash, case hash); a repeated
    or concurrent delivery finds the stored cases done and claims only what nobody holds.
    """
    return runs.execute_run(run_id=run_id, part=part)


@shared_task(name="evals.sweep_runs", acks_late=True, time_limit=60, soft_time_limit=50)
def sweep_runs() -> int:
    """Queue active runs untouched for the claim timeout (their worker died) and batch polls.

    Idempotent: it only queues execute_run, which is idempotent per case (see above).
    """
    return runs.sweep_runs()


@shared_task(name="evals.score_live_samples", acks_late=True, time_limit=300, soft_time_limit=270)
def score_live_samples(limit: int = live_scoring.BATCH_SIZE) -> dict[str, Any]:
    """Score one batch of new telemetry samples of flags with a live scoring policy.

    Idempotency key: the sample. Its LiveScoreClaim (one per sample, taken by insert or by a
    conditional UPDATE of a stale claim) lets one tick score it; scores are unique per
    (sample, scorer). Any number of workers may run this at once.
    """
    report = live_scoring.score_new_samples(limit=limit)
    return {
        "claimed": report.claimed,
        "scored": report.scored,
        "skipped": report.skipped,
        "scores": report.scores,
        "errors": report.errors,
        "judge_micro_usd": report.judge_micro_usd,
        "budget_stopped_flags": sorted(report.budget_stopped),
    }
