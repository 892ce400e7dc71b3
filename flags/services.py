"""Every write of the flags app: each validates, records its audit entry and bumps revisions."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import anthropic
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from controlplane import audit
from controlplane.anthropic_client import make_client
from controlplane.audit import Actor, AuditTarget
from controlplane.errors import Conflict, DomainError, InvalidInput, NotFound, TooLarge
from flags.catalog import current_catalog, fetch_models, store_models
from flags.definitions import states_using_segment, usage_list
from flags.models import KEY_VALIDATOR, ConfigVersion, Environment, Flag, FlagState, Segment, Split, Surface
from flags.snapshots import announce_revisions
from flags.validation import ModelInfo, ValidationResult, validate_config
from flagstaff.canonical import canonical_json, content_hash
from flagstaff.engine import BUCKETS, ConstraintError, compile_constraints
from flagstaff.engine.constraints import LIST_OPERATORS

logger = logging.getLogger(__name__)


def _bump_revisions(environment_ids: Iterable[int]) -> None:
    """Bump the revisions; after commit, announce them so every process drops its snapshot."""
    ids = sorted(set(environment_ids))
    if ids:
        Environment.objects.filter(pk__in=ids).update(revision=F("revision") + 1)
        bumped = list(Environment.objects.filter(pk__in=ids).values_list("key", "revision"))
        transaction.on_commit(partial(announce_revisions, bumped))


def _check_key(key: str) -> None:
    """Hold keys to the model's format: the ORM does not run field validators on create()."""
    try:
        KEY_VALIDATOR(key)
    except ValidationError as exc:
        raise InvalidInput(
            f"'{key}' is not a valid key.", errors=[{"path": "key", "message": str(exc.message)}]
        ) from None


@transaction.atomic
def create_environment(*, key: str, name: str, actor: Actor) -> Environment:
    _check_key(key)
    if Environment.objects.filter(key=key).exists():
        raise Conflict(f"An environment with key '{key}' already exists.", code="duplicate_key")
    try:
        with transaction.atomic():
            environment = Environment.objects.create(key=key, name=name or key)
    except IntegrityError:
        raise Conflict(f"An environment with key '{key}' already exists.", code="duplicate_key") from None
    audit.record(
        actor=actor,
        action="environment.created",
        target=environment,
        changes={"after": {"key": key, "name": environment.name}},
        environment_key=key,
    )
    return environment


@transaction.atomic
def create_flag(
    *,
    key: str,
    name: str,
    surface: str,
    actor: Actor,
    description: str = "",
    owner: str = "",
    stickiness: str = "targetingKey",
) -> Flag:
    if surface not in Surface.values:
        raise InvalidInput(
            f"Unknown surface '{surface}'.",
            errors=[{"path": "surface", "message": f"Choose one of: {', '.join(Surface.values)}."}],
        )
    _check_key(key)
    if Flag.objects.filter(key=key).exists():
        raise Conflict(f"A flag with key '{key}' already exists.", code="duplicate_key")
    try:
        with transaction.atomic():
            flag = Flag.objects.create(
                key=key,
                name=name or key,
                surface=surface,
                description=description,
                owner=owner,
                stickiness=stickiness or "targetingKey",
            )
    except IntegrityError:
        raise Conflict(f"A flag with key '{key}' already exists.", code="duplicate_key") from None
    audit.record(
        actor=actor,
        action="flag.created",
        target=flag,
        changes={"after": _flag_fields(flag)},
        flag_key=key,
    )
    return flag


def _flag_fields(flag: Flag) -> dict[str, Any]:
    return {
        "name": flag.name,
        "description": flag.description,
        "surface": flag.surface,
        "owner": flag.owner,
        "stickiness": flag.stickiness,
    }


def _lock_flag(flag: Flag) -> Flag:
    return Flag.objects.select_for_update().get(pk=flag.pk)


