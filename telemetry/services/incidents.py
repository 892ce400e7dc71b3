"""Budgets: editing a flag's overrides, and the periodic check that opens and resolves incidents.

The check reads rollups only (never raw calls): per enabled flag and environment, the latency
histograms of the last FLAGSTAFF_BUDGET_WINDOW_MINUTES give TTFT and total p95, and the
cost of the current UTC day is compared with the daily cost budget. A latency metric is judged
only with at least FLAGSTAFF_BUDGET_MIN_CALLS observations in the window; with fewer, an open
latency incident stays open (missing data is not a recovery) and none is opened. An open latency
incident resolves only once every p95 is at most FLAGSTAFF_BUDGET_RECOVERY_PERCENT of its budget:
between that and the budget it stays open, so a p95 at the budget does not flap.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags.models import Flag, FlagState
from flags.services.guards import lock_writable_flag
from telemetry import budgets as rules
from telemetry import histograms
from telemetry.models.calls import Rollup, RollupHistogram
from telemetry.models.incidents import Incident, IncidentKind, IncidentState, WebhookEvent
from telemetry.services.webhooks import enqueue_event

logger = logging.getLogger(__name__)

CHECK_ACTOR = Actor.system("celery:check_budgets")
MICRO = Decimal(1_000_000)
# Histogram metric of the rollups -> the budget it is judged against.
LATENCY_METRICS = {
    RollupHistogram.Metric.TTFT: rules.TTFT_P95_MS,
    RollupHistogram.Metric.LATENCY: rules.TOTAL_P95_MS,
}
METRIC_LABELS = {rules.TTFT_P95_MS: "TTFT p95", rules.TOTAL_P95_MS: "total latency p95"}

Pair = tuple[int, int]  # (environment_id, flag_id)


# Editing


@transaction.atomic
def update_flag_budgets(*, flag: Flag, changes: Mapping[str, Any], actor: Actor, reason: str = "") -> Flag:
    """Set or clear (None) per-flag budget overrides; cleared keys fall back to the surface default."""
    try:
        cleaned = rules.clean_overrides(changes)
    except rules.BudgetError as error:
        raise InvalidInput("The budgets are not valid.", errors=error.errors) from None
    flag = lock_writable_flag(flag)
    before = dict(flag.budgets or {})
    after = rules.merge_overrides(before, cleaned)
    if after == before:
        return flag
    flag.budgets = after
    flag.save(update_fields=["budgets"])
    diff = audit.changed_fields(before, after, rules.BUDGET_KEYS)
    audit.record(
        actor=actor,
        action="flag.budgets_changed",
        target=flag,
        changes=diff,
        reason=reason,
        flag_key=flag.key,
    )
    return flag


def budgets_for(flag: Flag) -> rules.Budgets:
    return rules.effective_budgets(flag.surface, flag.budgets or {})


# Incidents


def incident_payload(incident: Incident) -> dict[str, Any]:
    """What webhooks and the API say about an incident."""
    return {
        "id": incident.pk,
        "kind": incident.kind,
        "state": incident.state,
        "summary": incident.summary,
        "environment": incident.environment.key,
        "flag": incident.flag.key,
        "opened_at": incident.opened_at,
        "resolved_at": incident.resolved_at,
        "evidence": incident.evidence,
        "resolution": incident.resolution,
    }


def _announce(
    *, incident: Incident, action: str, changes: dict[str, Any], event: str, actor: Actor, reason: str = ""
) -> None:
    """Audit a change of an incident and queue its webhook, in the caller's transaction."""
    audit.record(
        actor=actor,
        action=action,
        target=incident,
        changes=changes,
        reason=reason,
        flag_key=incident.flag.key,
        environment_key=incident.environment.key,
    )
    enqueue_event(event=event, payload=incident_payload(incident))


