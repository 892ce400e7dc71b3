"""Constraints with Unleash's operator semantics, compiled once and evaluated per context.

A constraint reads one context field: a top-level key, else the same key in the
`properties` dict (so both Unleash-shaped and flat OpenFeature contexts work). A field that
is absent or null is *missing*: the operator yields false (NOT_IN: true), then `inverted`
flips the result. A value the operator cannot read (a list, a bool, a string that is not a
number for NUM_*, ...) is treated the same way as a missing one. `currentTime`, when
missing, is the time of evaluation.
"""

import ipaddress
import logging
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flagstaff.engine.regex_dialect import Pattern, RegexDialectError, compile_regex
from flagstaff.engine.semver import semver_key
from flagstaff.engine.validation import (
    ConstraintError,
    join,
    read_bool,
    read_list,
    read_name,
    read_object,
    read_str,
)

logger = logging.getLogger(__name__)

Context = Mapping[str, object]
Predicate = Callable[[object], bool]
Comparison = Callable[[Any, Any], Any]  # operator.eq/gt/...: typeshed returns Any

CURRENT_TIME = "currentTime"
LIST_OPERATORS = frozenset({"IN", "NOT_IN", "STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH", "IN_CIDR"})
CASE_INSENSITIVE_OPERATORS = frozenset({"STR_CONTAINS", "STR_STARTS_WITH", "STR_ENDS_WITH", "REGEX"})
_NUMBER_COMPARISONS: dict[str, Comparison] = {
    "NUM_EQ": operator.eq,
    "NUM_GT": operator.gt,
    "NUM_GTE": operator.ge,
    "NUM_LT": operator.lt,
    "NUM_LTE": operator.le,
}
_DATE_COMPARISONS: dict[str, Comparison] = {"DATE_AFTER": operator.gt, "DATE_BEFORE": operator.lt}
_SEMVER_COMPARISONS: dict[str, Comparison] = {
    "SEMVER_EQ": operator.eq,
    "SEMVER_GT": operator.gt,
    "SEMVER_GTE": operator.ge,
    "SEMVER_LT": operator.lt,
    "SEMVER_LTE": operator.le,
}
OPERATORS = (
    LIST_OPERATORS
    | {"REGEX"}
    | (_NUMBER_COMPARISONS.keys() | _DATE_COMPARISONS.keys() | _SEMVER_COMPARISONS.keys())
)

# Same grammar in every client: JSON-like decimals, RFC 3339 timestamps with an offset.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


@dataclass(frozen=True, slots=True, eq=False)
class Constraint:
    """A compiled constraint; `matches` is the whole evaluation."""

    context_name: str
    operator: str
    inverted: bool
    case_insensitive: bool
    test: Predicate
    """The operator applied to a present context value (before inversion)."""
    when_missing: bool
    """The final result when the field is missing (inversion applied)."""
    defaults_to_now: bool
    """A missing field reads as the current time (the `currentTime` field)."""

    def matches(self, context: Context) -> bool:
        value = lookup(context, self.context_name)
        if value is None:
            if not self.defaults_to_now:
                return self.when_missing
            value = datetime.now(UTC)
        return self.test(value) != self.inverted


def _never(_value: object) -> bool:
    return False


# What a constraint that cannot be compiled becomes outside strict mode: it matches nothing,
# whatever `inverted` says, so the rule holding it never fires (Unleash does the same).
UNUSABLE = Constraint(
    context_name="",
    operator="",
    inverted=False,
    case_insensitive=False,
    test=_never,
    when_missing=False,
    defaults_to_now=False,
)


def lookup(context: Context, name: str) -> object:
    """Read a context field: the top-level key, else `properties[name]`; None when missing."""
    value = context.get(name)
    if value is None:
        properties = context.get("properties")
        if isinstance(properties, dict):
            return properties.get(name)
    return value