@transaction.atomic
def update_flag(*, flag: Flag, changes: Mapping[str, Any], actor: Actor, reason: str = "") -> Flag:
    """Change a flag's descriptive fields; a stickiness change re-keys splits, so it bumps revisions."""
    flag = _lock_flag(flag)
    if flag.is_archived:
        raise Conflict(f"Flag '{flag.key}' is archived.", code="flag_archived")
    editable = {"name", "description", "surface", "owner", "stickiness"}
    unknown = sorted(set(changes) - editable)
    if unknown:
        raise InvalidInput(
            "Some fields cannot be changed.",
            errors=[{"path": field, "message": "This field cannot be changed."} for field in unknown],
        )
    if "surface" in changes and changes["surface"] not in Surface.values:
        raise InvalidInput(
            f"Unknown surface '{changes['surface']}'.",
            errors=[{"path": "surface", "message": f"Choose one of: {', '.join(Surface.values)}."}],
        )
    before = _flag_fields(flag)
    for field, value in changes.items():
        setattr(flag, field, value)
    after = _flag_fields(flag)
    diff = {k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]}
    if not diff:
        return flag
    flag.save(update_fields=list(diff))
    if "stickiness" in diff or "surface" in diff:
        _bump_revisions(FlagState.objects.filter(flag=flag).values_list("environment_id", flat=True))
    audit.record(
        actor=actor, action="flag.updated", target=flag, changes=diff, reason=reason, flag_key=flag.key
    )
    return flag


@transaction.atomic
def archive_flag(*, flag: Flag, actor: Actor, reason: str = "") -> Flag:
    """Archive a flag: it stops serving everywhere and accepts no new versions."""
    flag = _lock_flag(flag)
    if flag.is_archived:
        raise Conflict(f"Flag '{flag.key}' is already archived.", code="flag_archived")
    enabled_states = FlagState.objects.filter(flag=flag, enabled=True)
    environment_ids = list(enabled_states.values_list("environment_id", flat=True))
    enabled_states.update(enabled=False, updated_at=timezone.now())
    flag.archived_at = timezone.now()
    flag.save(update_fields=["archived_at"])
    _bump_revisions(environment_ids)
    audit.record(
        actor=actor,
        action="flag.archived",
        target=flag,
        changes={"disabled_in_environment_ids": environment_ids},
        reason=reason,
        flag_key=flag.key,
    )
    return flag


def validate_content(*, flag: Flag, content: object) -> ValidationResult:
    """Dry-run validation of config content for a flag; nothing is saved."""
    _check_size(content)
    return validate_config(
        content, catalog=current_catalog(), surface=flag.surface, today=timezone.now().date()
    )


def _check_size(content: object) -> None:
    try:
        size = len(canonical_json(content).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"The config is not JSON-serialisable: {exc}", code="config_invalid") from exc
    limit = settings.FLAGSTAFF_MAX_CONFIG_BYTES
    if size > limit:
        raise TooLarge(
            f"The config is {size:,} bytes; the limit is {limit:,} bytes.", code="config_too_large"
        )


@dataclass(frozen=True, slots=True)
class NewVersion:
    version: ConfigVersion
    validation: ValidationResult


@transaction.atomic
def create_version(
    *,
    flag: Flag,
    content: object,
    actor: Actor,
    message: str = "",
    parent_number: int | None = None,
) -> NewVersion:
    """Validate content and store it as the flag's next immutable version.

    Errors block and nothing is saved; warnings are stored with the version.
    """
    flag = _lock_flag(flag)
    if flag.is_archived:
        raise Conflict(f"Flag '{flag.key}' is archived; it accepts no new versions.", code="flag_archived")
    result = validate_content(flag=flag, content=content)
    if not result.ok:
        raise InvalidInput(
            f"The config has {len(result.errors)} error(s).",
            code="config_invalid",
            errors=[issue.as_dict() for issue in result.errors],
            extra={"warnings": [issue.as_dict() for issue in result.warnings]},
        )
    assert isinstance(content, dict)  # guaranteed by the schema's root type
    parent = _parent_version(flag, parent_number)
    number = (ConfigVersion.objects.filter(flag=flag).aggregate(top=Max("number"))["top"] or 0) + 1
    version = ConfigVersion.objects.create(
        flag=flag,
        number=number,
        content=content,
        content_hash=content_hash(content),
        parent=parent,
        author_name=actor.name,
        message=message,
        warnings=[issue.as_dict() for issue in result.warnings],
    )
    audit.record(
        actor=actor,
        action="version.created",
        target=version,
        changes={
            "version": number,
            "parent": parent.number if parent else None,
            "content_hash": version.content_hash,
            "warnings": len(result.warnings),
        },
        reason=message,
        flag_key=flag.key,
    )
    return NewVersion(version=version, validation=result)


