"""Reads behind the targeting pages and API: what a context gets, and the split's control band.

`try_context` evaluates with the engine on the flag's definition built from the database as it
is now (`compiled_flag`, from `flags.definitions.flag_definition`), so an edit shows at once,
before any snapshot; the "what users get" sentences walk the same compiled definition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from controlplane.errors import Conflict, InvalidInput, TooLarge
from flags.definitions import flag_definition
from flags.models import ConfigVersion, Environment, Flag, FlagState, Segment, Split
from flags.serving.requests import context_size
from flagstaff.canonical import canonical_json
from flagstaff.engine import (
    DefinitionError,
    FlagDefinition,
    Resolution,
    compile_segments,
    flag_from_dict,
    resolve,
    unit_of,
)
from flagstaff.engine.resolve import CONTROL_BAND_MAX_WEIGHT


def control_band(weight: int) -> tuple[int, int] | None:
    """The buckets of a split's control arm, [weight, 2 * weight), when the weight leaves room."""
    return (weight, 2 * weight) if weight <= CONTROL_BAND_MAX_WEIGHT else None


def rules_tag(rules: list[dict[str, Any]]) -> str:
    """A fingerprint of a rule list, for a caller to send back with a change to that list: the
    API's ETag / If-Match on rules, the targeting forms' hidden field."""
    return hashlib.sha256(canonical_json(rules).encode()).hexdigest()[:16]


def check_context(context: object) -> dict[str, Any]:
    """A context is a JSON object of at most FLAGSTAFF_MAX_CONTEXT_BYTES once serialized."""
    if not isinstance(context, dict):
        raise InvalidInput(
            "The context must be a JSON object.",
            code="invalid_context",
            errors=[{"path": "context", "message": "must be a JSON object"}],
        )
    limit = settings.FLAGSTAFF_MAX_CONTEXT_BYTES
    if context_size(context, limit) > limit:
        raise TooLarge(f"The context is larger than {limit:,} bytes.", code="context_too_large")
    return context


@dataclass(frozen=True, slots=True)
class TriedContext:
    """What one context gets from a flag in an environment, and why."""

    flag: str
    environment: str
    revision: int
    version: int | None
    variant: str | None
    reason: str
    arm: str | None
    split_id: str | None
    rule_index: int | None
    rule: dict[str, Any] | None
    bucket: int | None
    unit: str | None
    content: dict[str, Any] | None
    """A summary of the served version: model, max_tokens and content hash."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def try_context(*, flag: Flag, environment: Environment, context: object) -> TriedContext:
    """Resolve `context` with the engine on the flag's current definition; nothing is saved."""
    context = check_context(context)
    state = FlagState.objects.current(flag, environment)
    resolution = _resolution(flag, environment, state, context)
    rule = state.rules[resolution.rule_index] if state and resolution.rule_index is not None else None
    return TriedContext(
        flag=flag.key,
        environment=environment.key,
        revision=environment.revision,
        version=resolution.value_version,
        variant=resolution.variant,
        reason=resolution.reason,
        arm=resolution.arm,
        split_id=resolution.split_id,
        rule_index=resolution.rule_index,
        rule=rule,
        bucket=resolution.bucket,
        unit=_printable(unit_of(context, flag.stickiness)),
        content=_content_summary(flag, resolution.value_version),
    )


def _resolution(
    flag: Flag, environment: Environment, state: FlagState | None, context: dict[str, Any]
) -> Resolution:
    if state is None or flag.is_archived:
        return Resolution(None, "DISABLED", None)
    split = Split.objects.active_for(flag, environment)
    rules = state.rules if isinstance(state.rules, list) else []
    keys = {key for rule in rules if isinstance(rule, dict) for key in rule.get("segments") or []}
    segments = dict(Segment.objects.filter(key__in=keys).values_list("key", "constraints"))
    return resolve(compiled_flag(flag=flag, state=state, split=split, segments=segments), context)


def compiled_flag(
    *,
    flag: Flag,
    state: FlagState,
    split: Split | None,
    segments: dict[str, Any],
    version_hashes: Mapping[int, str] | None = None,
) -> FlagDefinition:
    """The flag in one environment as the engine compiles it from a snapshot: `segments` maps
    segment keys to their constraint lists (at least those the rules use); `version_hashes`
    as `flag_definition` takes them, to save its query when compiling many flags."""
    definition = flag_definition(flag=flag, state=state, split=split, version_hashes=version_hashes)
    wanted = {
        key: {"constraints": segments[key]}
        for rule in definition["rules"]
        for key in rule["segments"]
        if key in segments
    }
    try:
        # Lenient, as clients compile snapshots: rules saved under older checks still evaluate.
        return flag_from_dict(definition, segments=compile_segments(wanted, strict=False), strict=False)
    except DefinitionError as error:
        raise Conflict(
            f"The targeting of '{flag.key}' in '{state.environment.key}' cannot be evaluated: {error}",
            code="definition_invalid",
        ) from None


def _printable(text: str | None) -> str | None:
    """The text, with a lone surrogate (which no response can encode) shown as '?'."""
    return None if text is None else text.encode("utf-8", "replace").decode("utf-8")


def _content_summary(flag: Flag, number: int | None) -> dict[str, Any] | None:
    if number is None:
        return None
    version = ConfigVersion.objects.filter(flag=flag, number=number).only("content", "content_hash").first()
    if version is None:
        return None
    content = version.content if isinstance(version.content, dict) else {}
    return {
        "model": content.get("model"),
        "max_tokens": content.get("max_tokens"),
        "content_hash": version.content_hash,
    }
