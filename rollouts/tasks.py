"""Every task of the rollouts app. Thin: each calls one service.

Each task's `name=` is the name beat entries and queued messages carry; it is a contract with
messages already in the broker, so it stays put when the code moves.
"""

from __future__ import annotations

from celery import shared_task

from rollouts.services import experiment_ticks, scheduling, ticks


@shared_task(name="rollouts.tick_rollouts", acks_late=True, time_limit=120, soft_time_limit=100)
def tick_rollouts() -> int:
    """Run the analysis tick of every running rollout that is due.

    Idempotency key: (rollout, tick number). A tick is claimed by a conditional UPDATE of the
    rollout's `next_tick_at` and decided under a conditional UPDATE of `ticks_done` with a
    unique Decision per tick, so concurrent or repeated runs decide each tick once.
    """
    return ticks.tick_due_rollouts()


@shared_task(name="rollouts.tick_experiments", acks_late=True, time_limit=120, soft_time_limit=100)
def tick_experiments() -> int:
    """Run the analysis tick of every running experiment that is due.

    Idempotency key: (experiment, tick number), as for rollouts: a claim by conditional UPDATE
    of `next_tick_at`, a conditional UPDATE of `ticks_done` and a unique decision per tick.
    """
    return experiment_ticks.tick_due_experiments()


@shared_task(name="rollouts.apply_scheduled_changes", acks_late=True, time_limit=120, soft_time_limit=100)
def apply_scheduled_changes() -> int:
    """Apply every scheduled change that is due.

    Idempotency key: the scheduled change's id. Each is claimed by a conditional UPDATE of its
    state (pending -> applied) in the transaction that applies it, so several beats and workers
    sweeping at once apply each change once.
    """
    return scheduling.apply_due_changes()
