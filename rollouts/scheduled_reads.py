"""What a page shows of a flag's scheduled changes in an environment."""

from __future__ import annotations

from dataclasses import dataclass

from flags.models import Environment, Flag
from rollouts.models import ScheduledChange, ScheduledChangeState

RECENT = 5
PENDING_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Scheduled:
    flag: Flag
    environment: Environment
    changes: list[ScheduledChange]


def scheduled_for(flag: Flag, environment: Environment) -> Scheduled:
    """The pending changes, soonest first (the page links to the rest), then the few that ended last."""
    changes = ScheduledChange.objects.select_related("flag", "environment").filter(
        flag=flag, environment=environment
    )
    pending = list(
        changes.filter(state=ScheduledChangeState.PENDING).order_by("run_at", "id")[:PENDING_SHOWN]
    )
    ended = list(changes.exclude(state=ScheduledChangeState.PENDING).order_by("-ended_at", "-id")[:RECENT])
    return Scheduled(flag, environment, [*pending, *ended])