def _open_incident(
    *, kind: str, state: FlagState, summary: str, evidence: dict[str, Any], now: datetime, actor: Actor
) -> Incident | None:
    """Open an incident unless one of this kind is already open for the pair (then None)."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                incident = Incident.objects.create(
                    kind=kind,
                    environment=state.environment,
                    flag=state.flag,
                    summary=summary[:300],
                    evidence=evidence,
                    opened_at=now,
                )
        except IntegrityError:
            return None  # the partial unique constraint: another check opened it first
        _announce(
            incident=incident,
            action="incident.opened",
            changes={"kind": kind, "summary": incident.summary, "evidence": evidence},
            event=WebhookEvent.INCIDENT_OPENED,
            actor=actor,
        )
    return incident


@transaction.atomic
def _close_incident(
    *, incident: Incident, resolution: dict[str, Any], now: datetime, actor: Actor, reason: str = ""
) -> bool:
    """Resolve an open incident; False when it was already resolved (someone else did it)."""
    resolved = Incident.objects.filter(pk=incident.pk, state=IncidentState.OPEN).update(
        state=IncidentState.RESOLVED, resolved_at=now, resolution=resolution
    )
    if resolved != 1:
        return False
    incident.refresh_from_db()
    _announce(
        incident=incident,
        action="incident.resolved",
        changes={"kind": incident.kind, "resolution": resolution},
        event=WebhookEvent.INCIDENT_RESOLVED,
        actor=actor,
        reason=reason,
    )
    return True


def open_incident(
    *, kind: str, state: FlagState, summary: str, evidence: dict[str, Any], actor: Actor
) -> Incident | None:
    """Open an incident for an app above telemetry (a rollout's rollback), in the caller's
    transaction, announced by webhook; None when one of this kind is already open for the pair."""
    return _open_incident(
        kind=kind, state=state, summary=summary, evidence=evidence, now=timezone.now(), actor=actor
    )


@transaction.atomic
def escalate_incident(*, incident: Incident, summary: str, evidence: dict[str, Any], actor: Actor) -> bool:
    """Give an open incident new words and evidence (it got more urgent), announced by webhook;
    False when it was resolved meanwhile (the caller then opens a new one)."""
    updated = Incident.objects.filter(pk=incident.pk, state=IncidentState.OPEN).update(
        summary=summary[:300], evidence=evidence
    )
    if updated != 1:
        return False
    incident.refresh_from_db()
    _announce(
        incident=incident,
        action="incident.escalated",
        changes={"kind": incident.kind, "summary": incident.summary, "evidence": evidence},
        event=WebhookEvent.INCIDENT_ESCALATED,
        actor=actor,
    )
    return True


def resolve_incident(*, incident: Incident, actor: Actor, reason: str = "") -> Incident:
    """Resolve an incident by hand (e.g. traffic stopped, so the check cannot see a recovery)."""
    resolution = {"resolved_by": actor.name, "reason": reason or "resolved by hand"}
    if not _close_incident(
        incident=incident, resolution=resolution, now=timezone.now(), actor=actor, reason=reason
    ):
        raise Conflict(f"Incident {incident.pk} is already resolved.", code="already_resolved")
    incident.refresh_from_db()
    return incident


# The periodic check


@dataclass
class Measurements:
    """What the rollups say about every flag and environment pair (three aggregate queries)."""

    window_start: datetime
    window_end: datetime
    day_start: datetime
    calls: dict[Pair, int] = field(default_factory=dict)
    errors: dict[Pair, int] = field(default_factory=dict)
    histograms: dict[Pair, dict[str, dict[int, int]]] = field(default_factory=dict)
    cost_micro_usd: dict[Pair, int] = field(default_factory=dict)
    calls_today: dict[Pair, int] = field(default_factory=dict)
    cost_unknown_calls: dict[Pair, int] = field(default_factory=dict)


def measure(*, now: datetime, window: timedelta) -> Measurements:
    start = now - window
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    found = Measurements(window_start=start, window_end=now, day_start=day_start)
    attributed = Rollup.objects.filter(flag__isnull=False, environment__isnull=False)
    for row in (
        attributed.between(start, now)
        .values("environment_id", "flag_id")
        .annotate(calls=Sum("calls"), errors=Sum("errors"))
    ):
        pair = (row["environment_id"], row["flag_id"])
        found.calls[pair], found.errors[pair] = row["calls"] or 0, row["errors"] or 0
    histogram_rows = (
        RollupHistogram.objects.filter(
            rollup__bucket__gte=start,
            rollup__bucket__lt=now,
            rollup__flag__isnull=False,
            rollup__environment__isnull=False,
        )
        .values("rollup__environment_id", "rollup__flag_id", "metric", "bucket")
        .annotate(n=Sum("n"))
    )
    histogram_maps: dict[Pair, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for row in histogram_rows:
        pair = (row["rollup__environment_id"], row["rollup__flag_id"])
        histogram_maps[pair][row["metric"]][row["bucket"]] = row["n"] or 0
    found.histograms = {pair: dict(metrics) for pair, metrics in histogram_maps.items()}
    for row in (
        attributed.between(day_start, now + timedelta(minutes=1))
        .values("environment_id", "flag_id")
        .annotate(cost=Sum("cost_micro_usd"), calls=Sum("calls"), unknown=Sum("cost_unknown_calls"))
    ):
        pair = (row["environment_id"], row["flag_id"])
        found.cost_micro_usd[pair] = row["cost"] or 0
        found.calls_today[pair] = row["calls"] or 0
        found.cost_unknown_calls[pair] = row["unknown"] or 0
    return found


@dataclass(frozen=True, slots=True)
class Verdict:
    """`breached` True/False, or None when the data cannot say (the incident state is kept)."""

    breached: bool | None
    summary: str
    evidence: dict[str, Any]


def _window(found: Measurements) -> dict[str, Any]:
    minutes = round((found.window_end - found.window_start).total_seconds() / 60)
    return {"start": found.window_start.isoformat(), "end": found.window_end.isoformat(), "minutes": minutes}


def judge_latency(
    state: FlagState, found: Measurements, *, min_calls: int, recovery_percent: int, is_open: bool
) -> Verdict:
    """Over budget: breached. Within it: not breached, except for an incident already open,
    which needs every p95 at most `recovery_percent` of its budget to recover."""
    pair = (state.environment_id, state.flag_id)
    budgets = budgets_for(state.flag)
    metrics = found.histograms.get(pair, {})
    p95: dict[str, float | None] = {}
    observations: dict[str, int] = {}
    for metric, key in LATENCY_METRICS.items():
        counts = metrics.get(metric, {})
        observations[key] = sum(counts.values())
        p95[key] = histograms.percentiles(counts, (0.95,))[0.95] if observations[key] >= min_calls else None
    checks = rules.latency_checks(budgets, p95)
    window = _window(found)
    evidence: dict[str, Any] = {
        "window": window,
        "surface": state.flag.surface,
        "calls": found.calls.get(pair, 0),
        "errors": found.errors.get(pair, 0),
        "observations": observations,
        "min_calls": min_calls,
        "checks": [check.as_dict() for check in checks],
    }
    breaches = [check for check in checks if check.breached]
    label = f"{state.flag.key} @ {state.environment.key}"
    if breaches:
        parts = [
            f"{METRIC_LABELS[c.metric]} {float(c.value or 0):,.0f} ms over budget {int(c.budget):,} ms"
            for c in breaches
        ]
        summary = f"{label}: {'; '.join(parts)} (last {window['minutes']} min)"
        return Verdict(True, summary, evidence)
    if any(check.value is None for check in checks):
        return Verdict(None, f"{label}: too few calls to judge latency", evidence)
    if is_open:
        evidence["recovery_percent"] = recovery_percent
        if not all(check.within_share(recovery_percent) for check in checks):
            return Verdict(None, f"{label}: within budget, not yet {recovery_percent} % of it", evidence)
    return Verdict(False, f"{label}: latency within budget", evidence)


def judge_cost(state: FlagState, found: Measurements) -> Verdict:
    pair = (state.environment_id, state.flag_id)
    budget = budgets_for(state.flag).daily_cost_usd
    spent = (Decimal(found.cost_micro_usd.get(pair, 0)) / MICRO).quantize(Decimal("0.000001"))
    evidence: dict[str, Any] = {
        "day": found.day_start.date().isoformat(),
        "until": found.window_end.isoformat(),
        "cost_usd": str(spent),
        "budget_usd": None if budget is None else str(budget),
        "budget_source": budgets_for(state.flag).source(rules.DAILY_COST_USD),
        "calls": found.calls_today.get(pair, 0),
        "calls_without_cost": found.cost_unknown_calls.get(pair, 0),
    }
    label = f"{state.flag.key} @ {state.environment.key}"
    if budget is not None and spent > budget:
        return Verdict(
            True, f"{label}: ${spent:,.2f} spent today, over the ${budget:,.2f} daily budget", evidence
        )
    return Verdict(False, f"{label}: spend within budget", evidence)


@dataclass
class CheckResult:
    checked: int = 0
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


def check_budgets(*, now: datetime | None = None, actor: Actor = CHECK_ACTOR) -> CheckResult:
    """Judge every enabled flag and environment and open or resolve incidents accordingly.

    Idempotent: opening relies on the one-open-incident-per-(kind, environment, flag)
    constraint and resolving on a conditional UPDATE of open rows, so a repeated or concurrent
    run changes nothing more.
    """
    now = now or timezone.now()
    window = timedelta(minutes=settings.FLAGSTAFF_BUDGET_WINDOW_MINUTES)
    min_calls = settings.FLAGSTAFF_BUDGET_MIN_CALLS
    recovery_percent = settings.FLAGSTAFF_BUDGET_RECOVERY_PERCENT
    found = measure(now=now, window=window)
    states = list(
        FlagState.objects.filter(enabled=True, flag__archived_at__isnull=True).select_related(
            "flag", "environment"
        )
    )
    open_incidents = {
        (incident.kind, incident.environment_id, incident.flag_id): incident
        for incident in Incident.objects.open().select_related("flag", "environment")
    }
    result = CheckResult(checked=len(states))
    for state in states:
        latency_open = (IncidentKind.LATENCY_BUDGET, state.environment_id, state.flag_id) in open_incidents
        verdicts = {
            IncidentKind.LATENCY_BUDGET: judge_latency(
                state, found, min_calls=min_calls, recovery_percent=recovery_percent, is_open=latency_open
            ),
            IncidentKind.COST_BUDGET: judge_cost(state, found),
        }
        for kind, verdict in verdicts.items():
            existing = open_incidents.pop((kind, state.environment_id, state.flag_id), None)
            if verdict.breached and existing is None:
                incident = _open_incident(
                    kind=kind,
                    state=state,
                    summary=verdict.summary,
                    evidence=verdict.evidence,
                    now=now,
                    actor=actor,
                )
                if incident is not None:
                    result.opened.append(incident.pk)
            elif verdict.breached is False and existing is not None:
                resolution = {"reason": "back within budget", **verdict.evidence}
                if _close_incident(incident=existing, resolution=resolution, now=now, actor=actor):
                    result.resolved.append(existing.pk)
    # Whatever is left open belongs to a flag that is no longer enabled (or archived) there.
    for incident in open_incidents.values():
        if incident.kind not in (IncidentKind.LATENCY_BUDGET, IncidentKind.COST_BUDGET):
            continue
        resolution = {"reason": "the flag is no longer enabled in this environment"}
        if _close_incident(incident=incident, resolution=resolution, now=now, actor=actor):
            result.resolved.append(incident.pk)
    if result.opened or result.resolved:
        logger.info(
            "budget check: %s pairs, opened %s, resolved %s",
            result.checked,
            result.opened,
            result.resolved,
            extra={"opened": result.opened, "resolved": result.resolved},
        )
    return result
