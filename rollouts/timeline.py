"""The auditor's timeline: a flag's (or an environment's) history read from the audit log.

Every version, gate verdict, publish, enable or disable, split, rollout, stage change, analysis
decision, approval, waiver, rehearsal, rollback and scheduled change, each linked to the pages
that hold its evidence. Nothing is stored twice: the timeline is a filter over the append-only,
hash-chained log (controlplane/audit.py), so its export is the audit export with the same
filter (`TIMELINE_ACTIONS`), checkpointed and verifiable like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from controlplane.models import ActorKind, AuditEntry
from flags.models import ConfigVersion

# What the timeline shows, as the audit filter's action list (exact actions and prefixes). The
# approval, waiver, rehearsal and rollback prefixes name what those pieces record.
TIMELINE_ACTIONS: tuple[str, ...] = (
    "version.",
    "gate.",
    "flag.",
    "split.",
    "rollout.",
    "experiment.",
    "approval.",
    "checklist.",
    "waiver.",
    "rehearsal.",
    "rollback.",
    "scheduled_change.",
    "incident.",
)
# Actors whose transitions are an analysis tick's decision (rollouts/services/ticks.py and
# experiment_ticks.py name their actors so).
DECISION_ACTORS = ("celery:tick_",)


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    label: str


VERSION = Category("version", "Version")
GATE = Category("gate", "Eval gate")
PUBLISH = Category("publish", "Publish")
FLAG = Category("flag", "Flag")
SPLIT = Category("split", "Split")
ROLLOUT = Category("rollout", "Rollout")
STAGE = Category("stage", "Stage change")
DECISION = Category("decision", "Decision")
EXPERIMENT = Category("experiment", "Experiment")
APPROVAL = Category("approval", "Approval")
WAIVER = Category("waiver", "Waiver")
REHEARSAL = Category("rehearsal", "Rehearsal")
ROLLBACK = Category("rollback", "Rollback")
SCHEDULED = Category("scheduled", "Scheduled change")
INCIDENT = Category("incident", "Incident")
OTHER = Category("other", "Other")

# First match wins: exact actions, then prefixes and suffixes.
_EXACT = {
    "version.published": PUBLISH,
    "rollout.stage_advanced": STAGE,
    "rollout.promoted": STAGE,
    "rollout.rolled_back": ROLLBACK,
}
_PREFIXES = (
    ("version.", VERSION),
    ("gate.", GATE),
    ("flag.", FLAG),
    ("split.", SPLIT),
    ("rollout.", ROLLOUT),
    ("experiment.", EXPERIMENT),
    ("approval.", APPROVAL),
    ("waiver.", WAIVER),
    ("rehearsal.", REHEARSAL),
    ("rollback.", ROLLBACK),
    ("scheduled_change.", SCHEDULED),
    ("incident.", INCIDENT),
)


def category_of(entry: AuditEntry) -> Category:
    if entry.actor_kind == ActorKind.SYSTEM and entry.actor_name.startswith(DECISION_ACTORS):
        return DECISION
    if entry.action.endswith((".waived", ".waiver_granted")):
        return WAIVER
    if entry.action.endswith(".rolled_back"):
        return ROLLBACK
    if entry.action in _EXACT:
        return _EXACT[entry.action]
    return next((category for prefix, category in _PREFIXES if entry.action.startswith(prefix)), OTHER)


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Event:
    entry: AuditEntry
    category: Category
    links: list[Link]
    evidence: list[str]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _after(changes: dict[str, Any], field: str) -> Any:
    value = changes.get(field)
    return value.get("after") if isinstance(value, dict) else value


def _version_link(flag_key: str, number: int | None, label: str = "") -> list[Link]:
    if not flag_key or number is None:
        return []
    return [Link(label or f"v{number}", reverse("flags:version", args=[flag_key, number]))]


def _rollout_links(entry: AuditEntry, anchor: str = "") -> list[Link]:
    return [Link(f"rollout {entry.target_id}", reverse("rollouts:detail", args=[entry.target_id]) + anchor)]


def _flag_rollouts_link(entry: AuditEntry) -> list[Link]:
    """A checklist sign-off is recorded on a rollout or an experiment of the entry's flag."""
    if not entry.flag_key:
        return []
    return [
        Link(
            f"{entry.flag_key}'s rollouts",
            reverse("rollouts:list") + f"?{urlencode({'flag': entry.flag_key})}",
        )
    ]


