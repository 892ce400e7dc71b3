"""Targeting constraints as phrases, for the rules of a flag and for segments."""

from __future__ import annotations

from typing import Any

OPERATOR_WORDS = {
    "IN": "is one of",
    "NOT_IN": "is none of",
    "STR_CONTAINS": "contains",
    "STR_STARTS_WITH": "starts with",
    "STR_ENDS_WITH": "ends with",
    "NUM_EQ": "=",
    "NUM_GT": ">",
    "NUM_GTE": "≥",
    "NUM_LT": "<",
    "NUM_LTE": "≤",
    "DATE_AFTER": "is after",
    "DATE_BEFORE": "is before",
    "SEMVER_EQ": "= version",
    "SEMVER_GT": "> version",
    "SEMVER_GTE": "≥ version",
    "SEMVER_LT": "< version",
    "SEMVER_LTE": "≤ version",
    "REGEX": "matches",
    "IN_CIDR": "is in network",
}


def describe_constraint(constraint: dict[str, Any]) -> str:
    """A constraint as a phrase: `plan is one of pro, enterprise`, `NOT country is one of de`."""
    operator = str(constraint.get("operator", ""))
    values = constraint.get("values")
    shown = ", ".join(map(str, values)) if isinstance(values, list) else str(constraint.get("value", ""))
    text = f"{constraint.get('contextName', '?')} {OPERATOR_WORDS.get(operator, operator)} {shown}"
    if constraint.get("caseInsensitive"):
        text += " (any case)"
    return f"NOT {text}" if constraint.get("inverted") else text
