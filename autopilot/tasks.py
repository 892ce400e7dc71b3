"""Every task of the autopilot app. Thin: each calls one service.

Each task's `name=` is the name beat entries and queued messages carry; it stays put when the
code moves.
"""

from __future__ import annotations

from celery import shared_task

from autopilot import services


@shared_task(name="autopilot.advance_migrations", acks_late=True, time_limit=300, soft_time_limit=270)
def advance_migrations() -> int:
    """Judge the gate of every migration whose eval runs finished, and propose its rollout.

    Idempotency key: the migration's state. Each is judged under its row lock only while it is
    `gate_running`, so a repeated or concurrent sweep judges it once.
    """
    return services.advance_open_migrations()
