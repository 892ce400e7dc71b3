"""Validating config content and storing it as a flag's next immutable version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import InvalidInput, TooLarge
from controlplane.free_text import check_free_text
from flags.catalog import current_catalog
from flags.diff import system_text
from flags.models import ConfigVersion, Flag
from flags.services.guards import lock_writable_flag
from flags.validation import ValidationResult, validate_config
from flagstaff.canonical import canonical_json, content_hash
from flagstaff.nesting import too_deep


def validate_content(*, flag: Flag, content: object) -> ValidationResult:
    """Dry-run validation of config content for a flag; nothing is saved."""
    max_depth = settings.FLAGSTAFF_MAX_JSON_DEPTH
    # Measuring the size serialises recursively; content too deep for that gets its nesting error.
    if too_deep(content, max_depth) is None:
        _check_size(content)
    return validate_config(
        content,
        catalog=current_catalog(),
        surface=flag.surface,
        today=timezone.now().date(),
        max_depth=max_depth,
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
    flag = lock_writable_flag(flag, consequence="it accepts no new versions")
    check_free_text({"message": message}, limits={"message": settings.FLAGSTAFF_MAX_REASON_CHARS})
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
    changes: dict[str, Any] = {
        "version": number,
        "parent": parent.number if parent else None,
        "content_hash": version.content_hash,
        "warnings": len(result.warnings),
    }
    # The prompt is what reviewers most need to see changed; the rest is in the version diff.
    before_prompt = system_text(parent.content.get("system")) if parent else ""
    after_prompt = system_text(content.get("system"))
    if before_prompt != after_prompt:
        changes["system"] = {"before": before_prompt, "after": after_prompt}
    audit.record(
        actor=actor,
        action="version.created",
        target=version,
        changes=changes,
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
