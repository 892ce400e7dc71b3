"""Targeting: segments, and the rules that serve a version to the contexts they match."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import transaction

from controlplane import audit
from controlplane.audit import Actor
from controlplane.errors import InvalidInput, NotFound, PreconditionFailed
from controlplane.free_text import check_free_text
from flags.models import ConfigVersion, Environment, Flag, FlagState, Segment
from flags.services.guards import require_reason, writable_state
from flags.services.revisions import bump_revisions
from flags.targeting import rules_tag
from flagstaff.engine import ConstraintError, compile_constraints
from flagstaff.engine.constraints import LIST_OPERATORS

# Targeting: the rules of a flag in an environment (segments: flags.services.segments; splits:
# flags.services.splits). Constraints are checked with
# the engine's strict compile, the same code that evaluates them, so what is saved is exactly
# what can be served.

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
    normal = [_normal_constraint(item) for item in constraints]
    size_errors = _constraint_size_errors(normal)
    errors.extend(size_errors)
    return [] if size_errors else normal


def _constraint_size_errors(constraints: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Rules and segments travel in every snapshot to every service: their size is bounded."""
    most_constraints = settings.FLAGSTAFF_MAX_CONSTRAINTS
    if len(constraints) > most_constraints:
        message = f"At most {most_constraints:,} constraints; this has {len(constraints):,}."
        return [{"path": "constraints", "message": message}]
    most_values, most_chars = (
        settings.FLAGSTAFF_MAX_CONSTRAINT_VALUES,
        settings.FLAGSTAFF_MAX_CONSTRAINT_VALUE_CHARS,
    )
    errors: list[dict[str, str]] = []
    for index, constraint in enumerate(constraints):
        path = f"constraints[{index}]"
        values = constraint.get("values", [])
        if len(values) > most_values:
            message = f"At most {most_values:,} values; this has {len(values):,}."
            errors.append({"path": f"{path}.values", "message": message})
            continue
        texts = [(f"{path}.values[{n}]", value) for n, value in enumerate(values)]
        texts += [(f"{path}.value", constraint["value"])] if "value" in constraint else []
        errors.extend(
            {"path": where, "message": f"At most {most_chars:,} characters; this has {len(text):,}."}
            for where, text in texts
            if isinstance(text, str) and len(text) > most_chars
        )
    return errors


def valid_constraints(constraints: object) -> list[dict[str, Any]]:
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
    *,
    flag: Flag,
    constraints: object,
    segments: object,
    version: object,
    description: object,
    everyone: bool,
) -> dict[str, Any]:
    """The rule in the engine's shape (plus its description, and `everyone` on a rule that
    matches every context), or InvalidInput with every error.

    A rule with neither constraint nor segment catches every context and hides everything after
    it (the split, the serving version): it is refused unless the caller says so with `everyone`,
    and a rule marked `everyone` takes no conditions, so the marking never lies.
    """
    errors: list[dict[str, str]] = []
    normal = _checked_constraints(constraints, errors)
    refs = _checked_segment_refs(segments, errors)
    conditions = constraints != [] or segments != []
    if not conditions and not everyone:
        errors.append(
            {
                "path": "constraints",
                "message": "a rule without constraints or segments serves every context; "
                "add a condition, or mark the rule 'everyone' if that is what you mean",
            }
        )
    if conditions and everyone:
        errors.append({"path": "everyone", "message": "a rule for everyone takes no constraints or segments"})
    _check_rule_version(flag, version, errors)
    if not isinstance(description, str) or len(description) > MAX_RULE_DESCRIPTION:
        errors.append(
            {"path": "description", "message": f"must be text of at most {MAX_RULE_DESCRIPTION} characters"}
        )
    if errors:
        raise InvalidInput("The rule is not valid.", code="invalid_rule", errors=errors)
    check_free_text({"constraints": normal, "description": description})
    rule = {"constraints": normal, "segments": refs, "version": version, "description": description}
    return {**rule, "everyone": True} if everyone else rule


def _rule_index(state: FlagState, index: int, flag: Flag, environment: Environment) -> int:
    count = len(state.rules)
    if not 0 <= index < count:
        raise NotFound(
            f"Flag '{flag.key}' has no rule {index} in '{environment.key}' "
            f"({count} rule(s), numbered from 0).",
            code="rule_not_found",
        )
    return index


