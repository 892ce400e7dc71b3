"""Every task of the rollouts app. Thin: each calls one service.

Each task's `name=` is the name beat entries and queued messages carry; it is a contract with
messages already in the broker, so it stays put when the code moves.
"""

from __future__ import annotations

from celery import shared_task

from rollouts.services import experiment_ticks, paired_replay, rehearsals, scheduling, ticks


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


@shared_task(name="rollouts.run_rehearsal", acks_late=True, time_limit=300, soft_time_limit=280)
def run_rehearsal(rehearsal_id: int) -> str | None:
    """Run one requested rollback rehearsal.

    Idempotency key: the rehearsal's id. It is claimed by a conditional UPDATE from pending to
    running, so a repeated or redelivered message runs nothing a second time.
    """
    rehearsal = rehearsals.run_rehearsal(rehearsal_id=rehearsal_id)
    return rehearsal.state if rehearsal else None


@shared_task(name="rollouts.sweep_rehearsals", acks_late=True, time_limit=120, soft_time_limit=100)
def sweep_rehearsals() -> int:
    """Request the rehearsal of every due schedule; send lost pending rehearsals again.

    Idempotency key: (schedule, due time). A due schedule is claimed by a conditional UPDATE of
    its `next_run_at`, so concurrent or repeated sweeps request each due rehearsal once.
    """
    return rehearsals.sweep_rehearsals()


@shared_task(name="rollouts.apply_scheduled_changes", acks_late=True, time_limit=120, soft_time_limit=100)
def apply_scheduled_changes() -> int:
    """Apply every scheduled change that is due.

    Idempotency key: the scheduled change's id. Each is claimed by a conditional UPDATE of its
    state (pending -> applied) in the transaction that applies it, so several beats and workers
    sweeping at once apply each change once.
    """
    return scheduling.apply_due_changes()


@shared_task(name="rollouts.replay_control_samples", acks_late=True, time_limit=600, soft_time_limit=580)
def replay_control_samples(limit: int = paired_replay.BATCH_SIZE) -> int:
    """Replay one batch of control-arm samples through opted-in rollouts' candidates.

    Idempotency key: (rollout, sample). A replay is claimed by inserting its row under the
    unique key (or retaking a stale claim by conditional UPDATE), and stored only while the
    claim is still this tick's, so concurrent or repeated runs pair each sample once.
    """
    return paired_replay.replay_control_samples(limit=limit).paired
