"""Every write of the flags app: each validates, records its audit entry and bumps revisions."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anthropic
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from controlplane import audit
from controlplane.anthropic_client import make_client
from controlplane.audit import Actor, AuditTarget
from controlplane.errors import Conflict, DomainError, InvalidInput, NotFound, TooLarge
from flags.catalog import current_catalog, fetch_models, store_models
from flags.models import ConfigVersion, Environment, Flag, FlagState, Surface
from flags.validation import ModelInfo, ValidationResult, validate_config
from flagstaff.canonical import canonical_json, content_hash

logger = logging.getLogger(__name__)


def _bump_revisions(environment_ids: Iterable[int]) -> None:
    ids = sorted(set(environment_ids))
    if ids:
        Environment.objects.filter(pk__in=ids).update(revision=F("revision") + 1)


@transaction.atomic
def create_environment(*, key: str, name: str, actor: Actor) -> Environment:
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
    _bump_revisions([environment.pk])
    audit.record(
        actor=actor,
        action="version.published",
        target=state,
        changes={"serving_version": {"before": previous, "after": number}},
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
