"""Every task of the evals app: thin, taking ids, each calling one service."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from evals.services import runs


@shared_task(
    name="evals.execute_run",
    acks_late=True,
    time_limit=settings.FLAGSTAFF_EVAL_SLICE_SECONDS + 120,
    soft_time_limit=settings.FLAGSTAFF_EVAL_SLICE_SECONDS + 90,
)
def execute_run(run_id: int) -> str:
    """Do one slice of an eval run (Messages), or one step of it (Batches).

    Idempotency key: (run id, case). Each case is claimed by a conditional UPDATE of its RunCase
    and stored with its answer in one transaction, keyed by (content hash, case hash); a repeated
    or concurrent delivery finds the stored cases done and claims only what nobody holds.
    """
    return runs.execute_run(run_id=run_id)


@shared_task(name="evals.sweep_runs", acks_late=True, time_limit=60, soft_time_limit=50)
def sweep_runs() -> int:
    """Queue active runs untouched for the claim timeout (their worker died) and batch polls.

    Idempotent: it only queues execute_run, which is idempotent per case (see above).
    """
    return runs.sweep_runs()