def _rehearsals_link(entry: AuditEntry) -> list[Link]:
    if not entry.flag_key or not entry.environment_key:
        return []
    url = reverse("rollouts:rehearsals", args=[entry.flag_key, entry.environment_key])
    return [Link(f"rehearsals in {entry.environment_key}", url)]


LinkMaker = Callable[[AuditEntry, dict[int, int]], list[Link]]

# Where the evidence of an entry lives, by the type of its target.
EVIDENCE_LINKS: dict[str, LinkMaker] = {
    "flags.configversion": lambda entry, numbers: _version_link(
        entry.flag_key, numbers.get(int(entry.target_id)) if entry.target_id.isdigit() else None
    ),
    "evals.gateverdict": lambda entry, _: [
        *_version_link(entry.flag_key, _int(entry.changes.get("version")), "the gate's evidence"),
    ],
    "flags.flagstate": lambda entry, _: _version_link(
        entry.flag_key, _int(_after(entry.changes, "serving_version"))
    ),
    "rollouts.rollout": lambda entry, _: _rollout_links(
        entry, "#decisions" if category_of(entry) == DECISION else ""
    ),
    "rollouts.experiment": lambda entry, _: [
        Link(f"experiment {entry.target_id}", reverse("rollouts:experiment", args=[entry.target_id]))
    ],
    "rollouts.scheduledchange": lambda entry, _: [
        Link(
            f"scheduled change {entry.target_id}",
            reverse("rollouts:scheduled")
            + f"?{urlencode({'flag': entry.flag_key})}#change-{entry.target_id}",
        )
    ],
    "flags.approval": lambda entry, _: [
        Link(
            f"approval {entry.target_id}",
            reverse("flags:approvals") + f"#approval-{entry.target_id}",
        )
    ],
    "rollouts.checklistsignoff": lambda entry, _: _flag_rollouts_link(entry),
    "rollouts.rollbackrehearsal": lambda entry, _: _rehearsals_link(entry),
    "telemetry.incident": lambda entry, _: [
        Link(f"incident {entry.target_id}", reverse("incidents:detail", args=[entry.target_id]))
    ],
}


def _evidence(entry: AuditEntry) -> list[str]:
    """The evidence an entry carries, in words: gate outcomes, a decision's explanation."""
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    lines = []
    for outcome in changes.get("preconditions") or []:
        if isinstance(outcome, dict):
            verdict = "met" if outcome.get("met") else "not met"
            lines.append(f"{outcome.get('name', 'check')}: {verdict}. {outcome.get('detail', '')}".strip())
    evidence = changes.get("evidence")
    for source in (changes, evidence if isinstance(evidence, dict) else {}):
        explanation = source.get("explanation")
        if isinstance(explanation, str) and explanation and explanation not in lines:
            lines.append(explanation)
    if isinstance(changes.get("outcome"), str) and changes["outcome"]:
        lines.append(changes["outcome"])
    return lines


def events(entries: Sequence[AuditEntry]) -> list[Event]:
    """The timeline's rows for a page of entries: two queries, whatever the page holds."""
    version_ids = [
        int(entry.target_id)
        for entry in entries
        if entry.target_type == "flags.configversion" and entry.target_id.isdigit()
    ]
    numbers = dict(ConfigVersion.objects.filter(pk__in=version_ids).values_list("pk", "number"))
    rows = []
    for entry in entries:
        make_links = EVIDENCE_LINKS.get(entry.target_type)
        rows.append(
            Event(
                entry=entry,
                category=category_of(entry),
                links=make_links(entry, numbers) if make_links else [],
                evidence=_evidence(entry),
            )
        )
    return rows
