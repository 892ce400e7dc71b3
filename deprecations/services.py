"""The deprecation watch's one write: notify runway thresholds as incidents and webhooks.

Per flag and environment that serves a retiring or retired model (a live exposure, see
deprecations/exposures.py), each threshold reached (deprecations/runway.py) is claimed once by
inserting its DeprecationNotice, whose unique constraint makes a repeated or concurrent check a
no-op. A claimed notice opens the pair's `deprecation` incident (webhook `incident.opened`) or,
when one is open, escalates it (`incident.escalated`): one open incident per flag and
environment, as for every kind, whose severity is the highest of its notices. The exposures
are its evidence. When the pair no longer serves a watched model with a runway, the incident
is resolved. Exposures that do not reach traffic (a disabled flag, a draft rollout, an eval
set's judge) are listed by the page and the API, not notified.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from controlplane.audit import Actor
from controlplane.errors import Conflict
from deprecations import runway as rules
from deprecations.exposures import Exposure, WatchedModel, runway
from deprecations.models import DeprecationNotice
from flags.models import ClaudeModel, FlagState
from telemetry.models.incidents import Incident, IncidentKind
from telemetry.services.incidents import escalate_incident, open_incident, resolve_incident

logger = logging.getLogger(__name__)

CHECK_ACTOR = Actor.system("celery:check_deprecations")

Pair = tuple[str, str]  # (flag key, environment key)


@dataclass
class CheckResult:
    notified: list[int] = field(default_factory=list)  # notice ids
    opened: list[int] = field(default_factory=list)  # incident ids
    escalated: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Due:
    model: WatchedModel
    threshold: int
    exposures: list[Exposure]


def _summary(due: _Due, pair: Pair) -> str:
    model, (flag, environment) = due.model, pair
    severity = rules.severity(due.threshold).capitalize()
    switch = f"; switch to {model.replacement}" if model.replacement else ""
    if due.threshold == rules.RETIRED:
        return f"{severity}: {flag} @ {environment} still serves {model.id}, {model.runway}{switch}"
    return f"{severity}: {flag} @ {environment} serves {model.id}, which {model.runway}{switch}"


def _evidence(due: _Due, pair_exposures: list[Exposure], notices: list[dict[str, Any]]) -> dict[str, Any]:
    model = due.model
    severities = [notice["severity"] for notice in notices]
    return {
        "severity": max(severities, key=rules.severity_rank),
        "model": model.id,
        "lifecycle": model.lifecycle,
        "retires_at": model.retires_at.isoformat() if model.retires_at else None,
        "days_left": model.days_left,
        "threshold_days": due.threshold,
        "replacement": model.replacement,
        "runway": model.runway,
        "exposures": [exposure.as_dict() for exposure in pair_exposures],
        "notices": notices,
    }


def _claim(due: _Due, state: FlagState, model_row: ClaudeModel) -> DeprecationNotice | None:
    """Insert the threshold's notice; None when it was notified before (the unique constraint)."""
    try:
        with transaction.atomic():
            return DeprecationNotice.objects.create(
                model=model_row,
                flag=state.flag,
                environment=state.environment,
                threshold_days=due.threshold,
                severity=rules.severity(due.threshold),
                retires_at=due.model.retires_at,
                days_left=due.model.days_left,
            )
    except IntegrityError:
        return None


def _notice_dict(notice: DeprecationNotice) -> dict[str, Any]:
    return {
        "model": notice.model.model_id,
        "threshold_days": notice.threshold_days,
        "severity": notice.severity,
        "days_left": notice.days_left,
        "notified_at": notice.notified_at.isoformat(),
    }


def _open_deprecation_incident(state: FlagState) -> QuerySet[Incident]:
    """The pair's open deprecation incident (one at most), locked until the transaction ends."""
    return (
        Incident.objects.open()
        .filter(kind=IncidentKind.DEPRECATION, flag=state.flag, environment=state.environment)
        .select_for_update()
    )


