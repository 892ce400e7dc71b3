"""What pages and the deploy checklist read of rollback rehearsals."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from flags.models import Environment, Flag
from rollouts.models import RehearsalSchedule, RehearsalState, RollbackRehearsal


def latest_rehearsal(
    *, flag: Flag, environment: Environment, passed: bool = False, within: timedelta | None = None
) -> RollbackRehearsal | None:
    """The latest finished (or, with `passed`, successful) rehearsal of `flag` in `environment`,
    optionally no older than `within`: the checklist's "a successful rollback rehearsal within
    30 days" is `latest_rehearsal(flag=f, environment=e, passed=True, within=timedelta(days=30))`."""
    found = RollbackRehearsal.objects.for_pair(flag, environment).filter(finished_at__isnull=False)
    if passed:
        found = found.filter(state=RehearsalState.PASSED)
    if within is not None:
        found = found.filter(finished_at__gte=timezone.now() - within)
    return found.select_related("flag", "environment", "candidate").order_by("-finished_at", "-id").first()


def rehearsals_for(
    *, flag: Flag, environment: Environment | None = None, limit: int = 10
) -> list[RollbackRehearsal]:
    """The newest rehearsals of a flag (in one environment), for its pages."""
    found = RollbackRehearsal.objects.filter(flag=flag).select_related("environment", "candidate")
    if environment is not None:
        found = found.filter(environment=environment)
    return list(found.order_by("-requested_at", "-id")[:limit])


def schedules_for(*, flag: Flag) -> list[RehearsalSchedule]:
    return list(RehearsalSchedule.objects.filter(flag=flag).select_related("environment"))


def rehearsal_panel(*, flag: Flag, environment: Environment, limit: int = 5) -> dict[str, object]:
    """The `rehearsals` context of the rollout page's partial (templates/rollouts/_rehearsals.html)
    and of the rehearsals page: the newest rehearsals, the latest passed one, the schedule, and
    whether one is under way (the partial then refreshes itself)."""
    items = rehearsals_for(flag=flag, environment=environment, limit=limit)
    return {
        "flag": flag,
        "environment": environment,
        "items": items,
        "latest_passed": latest_rehearsal(flag=flag, environment=environment, passed=True),
        "schedule": RehearsalSchedule.objects.filter(flag=flag, environment=environment).first(),
        "under_way": any(item.is_active for item in items),
    }