def _parent_version(flag: Flag, parent_number: int | None) -> ConfigVersion | None:
    if parent_number is None:
        return ConfigVersion.objects.filter(flag=flag).order_by("-number").first()
    try:
        return ConfigVersion.objects.get(flag=flag, number=parent_number)
    except ConfigVersion.DoesNotExist:
        raise InvalidInput(
            f"Flag '{flag.key}' has no version {parent_number}.",
            errors=[{"path": "parent", "message": f"Version {parent_number} does not exist."}],
        ) from None


def _lock_state(flag: Flag, environment: Environment) -> FlagState:
    state, _ = FlagState.objects.select_for_update().get_or_create(flag=flag, environment=environment)
    return state


@transaction.atomic
def publish_version(
    *, flag: Flag, environment: Environment, number: int, actor: Actor, reason: str = ""
) -> FlagState:
    """Make a version the one an environment serves."""
    flag = _lock_flag(flag)
    if flag.is_archived:
        raise Conflict(f"Flag '{flag.key}' is archived.", code="flag_archived")
    try:
        version = ConfigVersion.objects.get(flag=flag, number=number)
    except ConfigVersion.DoesNotExist:
        raise NotFound(f"Flag '{flag.key}' has no version {number}.") from None
    state = _lock_state(flag, environment)
    previous = state.serving_version.number if state.serving_version else None
    if previous == number:
        return state
    state.serving_version = version
    state.save(update_fields=["serving_version", "updated_at"])
    changes: dict[str, Any] = {"serving_version": {"before": previous, "after": number}}
    # Publishing the split's candidate makes it everyone's version: the split has nothing left
    # to compare, so it ends here rather than lingering as a rollout of a version onto itself.
    promoted = Split.objects.active().filter(flag=flag, environment=environment, candidate=version).first()
    if promoted is not None:
        Split.objects.filter(pk=promoted.pk).update(cleared_at=timezone.now())
        changes["split_cleared"] = promoted.split_id
    _bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="version.published",
        target=state,
        changes=changes,
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return state


@transaction.atomic
def set_flag_enabled(
    *, flag: Flag, environment: Environment, enabled: bool, actor: Actor, reason: str = ""
) -> FlagState:
    flag = _lock_flag(flag)
    if flag.is_archived:
        raise Conflict(f"Flag '{flag.key}' is archived.", code="flag_archived")
    state = _lock_state(flag, environment)
    if enabled and state.serving_version_id is None:
        raise Conflict(
            f"Flag '{flag.key}' has no published version in '{environment.key}'; publish one first.",
            code="nothing_published",
        )
    if state.enabled == enabled:
        return state
    state.enabled = enabled
    state.save(update_fields=["enabled", "updated_at"])
    _bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="flag.enabled" if enabled else "flag.disabled",
        target=state,
        changes={"enabled": {"before": not enabled, "after": enabled}},
        reason=reason,
        flag_key=flag.key,
        environment_key=environment.key,
    )
    return state


@transaction.atomic
def sync_model_catalog(*, models: Sequence[ModelInfo], source: str, actor: Actor) -> dict[str, list[str]]:
    """Upsert catalog models (and their prices when given); audit what changed."""
    changes = store_models(models, source=source)
    if any(changes.values()):
        audit.record(
            actor=actor,
            action="catalog.synced",
            target=AuditTarget(type="flags.modelcatalog", id=source, label=f"model catalog ({source})"),
            changes={"source": source, **changes},
        )
    logger.info("model catalog synced", extra={"source": source, **{k: len(v) for k, v in changes.items()}})
    return changes