@transaction.atomic
def _notify(
    *, due: _Due, state: FlagState, model_row: ClaudeModel, pair_exposures: list[Exposure], actor: Actor
) -> tuple[DeprecationNotice, Incident, bool] | None:
    """Claim the notice and open or escalate the pair's incident; True when it opened one."""
    notice = _claim(due, state, model_row)
    if notice is None:
        return None
    pair: Pair = (state.flag.key, state.environment.key)
    open_incident_row = _open_deprecation_incident(state).first()
    history = list(open_incident_row.evidence.get("notices", [])) if open_incident_row else []
    notices = [*history, _notice_dict(notice)]
    evidence = _evidence(due, pair_exposures, notices)
    summary = _summary(due, pair)
    if open_incident_row is not None and rules.severity_rank(notice.severity) < rules.severity_rank(
        str(open_incident_row.evidence.get("severity", "info"))
    ):
        # A less urgent model of the pair: the incident keeps naming the most urgent one and
        # gains this notice and the current exposures.
        summary = open_incident_row.summary
        evidence = {**open_incident_row.evidence, "exposures": evidence["exposures"], "notices": notices}
    incident: Incident | None = None
    if open_incident_row is not None and escalate_incident(
        incident=open_incident_row, summary=summary, evidence=evidence, actor=actor
    ):
        incident = open_incident_row
    opened = False
    if incident is None:
        incident = open_incident(
            kind=IncidentKind.DEPRECATION, state=state, summary=summary, evidence=evidence, actor=actor
        )
        opened = incident is not None
    if incident is None:
        # Another check opened the pair's incident after the read above (for another model's
        # threshold): this notice escalates that one.
        incident = _open_deprecation_incident(state).get()
        escalate_incident(incident=incident, summary=summary, evidence=evidence, actor=actor)
    notice.incident = incident
    notice.save(update_fields=["incident"])
    return notice, incident, opened


def check_deprecations(*, today: date | None = None, actor: Actor = CHECK_ACTOR) -> CheckResult:
    """Notify every threshold the runways have reached, and resolve incidents no longer due.

    Idempotent: a notice is claimed once per (model, flag, environment, threshold) by its
    unique constraint, and resolving goes through a conditional UPDATE of open incidents.
    """
    today = today or timezone.now().date()
    watched = runway(today=today)
    live_by_pair: dict[Pair, list[Exposure]] = defaultdict(list)
    due_by_pair: dict[Pair, list[_Due]] = defaultdict(list)
    for model in watched:
        threshold = model.threshold
        by_pair: dict[Pair, list[Exposure]] = defaultdict(list)
        for exposure in model.live_exposures:
            if exposure.environment is not None:
                by_pair[(exposure.flag, exposure.environment)].append(exposure)
        for pair, found in by_pair.items():
            if threshold is None:
                continue
            live_by_pair[pair].extend(found)
            due_by_pair[pair].append(_Due(model, threshold, found))
    result = CheckResult()
    states = {
        (state.flag.key, state.environment.key): state
        for state in FlagState.objects.select_related("flag", "environment").filter(
            flag__key__in={pair[0] for pair in due_by_pair}
        )
    }
    model_rows = {
        row.model_id: row for row in ClaudeModel.objects.filter(model_id__in={m.id for m in watched})
    }
    for pair, dues in due_by_pair.items():
        # Least urgent first, so the incident's words end on the most urgent model.
        for due in sorted(dues, key=lambda d: rules.severity_rank(rules.severity(d.threshold))):
            done = _notify(
                due=due,
                state=states[pair],
                model_row=model_rows[due.model.id],
                pair_exposures=live_by_pair[pair],
                actor=actor,
            )
            if done is None:
                continue
            notice, incident, opened = done
            result.notified.append(notice.pk)
            (result.opened if opened else result.escalated).append(incident.pk)
    for incident in (
        Incident.objects.open().filter(kind=IncidentKind.DEPRECATION).select_related("flag", "environment")
    ):
        if (incident.flag.key, incident.environment.key) in due_by_pair:
            continue
        try:
            resolve_incident(
                incident=incident, actor=actor, reason="It no longer serves a retiring or retired model."
            )
        except Conflict:
            continue  # resolved meanwhile, by hand or by another check
        result.resolved.append(incident.pk)
    if result.notified or result.resolved:
        logger.info(
            "deprecation check: notified %s, opened %s, escalated %s, resolved %s",
            result.notified,
            result.opened,
            result.escalated,
            result.resolved,
            extra={"opened": result.opened, "escalated": result.escalated, "resolved": result.resolved},
        )
    return result
