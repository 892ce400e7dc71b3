"""The checklist of one rollout or experiment, as pages, the API and the start refusal read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from flags.models import Environment, FlagState
from rollouts.checklist import attested as _attested  # noqa: F401  (registers the attested items)
from rollouts.checklist import computed as _computed  # noqa: F401  (registers the computed items)
from rollouts.checklist import operations as _operations  # noqa: F401  (and those of rollout operations)
from rollouts.checklist.items import ITEMS, Item, Kind, Status, Subject
from rollouts.models import ChecklistPolicy, ChecklistSignoff, Experiment, Rollout, SignoffKind


class RowState:
    PASS = Status.PASS.value
    FAIL = Status.FAIL.value
    NOT_APPLICABLE = Status.NOT_APPLICABLE.value
    ATTESTED = "attested"
    UNATTESTED = "unattested"
    WAIVED = "waived"


GREEN = frozenset({RowState.PASS, RowState.NOT_APPLICABLE, RowState.ATTESTED, RowState.WAIVED})
WORDS = {
    RowState.PASS: "passes",
    RowState.FAIL: "fails",
    RowState.NOT_APPLICABLE: "does not apply",
    RowState.ATTESTED: "attested",
    RowState.UNATTESTED: "not attested yet",
    RowState.WAIVED: "waived",
}


def default_required(environment: Environment) -> list[str]:
    """Production (a protected environment) requires every item; elsewhere the computed ones."""
    return [key for key, item in ITEMS.items() if environment.protected or item.kind == Kind.COMPUTED]


def required_items(environment: Environment) -> tuple[list[str], bool]:
    """The keys the environment requires, and whether that is the default (no policy row)."""
    policy = ChecklistPolicy.objects.filter(environment=environment).first()
    if policy is None:
        return default_required(environment), True
    return [key for key in policy.required if key in ITEMS], False


@dataclass(frozen=True, slots=True)
class Signoff:
    by: str
    at: datetime
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {"by": self.by, "at": self.at.isoformat(), "note": self.note}


@dataclass(frozen=True, slots=True)
class Row:
    item: Item
    required: bool
    state: str
    detail: str
    attestation: Signoff | None
    waiver: Signoff | None

    @property
    def green(self) -> bool:
        return self.state in GREEN

    @property
    def blocking(self) -> bool:
        return self.required and not self.green

    @property
    def words(self) -> str:
        return WORDS[self.state]

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.item.key,
            "label": self.item.label,
            "kind": self.item.kind.value,
            "required": self.required,
            "state": self.state,
            "green": self.green,
            "detail": self.detail,
            "attestation": self.attestation.as_dict() if self.attestation else None,
            "waiver": self.waiver.as_dict() if self.waiver else None,
        }


@dataclass(frozen=True, slots=True)
class Board:
    environment: Environment
    rows: tuple[Row, ...]
    policy_is_default: bool
    checked_at: datetime

    @property
    def red(self) -> list[Row]:
        return [row for row in self.rows if row.blocking]

    @property
    def ready(self) -> bool:
        return not self.red

    def explain_red(self) -> str:
        return "; ".join(f"{row.item.label} ({row.detail})" for row in self.red)

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment.key,
            "ready": self.ready,
            "red": [row.item.key for row in self.red],
            "policy": "default" if self.policy_is_default else "environment",
            "checked_at": self.checked_at.isoformat(),
            "items": [row.as_dict() for row in self.rows],
        }


def _subject(rollout: Rollout | None, experiment: Experiment | None, now: datetime) -> Subject:
    if rollout is not None:
        return Subject(
            flag=rollout.flag,
            environment=rollout.environment,
            baseline=_serving(rollout),
            candidates=(rollout.candidate,),
            now=now,
        )
    assert experiment is not None
    arms = experiment.arms.select_related("version").order_by("index")
    return Subject(
        flag=experiment.flag,
        environment=experiment.environment,
        baseline=_serving(experiment),
        candidates=tuple(arm.version for arm in arms if arm.version_id != experiment.baseline_id),
        now=now,
    )


def _serving(subject: Rollout | Experiment) -> Any:
    state = FlagState.objects.filter(flag=subject.flag, environment=subject.environment)
    found = state.select_related("serving_version").first()
    return found.serving_version if found and found.serving_version else subject.baseline


def _signoffs(rollout: Rollout | None, experiment: Experiment | None) -> dict[tuple[str, str], Signoff]:
    rows = (
        ChecklistSignoff.objects.filter(rollout=rollout)
        if rollout
        else ChecklistSignoff.objects.filter(experiment=experiment)
    )
    return {(row.item, row.kind): Signoff(row.actor_name, row.created_at, row.note) for row in rows}


def _row(item: Item, subject: Subject, required: bool, signoffs: dict[tuple[str, str], Signoff]) -> Row:
    attestation = signoffs.get((item.key, SignoffKind.ATTESTED))
    waiver = signoffs.get((item.key, SignoffKind.WAIVED))
    if item.kind == Kind.COMPUTED:
        assert item.check is not None
        verdict = item.check(subject)
        state, detail = verdict.status.value, verdict.detail
    elif attestation is not None:
        state, detail = RowState.ATTESTED, attestation.note
    else:
        state, detail = RowState.UNATTESTED, item.hint
    if state not in GREEN and waiver is not None:
        state = RowState.WAIVED
    return Row(item, required, state, detail, attestation, waiver)


def board_for(
    *, rollout: Rollout | None = None, experiment: Experiment | None = None, now: datetime | None = None
) -> Board:
    """The checklist of a rollout or (exactly one of them) an experiment, computed now."""
    if (rollout is None) == (experiment is None):
        raise ValueError("a checklist is of a rollout or of an experiment")
    subject = _subject(rollout, experiment, now or timezone.now())
    required, is_default = required_items(subject.environment)
    signoffs = _signoffs(rollout, experiment)
    # The computed items first, as the checklist lists them; each kind in registry order.
    ordered = sorted(ITEMS.values(), key=lambda item: item.kind != Kind.COMPUTED)
    rows = tuple(_row(item, subject, item.key in required, signoffs) for item in ordered)
    return Board(subject.environment, rows, is_default, subject.now)


def board_of(subject: Rollout | Experiment) -> Board:
    """The checklist of a rollout or an experiment, computed now."""
    if isinstance(subject, Rollout):
        return board_for(rollout=subject)
    return board_for(experiment=subject)
