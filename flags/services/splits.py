"""Splits: serving a candidate version to a share of units, the serving version to the rest
(a canary), or sharing the units between the baseline and up to three candidates by weight
(an experiment's arms)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import Conflict, InvalidInput
from flags.models import ConfigVersion, Environment, Flag, Split, SplitArm, SplitKind
from flags.services import preconditions
from flags.services.guards import lock_flag, require_reason, writable_state
from flags.services.revisions import bump_revisions
from flagstaff.engine import BUCKETS, MAX_EXPERIMENT_ARMS

BASELINE_ARM = "baseline"
# Arm names travel in flag_state tokens (':' separates their fields) and telemetry keeps 32
# characters of them.
ARM_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,30}[a-z0-9])?$")


def _split_fields(split: Split) -> dict[str, Any]:
    if split.is_experiment:
        return {
            "split": split.split_id,
            "arms": [
                {"name": a.name, "version": a.version.number, "weight": a.weight} for a in split.arms.all()
            ],
        }
    assert split.candidate is not None
    return {"split": split.split_id, "candidate": split.candidate.number, "weight": split.weight}


@dataclass(frozen=True, slots=True)
class ArmSpec:
    name: str
    version: int
    weight: int
    """Basis points of units (100 = 1 %)."""


def check_experiment_arms(
    *, flag: Flag, serving: ConfigVersion, arms: Sequence[ArmSpec]
) -> list[ConfigVersion]:
    """The arms' versions, in order, when `arms` is the serving version (first, named
    `baseline`) and one to three other versions whose weights add up to 100 %; InvalidInput
    with a stable code for the first rule broken, nothing written."""
    candidates = arms[1:]
    if not arms or arms[0].name != BASELINE_ARM or arms[0].version != serving.number:
        raise InvalidInput(
            f"The first arm is the baseline, named '{BASELINE_ARM}', serving v{serving.number}.",
            code="invalid_arms",
            errors=[{"path": "arms[0]", "message": f"must be '{BASELINE_ARM}' serving v{serving.number}"}],
        )
    if not candidates:
        raise InvalidInput(
            "An experiment needs at least one candidate.",
            code="invalid_arms",
            errors=[{"path": "candidates", "message": "name at least one candidate version"}],
        )
    if len(arms) > MAX_EXPERIMENT_ARMS:
        raise InvalidInput(
            f"An experiment has at most {MAX_EXPERIMENT_ARMS - 1} candidates; {len(candidates)} were given.",
            code="too_many_candidates",
            errors=[{"path": "candidates", "message": f"at most {MAX_EXPERIMENT_ARMS - 1} candidates"}],
        )
    seen_names: set[str] = set()
    seen_versions: set[int] = set()
    for index, arm in enumerate(arms):
        path = "baseline" if index == 0 else f"candidates[{index - 1}]"
        if index and arm.version == serving.number:
            raise InvalidInput(
                f"v{arm.version} is the baseline; a candidate must be another version.",
                code="candidate_is_baseline",
                errors=[{"path": f"{path}.version", "message": "must differ from the serving version"}],
            )
        if arm.name in seen_names or arm.version in seen_versions:
            raise InvalidInput(
                f"Arm '{arm.name}' (v{arm.version}) appears twice; each arm is a different version and name.",
                code="duplicate_arm",
                errors=[{"path": path, "message": "duplicates another arm"}],
            )
        seen_names.add(arm.name)
        seen_versions.add(arm.version)
        if not ARM_NAME.match(arm.name):
            raise InvalidInput(
                f"'{arm.name}' is not a valid arm name.",
                code="invalid_arms",
                errors=[{"path": f"{path}.name", "message": "1-32 lowercase letters, digits, '-' or '_'"}],
            )
        if isinstance(arm.weight, bool) or not isinstance(arm.weight, int) or not 0 < arm.weight <= BUCKETS:
            raise InvalidInput(
                "Each arm's weight is a whole number of basis points, from 1 to 10000.",
                code="invalid_weights",
                errors=[{"path": f"{path}.weight", "message": f"must be a whole number from 1 to {BUCKETS}"}],
            )
    total = sum(arm.weight for arm in arms)
    if total != BUCKETS:
        raise InvalidInput(
            f"The arms' weights add up to {total / 100:g} %, not 100 % ({BUCKETS} basis points).",
            code="invalid_weights",
            errors=[{"path": "candidates", "message": f"weights add up to {total}, not {BUCKETS}"}],
        )
    versions = {v.number: v for v in ConfigVersion.objects.filter(flag=flag, number__in=seen_versions)}
    for index, arm in enumerate(arms):
        if arm.version not in versions:
            raise InvalidInput(
                f"Flag '{flag.key}' has no version {arm.version}.",
                code="unknown_version",
                errors=[{"path": f"candidates[{index - 1}].version", "message": f"no version {arm.version}"}],
            )
    return [versions[arm.version] for arm in arms]


def _lock_active_split(flag: Flag, environment: Environment) -> Split | None:
    # Only the split row: the candidate is an outer join now that an experiment split has none.
    splits = Split.objects.select_for_update(of=("self",)).active().select_related("candidate")
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
    if active is not None and active.is_experiment:
        raise _experiment_holds(flag, environment)
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


def _experiment_holds(flag: Flag, environment: Environment) -> Conflict:
    return Conflict(
        f"Flag '{flag.key}' runs an experiment in '{environment.key}'; end it before splitting again.",
        code="split_active",
    )


@transaction.atomic
def set_experiment_split(
    *, flag: Flag, environment: Environment, arms: Sequence[ArmSpec], actor: Actor, reason: str = ""
) -> Split:
    """Share the units between the experiment's arms by weight, with a fresh seed.

    Only when the flag has no active split: an experiment never takes over a canary's traffic,
    nor reuses its seed. Each candidate needs what serving it needs (the gate's verdict).
    """
    require_reason(environment, reason)
    state = writable_state(flag, environment)
    if state.serving_version is None:
        raise Conflict(
            f"Flag '{flag.key}' has no published version in '{environment.key}'; publish one first.",
            code="nothing_published",
        )
    versions = check_experiment_arms(flag=flag, serving=state.serving_version, arms=arms)
    if _lock_active_split(flag, environment) is not None:
        raise Conflict(
            f"Flag '{flag.key}' already splits '{environment.key}'; clear that split first.",
            code="split_active",
        )
    outcomes = [
        outcome
        for version in versions[1:]
        for outcome in preconditions.require(
            preconditions.ServingChange(flag=flag, environment=environment, version=version, action="split")
        )
    ]
    split = Split.objects.create(
        flag=flag,
        environment=environment,
        kind=SplitKind.EXPERIMENT,
        candidate=None,
        weight=BUCKETS - arms[0].weight,
        seed=secrets.token_hex(8),
    )
    SplitArm.objects.bulk_create(
        SplitArm(split=split, index=index, name=arm.name, version=version, weight=arm.weight)
        for index, (arm, version) in enumerate(zip(arms, versions, strict=True))
    )
    bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="split.created",
        target=split,
        changes={
            "split": split.split_id,
            "kind": SplitKind.EXPERIMENT.value,
            "arms": [{"name": a.name, "version": a.version, "weight": a.weight} for a in arms],
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
