"""Splits: serving a candidate version to a share of units, the serving version to the rest."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags.models import ConfigVersion, Environment, Flag, Split
from flags.services import preconditions
from flags.services.guards import lock_flag, require_reason, writable_state
from flags.services.revisions import bump_revisions
from flagstaff.engine import BUCKETS


def _split_fields(split: Split) -> dict[str, Any]:
    return {"split": split.split_id, "candidate": split.candidate.number, "weight": split.weight}


def _lock_active_split(flag: Flag, environment: Environment) -> Split | None:
    splits = Split.objects.select_for_update().active().select_related("candidate")
    return splits.filter(flag=flag, environment=environment).first()


@transaction.atomic
def set_split(
    *, flag: Flag, environment: Environment, candidate: int, weight: int, actor: Actor, reason: str = ""
) -> Split:
    """Serve `candidate` to `weight` basis points of units, the serving version to the rest.

    The same candidate keeps its split and seed, so a new weight moves no unit between buckets
    it already had; another candidate replaces the split with a new one and a fresh seed.
    """
    require_reason(environment, reason)
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= BUCKETS:
        raise InvalidInput(
            f"The weight is in basis points, from 0 to {BUCKETS}.",
            errors=[{"path": "weight", "message": f"must be a whole number from 0 to {BUCKETS}"}],
        )
    state = writable_state(flag, environment)
    if state.serving_version is None:
        raise Conflict(
            f"Flag '{flag.key}' has no published version in '{environment.key}'; publish one first.",
            code="nothing_published",
        )
    try:
        version = ConfigVersion.objects.get(flag=flag, number=candidate)
    except (ConfigVersion.DoesNotExist, ValueError, TypeError):
        raise InvalidInput(
            f"Flag '{flag.key}' has no version {candidate}.",
            errors=[{"path": "candidate", "message": f"flag '{flag.key}' has no version {candidate}"}],
        ) from None
    if version.pk == state.serving_version_id:
        raise InvalidInput(
            f"v{candidate} is what '{environment.key}' already serves; a split needs another version.",
            errors=[{"path": "candidate", "message": "must differ from the serving version"}],
        )
    active = _lock_active_split(flag, environment)
    if active is not None and active.candidate_id == version.pk:
        return _change_split_weight(
            active, weight, flag=flag, environment=environment, actor=actor, reason=reason
        )
    # Only a new candidate is checked: changing the weight of an admitted one, down to 0 when
    # backing out, must never wait on a check.
    outcomes = preconditions.require(
        preconditions.ServingChange(flag=flag, environment=environment, version=version, action="split")
    )
    if active is not None:
        active.cleared_at = timezone.now()
        active.save(update_fields=["cleared_at", "updated_at"])
    split = Split.objects.create(
        flag=flag, environment=environment, candidate=version, weight=weight, seed=secrets.token_hex(8)
    )
    bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="split.created",
        target=split,
        changes={
            **_split_fields(split),
            "baseline": state.serving_version.number,
            "replaced": _split_fields(active) if active else None,
            **({"preconditions": [outcome.as_dict() for outcome in outcomes]} if outcomes else {}),
        },
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return split


def _change_split_weight(
    split: Split, weight: int, *, flag: Flag, environment: Environment, actor: Actor, reason: str
) -> Split:
    if split.weight == weight:
        return split
    before = split.weight
    split.weight = weight
    split.save(update_fields=["weight", "updated_at"])
    bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="split.weight_changed",
        target=split,
        changes={"split": split.split_id, "weight": {"before": before, "after": weight}},
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return split


@transaction.atomic
def clear_split(*, flag: Flag, environment: Environment, actor: Actor, reason: str = "") -> Split | None:
    """End the active split: everyone gets the serving version again. None when there was none."""
    require_reason(environment, reason)
    flag = lock_flag(flag)
    split = _lock_active_split(flag, environment)
    if split is None:
        return None
    split.cleared_at = timezone.now()
    split.save(update_fields=["cleared_at", "updated_at"])
    bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="split.cleared",
        target=split,
        changes=_split_fields(split),
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return split
