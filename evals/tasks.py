"""Background work of the evals app; every task keeps its `name=` for good (beat and queues use it)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from evals.services import live_scoring


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