class ModelsApiFailed(DomainError):
    status_code = 502
    code = "models_api_failed"


def refresh_model_catalog(*, actor: Actor) -> dict[str, list[str]]:
    """Read every model from the Models API and store what changed.

    The network call happens before the transaction, so no lock is held while waiting on it.
    """
    try:
        models = fetch_models(make_client())
    except anthropic.APIStatusError as exc:
        raise ModelsApiFailed(
            f"The Models API answered {exc.status_code}: {exc.message}", extra={"request_id": exc.request_id}
        ) from exc
    except anthropic.APIConnectionError as exc:
        raise ModelsApiFailed(f"The Models API could not be reached: {exc}") from exc
    return sync_model_catalog(models=models, source="models_api", actor=actor)


# Targeting: segments, rules and splits. Constraints are checked with the engine's strict
# compile, the same code that evaluates them, so what is saved is exactly what can be served.

MAX_RULE_DESCRIPTION = 500


def _normal_constraint(data: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the fields the engine reads; flags that are off are left out."""
    operator = data["operator"]
    constraint: dict[str, Any] = {"contextName": data["contextName"], "operator": operator}
    if operator in LIST_OPERATORS:
        constraint["values"] = list(data["values"])
    else:
        constraint["value"] = data["value"]
    for flag_name in ("inverted", "caseInsensitive"):
        if data.get(flag_name):
            constraint[flag_name] = True
    return constraint


def _checked_constraints(constraints: object, errors: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Strictly compile constraints; a refusal is appended to `errors` at its path."""
    try:
        compile_constraints(constraints, path="constraints", strict=True)
    except ConstraintError as error:
        errors.append({"path": error.path, "message": error.message})
        return []
    assert isinstance(constraints, list)  # compile_constraints accepts lists only
    return [_normal_constraint(item) for item in constraints]


def _valid_constraints(constraints: object) -> list[dict[str, Any]]:
    errors: list[dict[str, str]] = []
    normal = _checked_constraints(constraints, errors)
    if errors:
        raise InvalidInput("A constraint is not valid.", code="invalid_constraint", errors=errors)
    return normal


def _checked_segment_refs(segments: object, errors: list[dict[str, str]]) -> list[str]:
    """Segment keys of a rule, each an existing segment, locked until commit so none is deleted."""
    if not isinstance(segments, list):
        errors.append({"path": "segments", "message": "must be a list of segment keys"})
        return []
    refs: list[str] = []
    for index, ref in enumerate(segments):
        if not isinstance(ref, str) or not ref:
            errors.append({"path": f"segments[{index}]", "message": "must be a segment key"})
        elif ref not in refs:
            refs.append(ref)
    # Locked in key order, as update_segment and delete_segment lock them: no deadlock.
    known = {s.key for s in Segment.objects.select_for_update().filter(key__in=refs).order_by("key")}
    for index, ref in enumerate(segments):
        if isinstance(ref, str) and ref and ref not in known:
            errors.append({"path": f"segments[{index}]", "message": f"unknown segment '{ref}'"})
    return refs


def _check_rule_version(flag: Flag, version: object, errors: list[dict[str, str]]) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        errors.append({"path": "version", "message": "must be a version number (1 or more)"})
    elif not ConfigVersion.objects.filter(flag=flag, number=version).exists():
        message = f"flag '{flag.key}' has no version {version}; a rule serves a version of its own flag"
        errors.append({"path": "version", "message": message})


def _valid_rule(
    *, flag: Flag, constraints: object, segments: object, version: object, description: object
) -> dict[str, Any]:
    """The rule in the engine's shape (plus its description), or InvalidInput with every error."""
    errors: list[dict[str, str]] = []
    normal = _checked_constraints(constraints, errors)
    refs = _checked_segment_refs(segments, errors)
    _check_rule_version(flag, version, errors)
    if not isinstance(description, str) or len(description) > MAX_RULE_DESCRIPTION:
        errors.append(
            {"path": "description", "message": f"must be text of at most {MAX_RULE_DESCRIPTION} characters"}
        )
    if errors:
        raise InvalidInput("The rule is not valid.", code="invalid_rule", errors=errors)
    return {"constraints": normal, "segments": refs, "version": version, "description": description}


def _segment_fields(segment: Segment) -> dict[str, Any]:
    return {"name": segment.name, "description": segment.description, "constraints": segment.constraints}


@transaction.atomic
def create_segment(
    *, key: str, name: str, constraints: object, actor: Actor, description: str = ""
) -> Segment:
    _check_key(key)
    normal = _valid_constraints(constraints)
    if Segment.objects.filter(key=key).exists():
        raise Conflict(f"A segment with key '{key}' already exists.", code="duplicate_key")
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                key=key, name=name or key, description=description, constraints=normal
            )
    except IntegrityError:
        raise Conflict(f"A segment with key '{key}' already exists.", code="duplicate_key") from None
    audit.record(
        actor=actor,
        action="segment.created",
        target=segment,
        changes={"after": {"key": key, **_segment_fields(segment)}},
    )
    return segment