def _rules_state(flag: Flag, environment: Environment, expected_rules: str | None, reason: str) -> FlagState:
    """The state whose rules a change is about, locked. Rules are addressed by position, so a
    change meant for the list a caller read must not land on a list someone has changed since:
    `expected_rules` is the `rules_tag` it read (None: the rules as they are)."""
    require_reason(environment, reason)
    state = writable_state(flag, environment)
    current = rules_tag(state.rules)
    if expected_rules is not None and expected_rules != current:
        raise PreconditionFailed(
            f"The rules of '{flag.key}' in '{environment.key}' changed since you read them; "
            "read them again and retry.",
            code="rules_changed",
            extra={"rules_tag": current},
        )
    return state


def _save_rules(
    state: FlagState,
    rules: list[dict[str, Any]],
    *,
    actor: Actor,
    action: str,
    changes: dict[str, Any],
    reason: str,
) -> FlagState:
    state.rules = rules
    state.save(update_fields=["rules", "updated_at"])
    bump_revisions([state.environment_id])
    audit.record(
        actor=actor,
        action=action,
        target=state,
        changes=changes,
        reason=reason,
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
    expected_rules: str | None = None,
    everyone: bool = False,
    reason: str = "",
) -> FlagState:
    """Insert a targeting rule at `position` (default: last, the lowest priority)."""
    state = _rules_state(flag, environment, expected_rules, reason)
    rule = _valid_rule(
        flag=flag,
        constraints=constraints,
        segments=segments,
        version=version,
        description=description,
        everyone=everyone,
    )
    rules = list(state.rules)
    most_rules = settings.FLAGSTAFF_MAX_RULES
    if len(rules) >= most_rules:
        raise InvalidInput(
            f"'{flag.key}' already has {len(rules):,} rules in '{environment.key}', the most allowed.",
            code="too_many_rules",
            errors=[{"path": "rules", "message": f"At most {most_rules:,} rules per flag and environment."}],
        )
    index = len(rules) if position is None else position
    if not 0 <= index <= len(rules):
        raise InvalidInput(
            f"A new rule goes at a position from 0 to {len(rules)}.",
            errors=[{"path": "position", "message": f"must be between 0 and {len(rules)}"}],
        )
    rules.insert(index, rule)
    changes = {"index": index, "rule": rule}
    return _save_rules(state, rules, actor=actor, action="rule.added", changes=changes, reason=reason)


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
    expected_rules: str | None = None,
    everyone: bool | None = None,
    reason: str = "",
) -> FlagState:
    """Change the given fields of a rule; the others (and its `everyone` marking) are kept."""
    state = _rules_state(flag, environment, expected_rules, reason)
    before = state.rules[_rule_index(state, index, flag, environment)]
    rule = _valid_rule(
        flag=flag,
        constraints=before.get("constraints", []) if constraints is None else constraints,
        segments=before.get("segments", []) if segments is None else segments,
        version=before.get("version") if version is None else version,
        description=before.get("description", "") if description is None else description,
        everyone=bool(before.get("everyone")) if everyone is None else everyone,
    )
    if rule == before:
        return state
    rules = list(state.rules)
    rules[index] = rule
    changes = {"index": index, "before": before, "after": rule}
    return _save_rules(state, rules, actor=actor, action="rule.updated", changes=changes, reason=reason)


@transaction.atomic
def move_rule(
    *,
    flag: Flag,
    environment: Environment,
    index: int,
    to_index: int,
    actor: Actor,
    expected_rules: str | None = None,
    reason: str = "",
) -> FlagState:
    """Move a rule to another priority; the rules in between shift by one."""
    state = _rules_state(flag, environment, expected_rules, reason)
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
    return _save_rules(state, rules, actor=actor, action="rule.moved", changes=changes, reason=reason)


@transaction.atomic
def remove_rule(
    *,
    flag: Flag,
    environment: Environment,
    index: int,
    actor: Actor,
    expected_rules: str | None = None,
    reason: str = "",
) -> FlagState:
    state = _rules_state(flag, environment, expected_rules, reason)
    rules = list(state.rules)
    removed = rules.pop(_rule_index(state, index, flag, environment))
    changes = {"index": index, "rule": removed}
    return _save_rules(state, rules, actor=actor, action="rule.removed", changes=changes, reason=reason)
