"""A rollout's paired replay as its page and the API show it: settings, today's spend against
the daily budget, and how many control samples were paired, skipped or errored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Count
from django.utils import timezone

from rollouts.models import PairedReplay, ReplayPolicy, ReplayState, Rollout
from rollouts.services.paired_replay import PAIRED_METRIC, budget_spent, spend_today


@dataclass(frozen=True)
class ReplayStatus:
    enabled: bool
    sample_rate: float
    daily_call_budget: int
    daily_budget_micro_usd: int
    calls_today: int
    micro_usd_today: int
    budget_spent: bool
    paired: int
    skipped: int
    errored: int
    scorers: tuple[str, ...]


def replay_status(rollout: Rollout, *, today: date | None = None) -> ReplayStatus | None:
    """None when the rollout has no paired replay (no policy row)."""
    policy = ReplayPolicy.objects.filter(rollout=rollout).first()
    if policy is None:
        return None
    spend = spend_today(rollout.pk, today=today or timezone.now().date())
    counts = dict(
        PairedReplay.objects.filter(rollout=rollout)
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
        .order_by()
    )
    return ReplayStatus(
        enabled=policy.enabled,
        sample_rate=policy.sample_rate,
        daily_call_budget=policy.daily_call_budget,
        daily_budget_micro_usd=policy.daily_budget_micro_usd,
        calls_today=spend.calls,
        micro_usd_today=spend.micro_usd,
        budget_spent=budget_spent(policy, spend),
        paired=counts.get(ReplayState.DONE, 0),
        skipped=counts.get(ReplayState.SKIPPED, 0),
        errored=counts.get(ReplayState.ERROR, 0),
        scorers=tuple(
            sorted(rollout.guardrails.filter(metric=PAIRED_METRIC).values_list("scorer", flat=True))
        ),
    )