@transaction.atomic
def update_segment(
    *,
    segment: Segment,
    actor: Actor,
    name: str | None = None,
    description: str | None = None,
    constraints: object = None,
    reason: str = "",
) -> Segment:
    """Change a segment; new constraints bump every environment whose rules use the segment."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    before = _segment_fields(segment)
    if constraints is not None:
        segment.constraints = _valid_constraints(constraints)
    if name is not None:
        segment.name = name or segment.key
    if description is not None:
        segment.description = description
    after = _segment_fields(segment)
    diff = {k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]}
    if not diff:
        return segment
    segment.save(update_fields=[*diff, "updated_at"])
    users = states_using_segment(segment.key) if "constraints" in diff else []
    _bump_revisions(state.environment_id for state in users)
    audit.record(
        actor=actor,
        action="segment.updated",
        target=segment,
        changes={**diff, "used_by": usage_list(users)} if users else diff,
        reason=reason,
    )
    return segment


@transaction.atomic
def delete_segment(*, segment: Segment, actor: Actor) -> None:
    """Delete a segment no rule refers to; otherwise refuse, naming the rules' flags and environments."""
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    users = usage_list(states_using_segment(segment.key))
    if users:
        where = ", ".join(f"{use['flag']} in {use['environment']}" for use in users)
        raise Conflict(
            f"Segment '{segment.key}' is used by the rules of {where}; remove it from those rules first.",
            code="segment_in_use",
            extra={"used_by": users},
        )
    audit.record(
        actor=actor,
        action="segment.deleted",
        target=segment,
        changes={"before": {"key": segment.key, **_segment_fields(segment)}},
    )
    segment.delete()


def _writable_state(flag: Flag, environment: Environment) -> FlagState:
    flag = _lock_flag(flag)
    if flag.is_archived:
        raise Conflict(f"Flag '{flag.key}' is archived.", code="flag_archived")
    return _lock_state(flag, environment)


def _rule_index(state: FlagState, index: int, flag: Flag, environment: Environment) -> int:
    count = len(state.rules)
    if not 0 <= index < count:
        raise NotFound(
            f"Flag '{flag.key}' has no rule {index} in '{environment.key}' "
            f"({count} rule(s), numbered from 0).",
            code="rule_not_found",
        )
    return index


def _save_rules(
    state: FlagState, rules: list[dict[str, Any]], *, actor: Actor, action: str, changes: dict[str, Any]
) -> FlagState:
    state.rules = rules
    state.save(update_fields=["rules", "updated_at"])
    _bump_revisions([state.environment_id])
    audit.record(
        actor=actor,
        action=action,
        target=state,
        changes=changes,
        flag_key=state.flag.key,
        environment_key=state.environment.key,
    )
    return state


