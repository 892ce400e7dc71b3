"""Writes of the deploy checklist: attesting an item, waiving one, an environment's policy, and
the refusal of a start while a required item is red."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import IntegrityError, transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags.models import Environment
from flags.services.guards import require_reason
from rollouts.checklist import ITEMS, Board, Item, Kind, board_of, default_required, required_items
from rollouts.models import (
    EXPERIMENT_TERMINAL_STATES,
    TERMINAL_STATES,
    ChecklistPolicy,
    ChecklistSignoff,
    Experiment,
    Rollout,
    SignoffKind,
)

Subject = Rollout | Experiment


def _item(key: str) -> Item:
    item = ITEMS.get(key)
    if item is None:
        raise InvalidInput(
            f"There is no checklist item '{key}'.",
            code="unknown_item",
            errors=[{"path": "item", "message": f"one of: {', '.join(ITEMS)}"}],
        )
    return item


def _label(subject: Subject) -> str:
    return f"{'rollout' if isinstance(subject, Rollout) else 'experiment'} {subject.pk}"


def _refuse_ended(subject: Subject) -> None:
    terminal = TERMINAL_STATES if isinstance(subject, Rollout) else EXPERIMENT_TERMINAL_STATES
    if subject.state in terminal:
        raise Conflict(
            f"The {_label(subject)} has ended ({subject.get_state_display().lower()}); its checklist "
            "is kept as it was.",
            code="checklist_closed",
            extra={"state": subject.state},
        )


def _locked(subject: Subject) -> Subject:
    model = type(subject)
    return model.objects.select_for_update().select_related("flag", "environment").get(pk=subject.pk)


def _sign(subject: Subject, *, item: Item, kind: str, note: str, actor: Actor) -> ChecklistSignoff:
    subject = _locked(subject)
    _refuse_ended(subject)
    owner: dict[str, Rollout | Experiment] = (
        {"rollout": subject} if isinstance(subject, Rollout) else {"experiment": subject}
    )
    existing = ChecklistSignoff.objects.filter(item=item.key, kind=kind, **owner).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            signoff = ChecklistSignoff.objects.create(
                item=item.key,
                kind=kind,
                note=note,
                actor_kind=actor.kind,
                actor_id=actor.id,
                actor_name=actor.name,
                **owner,
            )
    except IntegrityError:
        return ChecklistSignoff.objects.get(item=item.key, kind=kind, **owner)
    audit.record(
        actor=actor,
        action=f"checklist.{kind}",
        target=signoff,
        changes={"subject": _label(subject), "item": item.key, "label": item.label},
        reason=note,
        flag_key=subject.flag.key,
        environment_key=subject.environment.key,
    )
    return signoff


def _text(value: str, *, path: str, message: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput(message, code=f"{path}_required", errors=[{"path": path, "message": "Required."}])
    return value


@transaction.atomic
def attest_item(*, subject: Subject, item: str, note: str, actor: Actor) -> ChecklistSignoff:
    """Tick an item no data can show, with a note saying what was checked (kept with the name
    and the time). A computed item cannot be attested: it is green when the data says so."""
    found = _item(item)
    if found.kind != Kind.ATTESTED:
        raise InvalidInput(
            f"'{found.label}' is computed from the data and cannot be attested: fix what it reports, "
            "or ask an Approver to waive it with a reason.",
            code="item_computed",
            errors=[{"path": "item", "message": "a computed item"}],
        )
    note = _text(note, path="note", message="An attestation says what was checked: write a note.")
    return _sign(subject, item=found, kind=SignoffKind.ATTESTED, note=note, actor=actor)


@transaction.atomic
def waive_item(*, subject: Subject, item: str, reason: str, actor: Actor) -> ChecklistSignoff:
    """An Approver lets the start go ahead without one item, saying why; the waiver is shown
    on the rollout for good."""
    found = _item(item)
    reason = _text(reason, path="reason", message="A waiver needs a reason: say why this item may stay red.")
    return _sign(subject, item=found, kind=SignoffKind.WAIVED, note=reason, actor=actor)


@transaction.atomic
def set_checklist_policy(
    *, environment: Environment, required: Sequence[str], actor: Actor, reason: str = ""
) -> ChecklistPolicy:
    """Which items `environment` requires before a start (an Admin's setting)."""
    unknown = [key for key in required if key not in ITEMS]
    if unknown:
        raise InvalidInput(
            f"Unknown checklist items: {', '.join(unknown)}.",
            code="unknown_item",
            errors=[
                {"path": f"required[{list(required).index(key)}]", "message": "unknown item"}
                for key in unknown
            ],
        )
    require_reason(environment, reason)
    wanted = [key for key in ITEMS if key in set(required)]
    before, _ = required_items(environment)
    policy, _ = ChecklistPolicy.objects.select_for_update().get_or_create(
        environment=environment, defaults={"required": default_required(environment)}
    )
    if policy.required == wanted and before == wanted:
        return policy
    policy.required, policy.updated_by_name = wanted, actor.name
    policy.save(update_fields=["required", "updated_by_name", "updated_at"])
    audit.record(
        actor=actor,
        action="checklist.policy_changed",
        target=policy,
        changes={
            "required": {"before": before, "after": wanted},
            "added": [key for key in wanted if key not in before],
            "removed": [key for key in before if key not in wanted],
        },
        reason=reason,
        environment_key=environment.key,
    )
    return policy


def require_checklist(subject: Subject) -> Board:
    """The subject's checklist; Conflict naming every red required item when one is red."""
    board = board_of(subject)
    if not board.ready:
        raise Conflict(
            f"The deploy checklist of {_label(subject)} has {len(board.red)} red "
            f"item{'s' if len(board.red) != 1 else ''}: {board.explain_red()}. Make each green, or an "
            "Approver may waive it with a reason.",
            code="checklist_incomplete",
            extra={"red": [row.item.key for row in board.red]},
        )
    return board