def as_text(value: object) -> str | None:
    """A context value as a string: strings as they are, integers in decimal, else None."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return None


def compile_constraint(data: object, *, path: str = "", strict: bool = True) -> Constraint:
    """Compile one Unleash-shaped constraint.

    Strict (the server, at save time): raise ConstraintError for anything invalid.
    Lenient (`strict=False`, clients reading a snapshot that may come from a newer server):
    log the error and return UNUSABLE; IN_CIDR drops invalid entries and keeps the rest.
    """
    try:
        return _compile(data, path, strict=strict)
    except ConstraintError as error:
        if strict:
            raise
        logger.warning("unusable constraint ignored", extra={"path": error.path, "error": error.message})
        return UNUSABLE


def compile_constraints(data: object, *, path: str = "", strict: bool = True) -> tuple[Constraint, ...]:
    """Compile a list of constraints (AND-ed by whoever evaluates them)."""
    items = read_list(data, path, ConstraintError)
    return tuple(
        compile_constraint(item, path=join(path, index), strict=strict) for index, item in enumerate(items)
    )


def _compile(data: object, path: str, *, strict: bool) -> Constraint:
    fields = read_object(data, path, ConstraintError)
    context_name = read_name(fields.get("contextName"), join(path, "contextName"), ConstraintError)
    op = read_str(fields.get("operator"), join(path, "operator"), ConstraintError)
    inverted = read_bool(fields.get("inverted", False), join(path, "inverted"), ConstraintError)
    case_insensitive = read_bool(
        fields.get("caseInsensitive", False), join(path, "caseInsensitive"), ConstraintError
    )
    if op not in OPERATORS:
        raise ConstraintError(join(path, "operator"), f"unknown operator {op!r}")
    if case_insensitive and op not in CASE_INSENSITIVE_OPERATORS:
        raise ConstraintError(
            join(path, "caseInsensitive"), f"{op} is always case-sensitive; only STR_* and REGEX take it"
        )
    if op in LIST_OPERATORS:
        values_path = join(path, "values")
        values = [
            read_str(value, join(values_path, index), ConstraintError)
            for index, value in enumerate(read_list(fields.get("values"), values_path, ConstraintError))
        ]
        test = _list_test(op, values, values_path, case_insensitive=case_insensitive, strict=strict)
    else:
        value_path = join(path, "value")
        test = _value_test(op, fields.get("value"), value_path, case_insensitive=case_insensitive)
    return Constraint(
        context_name=context_name,
        operator=op,
        inverted=inverted,
        case_insensitive=case_insensitive,
        test=test,
        when_missing=(op == "NOT_IN") != inverted,
        defaults_to_now=context_name == CURRENT_TIME and op in _DATE_COMPARISONS,
    )


def _list_test(op: str, values: list[str], path: str, *, case_insensitive: bool, strict: bool) -> Predicate:
    if op == "IN":
        return _in(frozenset(values))
    if op == "NOT_IN":
        return _not_in(frozenset(values))
    if op == "IN_CIDR":
        return _in_cidr(_networks(values, path, strict=strict))
    if case_insensitive:
        values = [value.lower() for value in values]
    if op == "STR_CONTAINS":
        return _contains(tuple(values), case_insensitive=case_insensitive)
    if op == "STR_STARTS_WITH":
        return _starts_with(tuple(values), case_insensitive=case_insensitive)
    return _ends_with(tuple(values), case_insensitive=case_insensitive)


def _value_test(op: str, raw: object, path: str, *, case_insensitive: bool) -> Predicate:
    if op in _NUMBER_COMPARISONS:
        number = as_number(raw)
        if number is None or not math.isfinite(number):
            raise ConstraintError(path, f"{raw!r} is not a finite number")
        return _compare(as_number, _NUMBER_COMPARISONS[op], number)
    text = read_str(raw, path, ConstraintError)
    if op in _DATE_COMPARISONS:
        moment = as_datetime(text)
        if moment is None:
            raise ConstraintError(path, f"{text!r} is not an RFC 3339 timestamp with an offset")
        return _compare(as_datetime, _DATE_COMPARISONS[op], moment)
    if op in _SEMVER_COMPARISONS:
        key = semver_key(text)
        if key is None:
            raise ConstraintError(path, f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        return _compare(_as_semver, _SEMVER_COMPARISONS[op], key)
    try:
        pattern = compile_regex(text, ignore_case=case_insensitive)
    except RegexDialectError as error:
        raise ConstraintError(path, f"invalid regular expression: {error}") from None
    return _regex(pattern)


def as_number(value: object) -> float | None:
    """A context value as a number: ints and floats, or strings in decimal notation."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond the float range
            return None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    return None


def as_datetime(value: object) -> datetime | None:
    """A context value as an aware datetime: aware datetimes, or RFC 3339 strings with offset."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:  # well-formed but not a date, e.g. month 13
            return None
    return None


def _as_semver(value: object) -> object:
    text = as_text(value)
    return None if text is None else semver_key(text)


def _networks(
    values: Sequence[str], path: str, *, strict: bool
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for index, value in enumerate(values):
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            if strict:
                raise ConstraintError(
                    join(path, index), f"{value!r} is not an IP address or CIDR range"
                ) from None
    if not networks and values:
        raise ConstraintError(path, "no valid IP address or CIDR range")
    return tuple(networks)


# Each builder returns a closure over precompiled values: one call per evaluation.


def _in(values: frozenset[str]) -> Predicate:
    def test(value: object) -> bool:
        text = as_text(value)
        return text is not None and text in values

    return test


def _not_in(values: frozenset[str]) -> Predicate:
    def test(value: object) -> bool:
        text = as_text(value)
        return text is None or text not in values

    return test


def _contains(values: tuple[str, ...], *, case_insensitive: bool) -> Predicate:
    def test(value: object) -> bool:
        text = as_text(value)
        if text is None:
            return False
        if case_insensitive:
            text = text.lower()
        return any(item in text for item in values)

    return test


def _starts_with(values: tuple[str, ...], *, case_insensitive: bool) -> Predicate:
    def test(value: object) -> bool:
        text = as_text(value)
        if text is None:
            return False
        return (text.lower() if case_insensitive else text).startswith(values)

    return test


def _ends_with(values: tuple[str, ...], *, case_insensitive: bool) -> Predicate:
    def test(value: object) -> bool:
        text = as_text(value)
        if text is None:
            return False
        return (text.lower() if case_insensitive else text).endswith(values)

    return test


def _compare(read: Callable[[object], object], compare: Comparison, target: object) -> Predicate:
    def test(value: object) -> bool:
        read_value = read(value)
        return read_value is not None and compare(read_value, target)

    return test


def _regex(pattern: Pattern) -> Predicate:
    def test(value: object) -> bool:
        text = as_text(value)
        if text is None:
            return False
        try:
            return pattern.search(text) is not None
        except UnicodeEncodeError:
            # RE2 matches UTF-8; a lone surrogate has no UTF-8 form, so the value is unreadable.
            return False

    return test


def _in_cidr(networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> Predicate:
    def test(value: object) -> bool:
        text = as_text(value)
        if text is None:
            return False
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        return any(address in network for network in networks)

    return test