@transaction.atomic
def add_rule(
    *,
    flag: Flag,
    environment: Environment,
    constraints: object,
    segments: object,
    version: int,
    description: str,
    actor: Actor,
    position: int | None = None,
) -> FlagState:
    """Insert a targeting rule at `position` (default: last, the lowest priority)."""
    state = _writable_state(flag, environment)
    rule = _valid_rule(
        flag=flag, constraints=constraints, segments=segments, version=version, description=description
    )
    rules = list(state.rules)
    index = len(rules) if position is None else position
    if not 0 <= index <= len(rules):
        raise InvalidInput(
            f"A new rule goes at a position from 0 to {len(rules)}.",
            errors=[{"path": "position", "message": f"must be between 0 and {len(rules)}"}],
        )
    rules.insert(index, rule)
    return _save_rules(state, rules, actor=actor, action="rule.added", changes={"index": index, "rule": rule})


@transaction.atomic
def update_rule(
    *,
    flag: Flag,
    environment: Environment,
    index: int,
    actor: Actor,
    constraints: object = None,
    segments: object = None,
    version: int | None = None,
    description: str | None = None,
) -> FlagState:
    """Change the given fields of a rule; the others are kept."""
    state = _writable_state(flag, environment)
    before = state.rules[_rule_index(state, index, flag, environment)]
    rule = _valid_rule(
        flag=flag,
        constraints=before.get("constraints", []) if constraints is None else constraints,
        segments=before.get("segments", []) if segments is None else segments,
        version=before.get("version") if version is None else version,
        description=before.get("description", "") if description is None else description,
    )
    if rule == before:
        return state
    rules = list(state.rules)
    rules[index] = rule
    changes = {"index": index, "before": before, "after": rule}
    return _save_rules(state, rules, actor=actor, action="rule.updated", changes=changes)


@transaction.atomic
def move_rule(*, flag: Flag, environment: Environment, index: int, to_index: int, actor: Actor) -> FlagState:
    """Move a rule to another priority; the rules in between shift by one."""
    state = _writable_state(flag, environment)
    _rule_index(state, index, flag, environment)
    last = len(state.rules) - 1
    if not 0 <= to_index <= last:
        raise InvalidInput(
            f"A rule moves to a position from 0 to {last}.",
            errors=[{"path": "to", "message": f"must be between 0 and {last}"}],
        )
    if to_index == index:
        return state
    rules = list(state.rules)
    rules.insert(to_index, rules.pop(index))
    changes = {"from": index, "to": to_index, "rule": rules[to_index]}
    return _save_rules(state, rules, actor=actor, action="rule.moved", changes=changes)


@transaction.atomic
def remove_rule(*, flag: Flag, environment: Environment, index: int, actor: Actor) -> FlagState:
    state = _writable_state(flag, environment)
    rules = list(state.rules)
    removed = rules.pop(_rule_index(state, index, flag, environment))
    changes = {"index": index, "rule": removed}
    return _save_rules(state, rules, actor=actor, action="rule.removed", changes=changes)


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
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= BUCKETS:
        raise InvalidInput(
            f"The weight is in basis points, from 0 to {BUCKETS}.",
            errors=[{"path": "weight", "message": f"must be a whole number from 0 to {BUCKETS}"}],
        )
    state = _writable_state(flag, environment)
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
    if active is not None:
        active.cleared_at = timezone.now()
        active.save(update_fields=["cleared_at", "updated_at"])
    split = Split.objects.create(
        flag=flag, environment=environment, candidate=version, weight=weight, seed=secrets.token_hex(8)
    )
    _bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="split.created",
        target=split,
        changes={
            **_split_fields(split),
            "baseline": state.serving_version.number,
            "replaced": _split_fields(active) if active else None,
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
    _bump_revisions([environment.pk])
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
    flag = _lock_flag(flag)
    split = _lock_active_split(flag, environment)
    if split is None:
        return None
    split.cleared_at = timezone.now()
    split.save(update_fields=["cleared_at", "updated_at"])
    _bump_revisions([environment.pk])
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
